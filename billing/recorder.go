// Package billing meters requests: usage records written by group commit,
// costs from catalog prices, the credits ledger with reservations, budgets
// and usage reports.
package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// ErrStoreDown is returned (wrapped) by Flush, and by a Commit that could
// not be made durable, while the store cannot be written: the records are
// kept and written when it answers again.
var ErrStoreDown = errors.New("billing: usage store unavailable; records kept for replay")

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
// one transaction per batch, not per request.
//
// When a batch cannot be written, the recorder enters an outage: it keeps
// accepting records (a spool append each, nothing piling up in memory) and
// a second goroutine replays the spool's sealed segments from disk, with
// capped backoff, until the store takes them; then the writer resumes.
// Request handlers never wait on the store: a spooled record that finds
// the queue full stays on disk for the replay. Without a spool (or when
// an append fails) records wait in memory, up to the queue size; only
// beyond that is one dropped, and then logged.
type Recorder struct {
	w        UsageWriter
	log      *zap.Logger
	batch    int
	interval time.Duration
	spool    *Spool
	onOutage func()

	attempts               int           // quick retries of a batch before an outage
	minBackoff, maxBackoff time.Duration // of the replay during an outage
	maxBacklog             int           // unspooled records held in memory during an outage

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan queued
	done   chan struct{}

	outage   atomic.Bool
	overflow atomic.Bool                       // spooled records skipped the full queue: replay them
	kick     chan struct{}                     // wakes the replay (buffered, one)
	resume   chan chan int64                   // the replay asks the writer to leave the outage
	stop     chan struct{}                     // closed when the writer ends: the replay ends too
	stopCtx  context.Context                   // the replay's writes, cancelled at the end
	cancel   context.CancelFunc                // of stopCtx
	wg       sync.WaitGroup                    // the replay goroutine
	probe    atomic.Pointer[store.UsageRecord] // a record known to be in the store

	bmu     sync.Mutex
	backlog []store.UsageRecord // records no spool could take, during an outage
}

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder)

// WithSpool makes Commit durable through the spool (one append) instead of
// a database commit per request; the store is then written in batches
// every flush interval.
func WithSpool(s *Spool) RecorderOption { return func(r *Recorder) { r.spool = s } }

// WithOnOutage calls f each time the recorder enters an outage (a batch or
// a replay could not be written), from one of its goroutines. f must not
// block.
func WithOnOutage(f func()) RecorderOption { return func(r *Recorder) { r.onOutage = f } }

// withBackoff sets the replay's backoff (tests).
func withBackoff(lo, hi time.Duration) RecorderOption {
	return func(r *Recorder) { r.minBackoff, r.maxBackoff = lo, hi }
}

