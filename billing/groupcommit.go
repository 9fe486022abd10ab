// Group commit: the writer goroutine takes what is queued, writes it in
// one transaction per batch, and acknowledges each waiting request; a
// record the store refuses is set aside, the rest of its batch written.

package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

// maxAside bounds the request ids kept of records set aside: beyond it, a
// replay may set one aside again (a duplicate line in the rejected file,
// harmless: inserts are idempotent).
const maxAside = 1 << 16

func (r *Recorder) run() {
	defer close(r.done)
	defer r.finish()
	buf := make([]queued, 0, r.batch)
	recs := make([]books.UsageRecord, 0, r.batch)
	idx := make([]int, 0, r.batch) // of recs[i] in buf
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	waiters := 0
	var refused map[int]error // by index in buf: records set aside
	flush := func() {
		recs, idx = recs[:0], idx[:0]
		for i, q := range buf {
			if !q.barrier {
				recs = append(recs, q.rec)
				idx = append(idx, i)
			}
		}
		clear(refused)
		var err error
		if len(recs) > 0 {
			err = r.put(r.stopCtx, recs, func(i int, err error) {
				if refused == nil {
					refused = map[int]error{}
				}
				refused[idx[i]] = err
			})
		}
		if err != nil && !r.shuttingDown() {
			r.markOutage(err)
		}
		// The spool learns what is in the store before anyone waiting
		// does: a Flush that returned finds its records accounted for.
		bySeg := map[int64]int{}
		for i, q := range buf {
			if _, isRefused := refused[i]; q.spooled && (isRefused || err == nil) {
				bySeg[q.seg]++ // in the store, or set aside: done with
			}
		}
		for seg, n := range bySeg {
			r.spool.Committed(seg, n)
		}
		for i, q := range buf {
			rerr, isRefused := refused[i]
			switch {
			case isRefused:
				if q.ack != nil {
					q.ack <- fmt.Errorf("billing: usage record %s refused by the store: %w", q.rec.RequestID, rerr)
				}
			case err != nil:
				r.parkErr(q, err)
			case q.ack != nil:
				q.ack <- nil
			}
		}
		if err != nil {
			r.wake()
		}
		buf, waiters = buf[:0], 0
	}
	take := func(q *queued) {
		if r.outage.Load() {
			r.park(*q)
			return
		}
		buf = append(buf, *q)
		if q.ack != nil {
			waiters++
		}
	}
	for {
		select {
		case q, ok := <-r.queue:
			if !ok {
				if len(buf) > 0 {
					flush()
				}
				return
			}
			take(q)
			// Take whatever else is already queued, up to a batch.
		drain:
			for len(buf) < r.batch {
				select {
				case q, ok = <-r.queue:
					if !ok {
						break drain
					}
					take(q)
				default:
					break drain
				}
			}
			if waiters > 0 || len(buf) >= r.batch {
				flush()
			}
			if !ok {
				if len(buf) > 0 {
					flush()
				}
				return
			}
		case <-ticker.C:
			if len(buf) > 0 {
				flush()
			}
		case reply := <-r.resume:
			reply <- r.leaveOutage()
		}
	}
}

// insert writes records in batches (see put), but for those already set
// aside: a segment is replayed whole, bad records included.
func (r *Recorder) insert(ctx context.Context, recs []books.UsageRecord) error {
	recs = r.withoutAside(recs)
	for i := 0; i < len(recs); i += r.batch {
		if err := r.put(ctx, recs[i:min(i+r.batch, len(recs))], nil); err != nil {
			return err
		}
	}
	return nil
}

// put writes recs. A record the store refuses for what it holds is set
// aside (setAside) and reported to refused, if not nil, with its index in
// recs; the others are written. It returns an error when the store could
// not be written: then nothing is known of the records not set aside, and
// they must be kept (inserts are idempotent: some may be in already).
//
// Only a data or constraint error (isBadData) blames the records: the
// batch is bisected down to the ones at fault, and a record is set aside
// only if its own insert fails with one. Any other error (the store
// unreachable, a lock wait or statement timeout, a full disk, a
// serialization failure) blames none: it is retried a few times, then
// returned, and the records wait for the replay.
func (r *Recorder) put(ctx context.Context, recs []books.UsageRecord, refused func(i int, err error)) error {
	return r.putFrom(ctx, recs, 0, refused)
}

