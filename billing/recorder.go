// Package billing meters requests: usage records written by group commit,
// costs from catalog prices, the credits ledger with reservations, budgets
// and usage reports.
package billing

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

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
	queue  chan queued
	done   chan struct{}

	outage   atomic.Bool
	reported atomic.Bool                       // onOutage ran for this outage
	kick     chan struct{}                     // wakes the replay (buffered, one)
	resume   chan chan resumed                 // the replay asks the writer to leave the outage
	stop     chan struct{}                     // closed when the writer ends: the replay ends too
	stopCtx  context.Context                   // every write, cancelled when Close's ctx ends
	cancel   context.CancelFunc                // of stopCtx
	wg       sync.WaitGroup                    // the replay goroutine
	probe    atomic.Pointer[store.UsageRecord] // a record known to be in the store

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
	backlog []store.UsageRecord // records no spool could take, during an outage

	amu   sync.Mutex
	aside map[string]struct{} // request ids set aside, not to be written again

	fails failLog
}

// failLog rate-limits the Error lines of writes that keep failing.
type failLog struct {
	every time.Duration

	mu    sync.Mutex
	since time.Time // the first failure of this outage
	last  time.Time // the last line logged
	n     int       // failures since that line
}

// maxAside bounds the request ids kept of records set aside: beyond it, a
// replay may set one aside again (a duplicate line in the rejected file,
// harmless: inserts are idempotent).
const maxAside = 1 << 16

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
		queue:        make(chan queued, queueSize),
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
	if err := r.enqueue(queued{ack: ack, barrier: true}); err != nil {
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

func (r *Recorder) run() {
	defer close(r.done)
	defer r.finish()
	buf := make([]queued, 0, r.batch)
	recs := make([]store.UsageRecord, 0, r.batch)
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

func (r *Recorder) appendParked(rec store.UsageRecord) bool {
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

func (r *Recorder) coveredCount() int64 {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	return r.covered
}

// passEnded records the end of a replay pass, which covered the first
// upTo records let go of if err is nil, and wakes the Flushes waiting.
func (r *Recorder) passEnded(upTo int64, err error) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if err == nil {
		r.covered = max(r.covered, upTo)
	}
	r.passErr = err
	close(r.passDone)
	r.passDone = make(chan struct{})
}

// finish runs when the writer ends, having written what was queued: the
// replay stops after its pass in flight, then, unless the store is in an
// outage, a last pass writes what the writer let go of, within Close's
// ctx. Records that only memory holds get one last chance before they
// are reported lost.
func (r *Recorder) finish() {
	close(r.stop)
	r.wg.Wait()
	if !r.outage.Load() && !r.shuttingDown() {
		upTo, err := r.replayAll()
		r.passEnded(upTo, err)
		if err != nil && !r.shuttingDown() {
			r.log.Error("usage records not written at shutdown", zap.Error(err))
		}
	}
	r.bmu.Lock()
	left := r.backlog
	r.backlog = nil
	r.bmu.Unlock()
	if len(left) > 0 {
		ctx, cancel := context.WithTimeout(r.stopCtx, r.writeTimeout)
		err := r.w.InsertUsage(ctx, left)
		cancel()
		if err != nil {
			ids := make([]string, len(left))
			for i, rec := range left {
				ids[i] = rec.RequestID
			}
			r.log.Error("usage records lost at shutdown: not written and no spool", zap.Int("records", len(left)), zap.Strings("request_ids", ids), zap.Error(err))
		}
	}
	r.cancel()
	if r.spool != nil {
		if recs, _ := r.spool.Stats(); recs > 0 {
			r.log.Warn("usage records left in the spool for the next start", zap.Int64("records", recs))
		}
		r.spool.Close()
	}
}

// replayAll is the last pass, once the writer has ended: it writes every
// sealed segment and the backlog, and returns the records let go of it
// covered.
func (r *Recorder) replayAll() (int64, error) {
	upTo := r.letGo.Load() // before the rotation, as in leaveOutage
	before := r.currentSeg()
	if r.spool != nil {
		cur, err := r.spool.rotate()
		if err != nil {
			return 0, err
		}
		before = cur
	}
	if _, err := r.replay(before); err != nil {
		return 0, err
	}
	return upTo, nil
}

// recoverLoop replays what the writer could not write, when woken (an
// outage, a full queue, records left by a previous process, a Flush),
// retrying with capped backoff until a pass succeeds, however long that
// takes: the records are durable in the spool meanwhile.
func (r *Recorder) recoverLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		backoff := r.minBackoff
		for {
			upTo, err := r.recoverOnce()
			if err != nil && !errors.Is(err, errStopping) && !r.shuttingDown() {
				r.markOutage(err) // before passEnded: a Flush woken sees the outage
			}
			r.passEnded(upTo, err)
			if err == nil {
				break
			}
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

// errStopping ends a replay pass cut short by the writer's end.
var errStopping = errors.New("billing: usage writer stopping")

// recoverOnce is one replay pass: the sealed segments and the backlog
// while the writer still lets records go (the bulk, and the probe that the
// store answers), then, once the writer is back, what it let go of since.
// It returns how many of the records let go of it covered.
func (r *Recorder) recoverOnce() (int64, error) {
	if r.spool != nil && (r.outage.Load() || r.letGo.Load() > r.coveredCount()) {
		// Seal what the writer let go of, so that this pass writes it and
		// so proves the store answers before the writer resumes.
		if _, err := r.spool.rotate(); err != nil {
			r.log.Error("usage spool rotation failed", zap.Error(err))
		}
	}
	n, err := r.replay(r.currentSeg())
	if err != nil {
		return 0, err
	}
	if n == 0 && r.outage.Load() {
		// Nothing was sealed yet to show the store answers: ask it, or the
		// writer would resume only to fail again.
		if err := r.storeTakesWrites(r.stopCtx); err != nil {
			return 0, err
		}
	}
	reply := make(chan resumed, 1)
	select {
	case r.resume <- reply:
	case <-r.stop:
		return 0, errStopping
	}
	var res resumed
	select {
	case res = <-reply:
	case <-r.stop:
		return 0, errStopping
	}
	if _, err := r.replay(res.before); err != nil {
		return 0, err
	}
	return res.upTo, nil
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

// insert writes records in batches (see put), but for those already set
// aside: a segment is replayed whole, bad records included.
func (r *Recorder) insert(ctx context.Context, recs []store.UsageRecord) error {
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
func (r *Recorder) put(ctx context.Context, recs []store.UsageRecord, refused func(i int, err error)) error {
	return r.putFrom(ctx, recs, 0, refused)
}

func (r *Recorder) putFrom(ctx context.Context, recs []store.UsageRecord, base int, refused func(int, error)) error {
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
func (r *Recorder) tryInsert(ctx context.Context, recs []store.UsageRecord) error {
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

func (r *Recorder) insertOne(ctx context.Context, recs []store.UsageRecord) error {
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
func (r *Recorder) setAside(rec store.UsageRecord, cause error) {
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
		err := r.spool.reject([]store.UsageRecord{rec})
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
func (r *Recorder) withoutAside(recs []store.UsageRecord) []store.UsageRecord {
	r.amu.Lock()
	defer r.amu.Unlock()
	if len(r.aside) == 0 {
		return recs
	}
	var out []store.UsageRecord
	for i, rec := range recs {
		if _, ok := r.aside[rec.RequestID]; !ok {
			if out != nil {
				out = append(out, rec)
			}
			continue
		}
		if out == nil {
			out = append(make([]store.UsageRecord, 0, len(recs)), recs[:i]...)
		}
	}
	if out == nil {
		return recs
	}
	return out
}

// setProbe remembers a record just written (a copy: recs is reused).
func (r *Recorder) setProbe(recs []store.UsageRecord) {
	p := recs[len(recs)-1]
	r.probe.Store(&p)
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
	return r.w.InsertUsage(ctx, []store.UsageRecord{*p})
}

// errKind is what a failed write says about the store.
type errKind int

const (
	errUnknown     errKind = iota // blames no record: retried, the records kept meanwhile
	errUnreachable                // the store cannot be reached: an outage, reported
	errBadData                    // the store refuses what the records hold: set aside
)

func classify(err error) errKind {
	switch {
	case IsUnreachable(err):
		return errUnreachable
	case isBadData(err):
		return errBadData
	}
	return errUnknown
}

// isBadData reports an error that blames what was written, not the store:
// on PostgreSQL a data exception or an integrity constraint violation
// (SQLSTATE classes 22 and 23, e.g. 22021 for a NUL byte in a text
// column); on SQLite a constraint, a datatype mismatch or a value too big.
// The same records fail again however often they are retried.
func isBadData(err error) bool {
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		code := st.SQLState()
		return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23")
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
			return true
		}
	}
	return false
}

// IsUnreachable reports whether err, from a store call, means the store
// cannot be reached, on either backend: a connection that could not be
// made (refused, timed out while dialing, rejected at start-up), a network
// error on an open connection, a connection the pool gave up on, a server
// shutting down or refusing connections (SQLSTATE classes 08 and 57P,
// 53300). A context that ended is not one by itself: a caller that went
// away, or a deadline that passed waiting for a pooled connection or a
// slow query, says the store is busy, not gone.
func IsUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ce *pgconn.ConnectError
	var op *net.OpError
	var ne net.Error
	var st interface{ SQLState() string }
	switch {
	case errors.As(err, &ce): // pgx could not open a connection, for whatever reason
		return true
	case errors.As(err, &op) && op.Op == "dial": // timed out dialing included
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &ne): // I/O errors on an open connection
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &st):
		code := st.SQLState()
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P") || code == "53300"
	}
	return false
}
