// Package billing meters requests: usage records written off the hot path
// in batches (group commit), and, as it grows, costs and credits.
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

// Recorder queues usage records and writes them in batches from one
// goroutine. Record never drops a record: when the queue is full it waits
// (backpressure) rather than lose metering.
type Recorder struct {
	w        UsageWriter
	log      *zap.Logger
	batch    int
	interval time.Duration

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan store.UsageRecord
	done   chan struct{}
}

// NewRecorder starts the writer goroutine; Close stops it.
func NewRecorder(w UsageWriter, log *zap.Logger, batchSize, queueSize int, flushInterval time.Duration) *Recorder {
	r := &Recorder{
		w:        w,
		log:      log,
		batch:    batchSize,
		interval: flushInterval,
		queue:    make(chan store.UsageRecord, queueSize),
		done:     make(chan struct{}),
	}
	go r.run()
	return r
}

// Record queues one record. It blocks only while the queue is full.
func (r *Recorder) Record(rec store.UsageRecord) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	r.queue <- rec
	return nil
}

// Pending is the number of queued records not yet written.
func (r *Recorder) Pending() int { return len(r.queue) }

// Close stops accepting records, writes everything queued and returns when
// done or when ctx ends (then it reports how many records were not written).
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
	buf := make([]store.UsageRecord, 0, r.batch)
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		select {
		case rec, ok := <-r.queue:
			if !ok {
				r.flush(buf)
				return
			}
			buf = append(buf, rec)
			// Take whatever else is already queued, up to a batch.
			for len(buf) < r.batch {
				select {
				case rec, ok = <-r.queue:
					if !ok {
						r.flush(buf)
						return
					}
					buf = append(buf, rec)
					continue
				default:
				}
				break
			}
			if len(buf) >= r.batch {
				r.flush(buf)
				buf = buf[:0]
			}
		case <-ticker.C:
			if len(buf) > 0 {
				r.flush(buf)
				buf = buf[:0]
			}
		}
	}
}

// flush writes a batch, retrying with backoff: a transient database error
// must not lose metering. Inserts are idempotent by request id, so a retry
// after an ambiguous failure cannot double-count.
func (r *Recorder) flush(buf []store.UsageRecord) {
	if len(buf) == 0 {
		return
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.w.InsertUsage(ctx, buf)
		cancel()
		if err == nil {
			return
		}
		if attempt >= 8 {
			r.log.Error("usage records lost after retries", zap.Int("records", len(buf)), zap.Error(err))
			return
		}
		r.log.Warn("usage write failed, retrying", zap.Int("records", len(buf)), zap.Int("attempt", attempt), zap.Error(err))
		time.Sleep(backoff)
		backoff *= 2
	}
}