func (r *Recorder) putFrom(ctx context.Context, recs []books.UsageRecord, base int, refused func(int, error)) error {
	err := r.tryInsert(ctx, recs)
	if err == nil || classify(err) != errBadData {
		return err
	}
	if len(recs) == 1 {
		r.setAside(recs[0], err)
		if refused != nil {
			refused(base, err)
		}
		return nil
	}
	mid := len(recs) / 2
	if err := r.putFrom(ctx, recs[:mid], base, refused); err != nil {
		return err
	}
	return r.putFrom(ctx, recs[mid:], base+mid, refused)
}

// tryInsert writes recs, retrying briefly: a transient failure (a lock, a
// dropped connection, a serialization failure or deadlock) must not start
// an outage. A data error is not retried: it would fail again. Inserts
// are idempotent by request id, so a retry after an ambiguous failure
// cannot double-count.
func (r *Recorder) tryInsert(ctx context.Context, recs []books.UsageRecord) error {
	backoff := r.retryBackoff
	for attempt := 1; ; attempt++ {
		err := r.insertOne(ctx, recs)
		if err == nil || attempt >= r.attempts || classify(err) == errBadData || ctx.Err() != nil {
			return err
		}
		lvl := zap.WarnLevel
		if r.outage.Load() {
			lvl = zap.DebugLevel // logFailure reports the outage, rate-limited
		}
		r.log.Log(lvl, "usage write failed, retrying", zap.Int("records", len(recs)), zap.Int("attempt", attempt), zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

func (r *Recorder) insertOne(ctx context.Context, recs []books.UsageRecord) error {
	ctx, cancel := context.WithTimeout(ctx, r.writeTimeout)
	defer cancel()
	err := r.w.InsertUsage(ctx, recs)
	if err == nil {
		r.setProbe(recs)
	}
	return err
}

// setAside keeps a record the store refuses in the spool's rejected file,
// for an operator to correct and replay; without a spool (or if that
// fails) the log line is all that is left of it. It logs the record's ids
// and the store's error, never more of the request.
func (r *Recorder) setAside(rec books.UsageRecord, cause error) {
	r.amu.Lock()
	if r.aside == nil {
		r.aside = map[string]struct{}{}
	}
	if len(r.aside) < maxAside {
		r.aside[rec.RequestID] = struct{}{}
	}
	r.amu.Unlock()
	ids := []zap.Field{zap.String("request_id", rec.RequestID), zap.String("account_id", rec.AccountID), zap.String("key_id", rec.KeyID), zap.Int64("cost_nano", rec.CostNano)}
	if r.spool != nil {
		err := r.spool.reject([]books.UsageRecord{rec})
		if err == nil {
			r.log.Error("usage record refused by the store; set aside in the spool's rejected file",
				append(ids, zap.String("file", r.spool.rejectedPath()), zap.Error(cause))...)
			return
		}
		cause = errors.Join(cause, err)
	}
	r.log.Error("usage record refused by the store and not kept: this log line is all that is left of it",
		append(ids, zap.Reflect("usage", rec), zap.Error(cause))...)
}

// withoutAside returns recs but for the records already set aside (recs
// itself if none is).
func (r *Recorder) withoutAside(recs []books.UsageRecord) []books.UsageRecord {
	r.amu.Lock()
	defer r.amu.Unlock()
	if len(r.aside) == 0 {
		return recs
	}
	var out []books.UsageRecord
	for i, rec := range recs {
		if _, ok := r.aside[rec.RequestID]; !ok {
			if out != nil {
				out = append(out, rec)
			}
			continue
		}
		if out == nil {
			out = append(make([]books.UsageRecord, 0, len(recs)), recs[:i]...)
		}
	}
	if out == nil {
		return recs
	}
	return out
}

// setProbe remembers a record just written (a copy: recs is reused).
func (r *Recorder) setProbe(recs []books.UsageRecord) {
	p := recs[len(recs)-1]
	r.probe.Store(&p)
}
