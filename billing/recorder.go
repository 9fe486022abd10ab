// Package billing meters requests: usage records written by group commit,
// costs from catalog prices, the credits ledger with reservations, budgets
// and usage reports.
//
// The usage recorder is four files: recorder.go (its API: Record, Commit,
// Flush, Close), groupcommit.go (the writer), outage.go (keeping records
// while the store is down), replay.go (writing them back from the spool)
// and errclass.go (what a failed write says about the store).
package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

// UsageWriter persists a batch of records atomically and idempotently
// (a record whose request id exists is skipped).
type UsageWriter interface {
	InsertUsage(ctx context.Context, recs []books.UsageRecord) error
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("billing: recorder closed")

// ErrStoreDown is returned (wrapped) by Flush, and by a Commit that could
// not be made durable, while the store cannot be written: the records are
// kept and written when it answers again.
var ErrStoreDown = errors.New("billing: usage store unavailable; records kept for replay")

type queued struct {
	rec     books.UsageRecord
	ack     chan error // nil for fire-and-forget records
	spooled bool       // already durable in the spool
	seg     int64
	barrier bool // no record: Flush's marker
}

// Recorder writes usage records by group commit: one goroutine takes
// everything queued, writes it in one transaction, and acknowledges each
// waiting request. Concurrent requests share a commit, so durability costs
// one transaction per batch, not per request.
//
// A record the store refuses for what it holds (a data or constraint
// error, see isBadData) is set aside in the spool's rejected file and the
// rest of its batch written: one bad record neither blocks the others nor
// counts as the store being down. No other error blames a record: a lock
// wait that timed out, a full disk or a cancelled statement keep the
// records and retry them.
//
// When a batch cannot be written, the recorder enters an outage: it keeps
// accepting records (a spool append each, nothing piling up in memory) and
// a second goroutine replays the spool's sealed segments from disk, with
// capped backoff, for as long as it takes the store to take them; then
// the writer resumes. Request handlers never wait on the store: a spooled
// record that finds the queue full stays on disk for the replay (Flush and
// Close still wait for it). Without a spool (or when an append fails)
// records wait in memory, up to the queue size; only beyond that is one
// dropped, and then logged.
type Recorder struct {
	w        UsageWriter
	log      *zap.Logger
	batch    int
	interval time.Duration
	spool    *Spool
	onOutage func()

	attempts               int           // tries of a write before its error is believed
	retryBackoff           time.Duration // before the first retry, doubling
	writeTimeout           time.Duration // of one write
	minBackoff, maxBackoff time.Duration // of the replay during an outage
	maxBacklog             int           // unspooled records held in memory during an outage

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	// queue holds pointers: a buffer of usage.queue_size records by value
	// (65,536 by default, ~330 bytes each) is 21 MB of heap held from the
	// start, which the GC scans on every cycle and doubles in its target,
	// as RSS, whether or not one record waits.
	queue chan *queued
	done  chan struct{}

	outage   atomic.Bool
	reported atomic.Bool                       // onOutage ran for this outage
	kick     chan struct{}                     // wakes the replay (buffered, one)
	resume   chan chan resumed                 // the replay asks the writer to leave the outage
	stop     chan struct{}                     // closed when the writer ends: the replay ends too
	stopCtx  context.Context                   // every write, cancelled when Close's ctx ends
	cancel   context.CancelFunc                // of stopCtx
	wg       sync.WaitGroup                    // the replay goroutine
	probe    atomic.Pointer[books.UsageRecord] // a record known to be in the store

	// letGo counts the records the writer let go of to the replay: spooled
	// ones that found the queue full, and those parked during an outage.
	// The replay reports in covered how many of them it has written: a
	// Flush waits until covered reaches what letGo was at its call.
	letGo    atomic.Int64
	pmu      sync.Mutex
	covered  int64         // guarded by pmu
	passDone chan struct{} // closed when a replay pass ends; guarded by pmu
	passErr  error         // of the last pass; guarded by pmu

	bmu     sync.Mutex
	backlog []books.UsageRecord // records no spool could take, during an outage

	amu   sync.Mutex
	aside map[string]struct{} // request ids set aside, not to be written again

	fails failLog
}

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder)

