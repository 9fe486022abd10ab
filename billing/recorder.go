// Package billing meters requests: usage records written by group commit,
// costs from catalog prices, the credits ledger with reservations, budgets
// and usage reports.
package billing

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
)

// UsageWriter persists a batch of records atomically and idempotently
// (a record whose request id exists is skipped).
type UsageWriter interface {
	InsertUsage(ctx context.Context, recs []store.UsageRecord) error
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("billing: recorder closed")

type queued struct {
	rec     store.UsageRecord
	ack     chan error // nil for fire-and-forget records
	spooled bool       // already durable in the spool
	seg     int64
	barrier bool // no record: Flush's marker
}

// Recorder writes usage records by group commit: one goroutine takes
// everything queued, writes it in one transaction, and acknowledges each
// waiting request. Concurrent requests share a commit, so durability costs
// one transaction per batch, not per request. Nothing is dropped: when the
// queue is full, callers wait.
type Recorder struct {
	w        UsageWriter
	log      *zap.Logger
	batch    int
	interval time.Duration
	spool    *Spool

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan queued
	done   chan struct{}
}

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder)

// WithSpool makes Commit durable through the spool (one append) instead of
// a database commit per request; the store is then written in batches
// every flush interval.
func WithSpool(s *Spool) RecorderOption { return func(r *Recorder) { r.spool = s } }

// NewRecorder starts the writer goroutine; Close stops it. Spooled and
// fire-and-forget records are written in batches of batchSize or every
// flushInterval; a record a caller waits on is written at once.
func NewRecorder(w UsageWriter, log *zap.Logger, batchSize, queueSize int, flushInterval time.Duration, opts ...RecorderOption) *Recorder {
	r := &Recorder{
		w:        w,
		log:      log,
		batch:    batchSize,
		interval: flushInterval,
		queue:    make(chan queued, queueSize),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	go r.run()
	return r
}

// Record queues one record without waiting for its commit.
func (r *Recorder) Record(rec store.UsageRecord) error {
	return r.enqueue(queued{rec: rec})
}

// Commit makes one record durable before returning: the caller may then
// send the final byte of its answer knowing the record survives a crash of
// the process. With a spool that is one append; without, it waits for the
// record's database commit (or ctx).
func (r *Recorder) Commit(ctx context.Context, rec store.UsageRecord) error {
	if r.spool != nil {
		if seg, err := r.spool.Append(rec); err == nil {
			return r.enqueue(queued{rec: rec, spooled: true, seg: seg})
		} else {
			r.log.Warn("usage spool append failed; committing to the store directly", zap.Error(err))
		}
	}
	ack := make(chan error, 1)
	if err := r.enqueue(queued{rec: rec, ack: ack}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		return ctx.Err() // the record is still written; only the wait ends
	}
}

func (r *Recorder) enqueue(q queued) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	r.queue <- q
	return nil
}

// Flush writes everything queued so far and waits for it.
func (r *Recorder) Flush(ctx context.Context) error {
	ack := make(chan error, 1)
	if err := r.enqueue(queued{ack: ack, barrier: true}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pending is the number of queued records not yet written.
func (r *Recorder) Pending() int { return len(r.queue) }

// Close stops accepting records, writes everything queued and returns when
// done or when ctx ends.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return errors.Join(ctx.Err(), errors.New("billing: usage records still queued at shutdown"))
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	buf := make([]queued, 0, r.batch)
	recs := make([]store.UsageRecord, 0, r.batch)
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	waiters := 0
	flush := func() {
		recs = recs[:0]
		for _, q := range buf {
			if !q.barrier {
				recs = append(recs, q.rec)
			}
		}
		var err error
		if len(recs) > 0 {
			err = r.flush(recs)
		}
		bySeg := map[int64]int{}
		for _, q := range buf {
			if q.ack != nil {
				q.ack <- err
			}
			if q.spooled && err == nil {
				bySeg[q.seg]++
			}
		}
		// A batch that could not be written stays in the spool and is
		// replayed at the next start.
		for seg, n := range bySeg {
			r.spool.Committed(seg, n)
		}
		buf, waiters = buf[:0], 0
	}
	for {
		select {
		case q, ok := <-r.queue:
			if !ok {
				if len(buf) > 0 {
					flush()
				}
				if r.spool != nil {
					r.spool.Close()
				}
				return
			}
			buf = append(buf, q)
			if q.ack != nil {
				waiters++
			}
			// Take whatever else is already queued, up to a batch.
		drain:
			for len(buf) < r.batch {
				select {
				case q, ok = <-r.queue:
					if !ok {
						break drain
					}
					buf = append(buf, q)
					if q.ack != nil {
						waiters++
					}
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
				if r.spool != nil {
					r.spool.Close()
				}
				return
			}
		case <-ticker.C:
			if len(buf) > 0 {
				flush()
			}
		}
	}
}

// flush writes a batch, retrying with backoff: a transient database error
// must not lose metering. Inserts are idempotent by request id, so a retry
// after an ambiguous failure cannot double-count.
func (r *Recorder) flush(recs []store.UsageRecord) error {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.w.InsertUsage(ctx, recs)
		cancel()
		if err == nil {
			return nil
		}
		if attempt >= 8 {
			r.log.Error("usage records lost after retries", zap.Int("records", len(recs)), zap.Error(err))
			return err
		}
		r.log.Warn("usage write failed, retrying", zap.Int("records", len(recs)), zap.Int("attempt", attempt), zap.Error(err))
		time.Sleep(backoff)
		backoff *= 2
	}
}
