// Outage handling: a batch the store does not take puts the recorder in
// an outage, during which records are kept (spool, or a bounded backlog in
// memory) and failures are logged rate-limited, until the replay finds the
// store answering and the writer leaves the outage.

package billing

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

// failLog rate-limits the Error lines of writes that keep failing.
type failLog struct {
	every time.Duration

	mu    sync.Mutex
	since time.Time // the first failure of this outage
	last  time.Time // the last line logged
	n     int       // failures since that line
}

// markOutage notes that the store could not be written: from now on the
// writer lets spooled records go to the replay. Only an unreachable store
// is reported to onOutage: a slow one is left to the health pings.
func (r *Recorder) markOutage(err error) {
	first := !r.outage.Swap(true)
	r.logFailure(first, err)
	if IsUnreachable(err) && !r.reported.Swap(true) && r.onOutage != nil {
		r.onOutage()
	}
}

// logFailure logs a failed write at Error: the first of an outage, then
// at most one line every fails.every, counting those in between.
func (r *Recorder) logFailure(first bool, err error) {
	f := &r.fails
	now := time.Now()
	f.mu.Lock()
	if first || f.since.IsZero() {
		f.since, f.last, f.n = now, time.Time{}, 0
	}
	f.n++
	n, since := f.n, f.since
	due := f.last.IsZero() || now.Sub(f.last) >= f.every
	if due {
		f.last, f.n = now, 0
	}
	f.mu.Unlock()
	if !due {
		r.log.Debug("usage write failed; records kept for replay", zap.Error(err))
		return
	}
	waiting, _ := r.Spooled()
	fields := []zap.Field{zap.Error(err), zap.Int("failures", n), zap.Duration("failing_for", now.Sub(since)), zap.Int64("records_waiting", waiting)}
	switch {
	case !first:
		r.log.Error("usage records still cannot be written; kept for replay, retrying", fields...)
	case IsUnreachable(err):
		r.log.Error("usage store unreachable; records kept for replay", fields...)
	default:
		r.log.Error("usage store does not take writes; records kept for replay, retrying", fields...)
	}
}

// shuttingDown reports that Close's ctx ended: a write that fails now was
// cancelled, which says nothing of the store.
func (r *Recorder) shuttingDown() bool { return r.stopCtx.Err() != nil }

// park keeps one record that arrived during an outage.
func (r *Recorder) park(q queued) { r.parkErr(q, nil) }

func (r *Recorder) parkErr(q queued, cause error) {
	ack := func(err error) {
		if q.ack != nil {
			q.ack <- err
		}
	}
	down := storeDown(cause)
	switch {
	case q.barrier:
		ack(down)
	case q.spooled:
		// On disk, counted pending in its segment: the replay writes it.
		r.letGo.Add(1)
	case r.spool != nil && r.appendParked(q.rec):
		r.letGo.Add(1)
		ack(nil) // durable now
	default:
		r.bmu.Lock()
		kept := len(r.backlog) < r.maxBacklog
		if kept {
			r.backlog = append(r.backlog, q.rec)
		}
		r.bmu.Unlock()
		if kept {
			r.letGo.Add(1)
			ack(down)
			return
		}
		r.log.Error("usage record dropped: store unavailable and nowhere to keep it",
			zap.String("request_id", q.rec.RequestID), zap.String("account_id", q.rec.AccountID), zap.Int64("cost_nano", q.rec.CostNano))
		ack(ErrSpoolFull)
	}
}

func (r *Recorder) appendParked(rec books.UsageRecord) bool {
	_, err := r.spool.Append(rec)
	return err == nil
}

// resumed is the writer's answer to the replay's resume.
type resumed struct {
	before int64 // the first segment the replay need not read
	upTo   int64 // letGo when the spool was rotated: the replay's pass covers these
}

// leaveOutage runs on the writer when the replay found the store answering:
// from now on records are written from memory again. The spool is rotated
// so that every record the writer let go of is in a sealed segment, which
// the replay then writes.
func (r *Recorder) leaveOutage() resumed {
	was := r.outage.Swap(false)
	r.reported.Store(false)
	if was {
		r.fails.mu.Lock()
		since := r.fails.since
		r.fails.since = time.Time{}
		r.fails.mu.Unlock()
		r.log.Info("usage store takes writes again; replaying the records kept", zap.Duration("failed_for", time.Since(since)))
	}
	// Read before the rotation: each record counted was spooled (or put in
	// the backlog) before it was counted, so before the rotation.
	upTo := r.letGo.Load()
	if r.spool == nil {
		return resumed{upTo: upTo}
	}
	if was || upTo > r.coveredCount() {
		cur, err := r.spool.rotate()
		if err != nil {
			r.log.Error("usage spool rotation failed", zap.Error(err))
			return resumed{before: cur} // covers nothing: the records wait for the next pass
		}
		return resumed{before: cur, upTo: upTo}
	}
	return resumed{before: r.spool.current(), upTo: upTo}
}

// storeTakesWrites inserts again a record known to be stored: a no-op
// that still needs the store to take a write. It proves no more: a record
// that debits a locked account row may still time out. Without a probe it
// reports nothing.
func (r *Recorder) storeTakesWrites(ctx context.Context) error {
	p := r.probe.Load()
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.writeTimeout)
	defer cancel()
	return r.w.InsertUsage(ctx, []books.UsageRecord{*p})
}