// WithSpool makes Commit durable through the spool (one append) instead of
// a database commit per request; the store is then written in batches
// every flush interval.
func WithSpool(s *Spool) RecorderOption { return func(r *Recorder) { r.spool = s } }

// WithOnOutage calls f when the recorder finds the store unreachable (a
// connection error; see IsUnreachable), once per outage, from one of its
// goroutines. A record the store refuses, or a write that is only slow,
// does not call it. f must not block.
func WithOnOutage(f func()) RecorderOption { return func(r *Recorder) { r.onOutage = f } }

// withBackoff sets the replay's backoff (tests).
func withBackoff(lo, hi time.Duration) RecorderOption {
	return func(r *Recorder) { r.minBackoff, r.maxBackoff = lo, hi }
}

// withWriteTimeout bounds one write (tests).
func withWriteTimeout(d time.Duration) RecorderOption {
	return func(r *Recorder) { r.writeTimeout = d }
}

// withFailLogEvery sets how often a failure that persists is logged (tests).
func withFailLogEvery(d time.Duration) RecorderOption {
	return func(r *Recorder) { r.fails.every = d }
}

// NewRecorder starts the writer goroutine; Close stops it. Spooled and
// fire-and-forget records are written in batches of batchSize or every
// flushInterval; a record a caller waits on is written at once. Records a
// previous process left in the spool are replayed in the background.
func NewRecorder(w UsageWriter, log *zap.Logger, batchSize, queueSize int, flushInterval time.Duration, opts ...RecorderOption) *Recorder {
	r := &Recorder{
		w:            w,
		log:          log,
		batch:        batchSize,
		interval:     flushInterval,
		attempts:     3,
		retryBackoff: 20 * time.Millisecond,
		writeTimeout: 5 * time.Second,
		minBackoff:   250 * time.Millisecond,
		maxBackoff:   5 * time.Second,
		maxBacklog:   queueSize,
		queue:        make(chan *queued, queueSize),
		done:         make(chan struct{}),
		kick:         make(chan struct{}, 1),
		resume:       make(chan chan resumed),
		stop:         make(chan struct{}),
		passDone:     make(chan struct{}),
		fails:        failLog{every: 30 * time.Second},
	}
	for _, o := range opts {
		o(r)
	}
	r.stopCtx, r.cancel = context.WithCancel(context.Background())
	if r.spool != nil {
		// A spool without a logger of its own reports through ours.
		r.spool.log.CompareAndSwap(nil, log)
	}
	if r.spool != nil && len(r.spool.sealed(r.spool.current())) > 0 {
		// A previous process left records: the replay writes them, and a
		// Flush waits for them as for any record let go of.
		left, _ := r.spool.Stats()
		r.letGo.Add(max(left, 1))
		r.wake()
	}
	r.wg.Add(1)
	go r.recoverLoop()
	go r.run()
	return r
}

// Record queues one record without waiting for its commit.
func (r *Recorder) Record(rec books.UsageRecord) error {
	return r.enqueue(&queued{rec: rec})
}

// Commit makes one record durable before returning: the caller may then
// send the final byte of its answer knowing the record survives a crash of
// the process. With a spool that is one append; without, it waits for the
// record's database commit (or ctx). During a store outage with the spool
// full it returns ErrSpoolFull: the record is not kept.
func (r *Recorder) Commit(ctx context.Context, rec books.UsageRecord) error {
	if r.spool != nil {
		seg, err := r.spool.Append(rec)
		if err == nil {
			return r.enqueue(&queued{rec: rec, spooled: true, seg: seg})
		}
		if errors.Is(err, ErrSpoolFull) && r.outage.Load() {
			return ErrSpoolFull
		}
		r.log.Warn("usage spool append failed; committing to the store directly", zap.Error(err))
	}
	ack := make(chan error, 1)
	if err := r.enqueue(&queued{rec: rec, ack: ack}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		return ctx.Err() // the record is still written; only the wait ends
	}
}