// NewRecorder starts the writer goroutine; Close stops it. Spooled and
// fire-and-forget records are written in batches of batchSize or every
// flushInterval; a record a caller waits on is written at once. Records a
// previous process left in the spool are replayed in the background.
func NewRecorder(w UsageWriter, log *zap.Logger, batchSize, queueSize int, flushInterval time.Duration, opts ...RecorderOption) *Recorder {
	r := &Recorder{
		w:          w,
		log:        log,
		batch:      batchSize,
		interval:   flushInterval,
		attempts:   3,
		minBackoff: 250 * time.Millisecond,
		maxBackoff: 5 * time.Second,
		maxBacklog: queueSize,
		queue:      make(chan queued, queueSize),
		done:       make(chan struct{}),
		kick:       make(chan struct{}, 1),
		resume:     make(chan chan int64),
		stop:       make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	r.stopCtx, r.cancel = context.WithCancel(context.Background())
	if r.spool != nil && len(r.spool.sealed(r.spool.current())) > 0 {
		r.wake() // a previous process left records
	}
	r.wg.Add(1)
	go r.recoverLoop()
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
// record's database commit (or ctx). During a store outage with the spool
// full it returns ErrSpoolFull: the record is not kept.
func (r *Recorder) Commit(ctx context.Context, rec store.UsageRecord) error {
	if r.spool != nil {
		seg, err := r.spool.Append(rec)
		if err == nil {
			return r.enqueue(queued{rec: rec, spooled: true, seg: seg})
		}
		if errors.Is(err, ErrSpoolFull) && r.outage.Load() {
			return ErrSpoolFull
		}
		r.log.Warn("usage spool append failed; committing to the store directly", zap.Error(err))
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
		r.overflow.Store(true)
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

// Flush writes everything queued so far and waits for it. During an
// outage it returns ErrStoreDown at once: the records are kept for the
// replay.
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

// Close stops accepting records, writes everything queued and returns when
// done or when ctx ends. During an outage, spooled records stay in the
// spool for the next start.
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
	defer r.finish()
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
			err = r.write(recs)
		}
		if err != nil {
			r.enterOutage(buf, err)
			buf, waiters = buf[:0], 0
			return
		}
		bySeg := map[int64]int{}
		for _, q := range buf {
			if q.ack != nil {
				q.ack <- nil
			}
			if q.spooled {
				bySeg[q.seg]++
			}
		}
		for seg, n := range bySeg {
			r.spool.Committed(seg, n)
		}
		buf, waiters = buf[:0], 0
	}
	take := func(q queued) {
		if r.outage.Load() {
			r.park(q)
			return
		}
		buf = append(buf, q)
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

// write writes a batch, retrying briefly: a transient database error (a
// lock, a dropped connection) must not start an outage. Inserts are
// idempotent by request id, so a retry after an ambiguous failure cannot
// double-count.
func (r *Recorder) write(recs []store.UsageRecord) error {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := r.w.InsertUsage(ctx, recs)
		cancel()
		if err == nil {
			r.setProbe(recs)
			return nil
		}
		if attempt >= r.attempts {
			return err
		}
		r.log.Warn("usage write failed, retrying", zap.Int("records", len(recs)), zap.Int("attempt", attempt), zap.Error(err))
		time.Sleep(backoff)
		backoff *= 2
	}
}

// enterOutage keeps the records of a batch that could not be written and
// hands them to the replay.
func (r *Recorder) enterOutage(buf []queued, err error) {
	r.markOutage(err)
	for _, q := range buf {
		r.parkErr(q, err)
	}
	r.wake()
}

// markOutage notes that the store could not be written: from now on the
// writer lets spooled records go to the replay.
func (r *Recorder) markOutage(err error) {
	if !r.outage.Swap(true) {
		r.log.Error("usage store unavailable; records kept in the spool for replay", zap.Error(err))
		if r.onOutage != nil {
			r.onOutage()
		}
	}
}

// park keeps one record that arrived during an outage.
func (r *Recorder) park(q queued) { r.parkErr(q, nil) }

func (r *Recorder) parkErr(q queued, cause error) {
	ack := func(err error) {
		if q.ack != nil {
			q.ack <- err
		}
	}
	down := ErrStoreDown
	if cause != nil {
		down = fmt.Errorf("%w: %w", ErrStoreDown, cause)
	}
	switch {
	case q.barrier:
		ack(down)
	case q.spooled:
		// On disk, counted pending in its segment: the replay writes it.
	case r.spool != nil && r.appendParked(q.rec):
		ack(nil) // durable now
	default:
		r.bmu.Lock()
		kept := len(r.backlog) < r.maxBacklog
		if kept {
			r.backlog = append(r.backlog, q.rec)
		}
		r.bmu.Unlock()
		if kept {
			ack(down)
			return
		}
		r.log.Error("usage record dropped: store unavailable and nowhere to keep it",
			zap.String("request_id", q.rec.RequestID), zap.String("account_id", q.rec.AccountID), zap.Int64("cost_nano", q.rec.CostNano))
		ack(ErrSpoolFull)
	}
}

func (r *Recorder) appendParked(rec store.UsageRecord) bool {
	_, err := r.spool.Append(rec)
	return err == nil
}

// leaveOutage runs on the writer when the replay found the store answering:
// from now on records are written from memory again. The spool is rotated
// so that every record the writer let go of during the outage is in a
// sealed segment, which the replay then writes; it returns the first
// segment the replay need not read.
func (r *Recorder) leaveOutage() int64 {
	was := r.outage.Swap(false)
	over := r.overflow.Swap(false)
	if r.spool == nil {
		return 0
	}
	if was || over {
		cur, err := r.spool.rotate()
		if err != nil {
			r.log.Error("usage spool rotation failed", zap.Error(err))
		}
		return cur
	}
	return r.spool.current()
}

// finish runs when the writer ends: the replay stops, and records that
// only memory holds get one last chance before they are reported lost.
func (r *Recorder) finish() {
	r.cancel()
	close(r.stop)
	r.wg.Wait()
	r.bmu.Lock()
	left := r.backlog
	r.backlog = nil
	r.bmu.Unlock()
	if len(left) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := r.w.InsertUsage(ctx, left)
		cancel()
		if err != nil {
			ids := make([]string, len(left))
			for i, rec := range left {
				ids[i] = rec.RequestID
			}
			r.log.Error("usage records lost at shutdown: store unavailable and no spool", zap.Int("records", len(left)), zap.Strings("request_ids", ids), zap.Error(err))
		}
	}
	if r.spool != nil {
		if recs, _ := r.spool.Stats(); recs > 0 && r.outage.Load() {
			r.log.Warn("usage records left in the spool for the next start", zap.Int64("records", recs))
		}
		r.spool.Close()
	}
}

// recoverLoop replays what the writer could not write, when woken (an
// outage, a full queue, records left by a previous process), retrying
// with capped backoff until a pass succeeds.
func (r *Recorder) recoverLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		backoff := r.minBackoff
		for !r.recoverOnce() {
			t := time.NewTimer(backoff)
			select {
			case <-r.stop:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, r.maxBackoff)
		}
	}
}

