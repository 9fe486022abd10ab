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
	rec store.UsageRecord
	ack chan error // nil for fire-and-forget records
}

// Recorder writes usage records by group commit: one goroutine takes
// everything queued, writes it in one transaction, and acknowledges each
// waiting request. Concurrent requests share a commit, so durability costs
// one transaction per batch, not per request. Nothing is dropped: when the
// queue is full, callers wait.
type Recorder struct {
	w     UsageWriter
	log   *zap.Logger
	batch int

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan queued
	done   chan struct{}
}

// NewRecorder starts the writer goroutine; Close stops it. flushInterval
// is kept for configuration compatibility: batches are written as soon as
// the previous commit finishes.
func NewRecorder(w UsageWriter, log *zap.Logger, batchSize, queueSize int, _ time.Duration) *Recorder {
	r := &Recorder{
		w:     w,
		log:   log,
		batch: batchSize,
		queue: make(chan queued, queueSize),
		done:  make(chan struct{}),
	}
	go r.run()
	return r
}

// Record queues one record without waiting for its commit.
func (r *Recorder) Record(rec store.UsageRecord) error {
	return r.enqueue(queued{rec: rec})
}

// Commit queues one record and waits until it is committed (or ctx ends):
// the caller may then send the final byte of its answer knowing the record
// survives a crash of the process.
func (r *Recorder) Commit(ctx context.Context, rec store.UsageRecord) error {
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
	for {
		q, ok := <-r.queue
		if !ok {
			return
		}
		buf = append(buf[:0], q)
		// Take whatever else is already queued, up to a batch: the records
		// that arrived during the previous commit share this one.
	drain:
		for len(buf) < r.batch {
			select {
			case q, ok = <-r.queue:
				if !ok {
					break drain
				}
				buf = append(buf, q)
			default:
				break drain
			}
		}
		recs = recs[:0]
		for _, q := range buf {
			recs = append(recs, q.rec)
		}
		err := r.flush(recs)
		for _, q := range buf {
			if q.ack != nil {
				q.ack <- err
			}
		}
		if !ok {
			return
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