func (r *Recorder) enqueue(q *queued) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	select {
	case r.queue <- q:
		return nil
	default:
	}
	// The queue is full: the writer is stuck on a slow store. A record on
	// disk need not wait for it; the replay writes it from there.
	if !q.spooled && q.ack == nil && !q.barrier && r.spool != nil {
		if _, err := r.spool.Append(q.rec); err == nil {
			q.spooled = true
		}
	}
	if q.spooled {
		r.letGo.Add(1) // after its append: the replay's count covers it
		r.wake()
		return nil
	}
	r.queue <- q
	return nil
}

// wake starts a replay pass if none is due.
func (r *Recorder) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Flush writes everything recorded before the call and waits for it: the
// writer's queue, and the records it let go of to the replay (spooled ones
// that found the queue full). During an outage it returns ErrStoreDown at
// once: the records are kept for the replay.
func (r *Recorder) Flush(ctx context.Context) error {
	ack := make(chan error, 1)
	if err := r.enqueue(&queued{ack: ack, barrier: true}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	// Read after the barrier: it counts what the writer let go of before
	// it, and every record that overflowed before the call.
	return r.waitReplayed(ctx, r.letGo.Load())
}

// waitReplayed waits until the replay has written the first target records
// the writer let go of, starting passes as needed.
func (r *Recorder) waitReplayed(ctx context.Context, target int64) error {
	for {
		r.pmu.Lock()
		covered, passDone, passErr := r.covered, r.passDone, r.passErr
		r.pmu.Unlock()
		switch {
		case covered >= target:
			return nil
		case r.outage.Load():
			return storeDown(passErr)
		}
		r.wake()
		select {
		case <-passDone:
		case <-r.done:
			// The writer ended after a last replay (see finish).
			r.pmu.Lock()
			covered = r.covered
			r.pmu.Unlock()
			switch {
			case covered >= target:
				return nil
			case r.outage.Load():
				return storeDown(nil)
			}
			return fmt.Errorf("%w: usage records kept in the spool for the next start", ErrClosed)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func storeDown(cause error) error {
	if cause == nil || errors.Is(cause, ErrStoreDown) {
		return ErrStoreDown
	}
	return fmt.Errorf("%w: %w", ErrStoreDown, cause)
}

// Pending is the number of queued records not yet written.
func (r *Recorder) Pending() int { return len(r.queue) }

// Outage reports whether the store could not be written and records are
// being kept for replay.
func (r *Recorder) Outage() bool { return r.outage.Load() }

// Spooled is what waits to reach the store: records in the spool (and in
// memory, without a spool) and the spool's bytes on disk.
func (r *Recorder) Spooled() (records, bytes int64) {
	if r.spool != nil {
		records, bytes = r.spool.Stats()
	}
	r.bmu.Lock()
	records += int64(len(r.backlog))
	r.bmu.Unlock()
	return records, bytes
}

// Full reports that new requests should be refused: during an outage, the
// spool is within 1/16 of its limit (the rest is headroom for requests
// already in flight) or the in-memory backlog is at its bound.
func (r *Recorder) Full() bool {
	if !r.outage.Load() {
		return false
	}
	if r.spool == nil {
		r.bmu.Lock()
		defer r.bmu.Unlock()
		return len(r.backlog) >= r.maxBacklog
	}
	limit := r.spool.Limit()
	_, bytes := r.spool.Stats()
	return limit > 0 && bytes >= limit-limit/16
}

// Close stops accepting records, writes everything queued and, unless the
// store is in an outage, everything the writer let go of to the spool; it
// returns when done or when ctx ends. The end of ctx also cancels the
// writes still in flight: what they held stays in the spool for the next
// start, as do spooled records during an outage.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	stop := context.AfterFunc(ctx, r.cancel)
	defer stop()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel() // now: stop may otherwise win against the AfterFunc
		return errors.Join(ctx.Err(), errors.New("billing: usage records still queued at shutdown"))
	}
}