// recoverOnce is one replay pass: the sealed segments and the backlog
// while the writer still lets records go (the bulk, and the probe that the
// store answers), then, once the writer is back, what it let go of since.
func (r *Recorder) recoverOnce() bool {
	if r.spool != nil && (r.outage.Load() || r.overflow.Load()) {
		// Seal what the writer let go of, so that this pass writes it and
		// so proves the store answers before the writer resumes.
		if _, err := r.spool.rotate(); err != nil {
			r.log.Error("usage spool rotation failed", zap.Error(err))
		}
	}
	n, err := r.replay(r.currentSeg())
	if err != nil {
		r.markOutage(err)
		r.log.Warn("usage replay failed; retrying", zap.Error(err))
		return false
	}
	if n == 0 && r.outage.Load() && r.probe.Load() != nil && !r.storeTakesWrites(r.stopCtx) {
		// Nothing was sealed yet to show the store answers: ask it, or the
		// writer would resume only to fail again.
		return false
	}
	reply := make(chan int64, 1)
	select {
	case r.resume <- reply:
	case <-r.stop:
		return true
	}
	var before int64
	select {
	case before = <-reply:
	case <-r.stop:
		return true
	}
	if _, err := r.replay(before); err != nil {
		r.markOutage(err)
		r.log.Warn("usage replay failed; retrying", zap.Error(err))
		return false
	}
	return true
}

func (r *Recorder) currentSeg() int64 {
	if r.spool == nil {
		return 0
	}
	return r.spool.current()
}

// replay writes the sealed segments below before, then the backlog, and
// returns how many records it wrote.
func (r *Recorder) replay(before int64) (int, error) {
	n := 0
	if r.spool != nil {
		var err error
		n, err = r.spool.replay(r.stopCtx, before, r.insert)
		if n > 0 {
			r.log.Info("usage records replayed from the spool", zap.Int("records", n))
		}
		if err != nil {
			return n, err
		}
	}
	r.bmu.Lock()
	left := append([]store.UsageRecord(nil), r.backlog...)
	r.bmu.Unlock()
	if len(left) == 0 {
		return n, nil
	}
	if err := r.insert(r.stopCtx, left); err != nil {
		return n, err
	}
	r.bmu.Lock()
	r.backlog = r.backlog[len(left):] // the writer only appends meanwhile
	r.bmu.Unlock()
	return n + len(left), nil
}

// insert writes records in batches. A batch the store refuses is split
// only when the store is shown to take writes (a record already stored
// inserts again, a no-op): then the records it still refuses are bad
// records, kept aside in the spool's rejected file rather than blocking
// the replay forever. Otherwise the store is down and the error returned.
func (r *Recorder) insert(ctx context.Context, recs []store.UsageRecord) error {
	for i := 0; i < len(recs); i += r.batch {
		batch := recs[i:min(i+r.batch, len(recs))]
		err := r.insertOne(ctx, batch)
		if err == nil {
			continue
		}
		for _, rec := range batch {
			if r.insertOne(ctx, []store.UsageRecord{rec}) == nil {
				continue
			}
			if !r.storeTakesWrites(ctx) {
				return err
			}
			r.log.Error("usage record refused by the store; kept aside in the spool's rejected file",
				zap.String("request_id", rec.RequestID), zap.String("file", rejectedFile), zap.Error(err))
			if r.spool == nil {
				return err
			}
			if rerr := r.spool.reject([]store.UsageRecord{rec}); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
	}
	return nil
}

func (r *Recorder) insertOne(ctx context.Context, recs []store.UsageRecord) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := r.w.InsertUsage(ctx, recs)
	if err == nil {
		r.setProbe(recs)
	}
	return err
}

// setProbe remembers a record just written (a copy: recs is reused).
func (r *Recorder) setProbe(recs []store.UsageRecord) {
	p := recs[len(recs)-1]
	r.probe.Store(&p)
}

// storeTakesWrites inserts again a record known to be stored.
func (r *Recorder) storeTakesWrites(ctx context.Context) bool {
	p := r.probe.Load()
	if p == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.w.InsertUsage(ctx, []store.UsageRecord{*p}) == nil
}
