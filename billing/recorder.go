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
// error) is set aside in the spool's rejected file and the rest of its
// batch written: one bad record neither blocks the others nor counts as
// the store being down.
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

	attempts               int           // tries of a write before its error is believed
	retryBackoff           time.Duration // before the first retry, doubling
	minBackoff, maxBackoff time.Duration // of the replay during an outage
	maxBacklog             int           // unspooled records held in memory during an outage

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan queued
	done   chan struct{}

	outage   atomic.Bool
	reported atomic.Bool                       // onOutage ran for this outage
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

// WithOnOutage calls f when the recorder finds the store unreachable (a
// connection error; see IsUnreachable), once per outage, from one of its
// goroutines. A record the store refuses, or a write that is only slow,
// does not call it. f must not block.
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
		w:            w,
		log:          log,
		batch:        batchSize,
		interval:     flushInterval,
		attempts:     3,
		retryBackoff: 20 * time.Millisecond,
		minBackoff:   250 * time.Millisecond,
		maxBackoff:   5 * time.Second,
		maxBacklog:   queueSize,
		queue:        make(chan queued, queueSize),
		done:         make(chan struct{}),
		kick:         make(chan struct{}, 1),
		resume:       make(chan chan int64),
		stop:         make(chan struct{}),
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
		if err != nil {
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
	if !r.outage.Swap(true) {
		r.log.Error("usage store unavailable; records kept in the spool for replay", zap.Error(err))
	}
	if IsUnreachable(err) && !r.reported.Swap(true) && r.onOutage != nil {
		r.onOutage()
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
	r.reported.Store(false)
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

// insert writes records in batches (see put).
func (r *Recorder) insert(ctx context.Context, recs []store.UsageRecord) error {
	for i := 0; i < len(recs); i += r.batch {
		if err := r.put(ctx, recs[i:min(i+r.batch, len(recs))], nil); err != nil {
			return err
		}
	}
	return nil
}

// put writes recs. A record the store refuses is set aside (setAside) and
// reported to refused, if not nil, with its index in recs; the others are
// written. It returns an error only when the store could not be written:
// then nothing is known of the records not set aside, and they must be
// kept (inserts are idempotent: some may be in already).
//
// What a failure says decides what follows: an unreachable store is an
// outage at once; a data or constraint error blames the records, and the
// batch is bisected down to the ones at fault; any other error is retried,
// and blames the records only if the store still takes a record known to
// be good (the probe). A batch is bisected with no probe yet, as halves
// that go in show the store takes writes; a single record is never set
// aside on an unknown error without one.
func (r *Recorder) put(ctx context.Context, recs []store.UsageRecord, refused func(i int, err error)) error {
	return r.putFrom(ctx, recs, 0, refused)
}

func (r *Recorder) putFrom(ctx context.Context, recs []store.UsageRecord, base int, refused func(int, error)) error {
	err := r.tryInsert(ctx, recs)
	if err == nil {
		return nil
	}
	switch classify(err) {
	case errUnreachable:
		return err
	case errUnknown:
		if ctx.Err() != nil {
			return err
		}
		// A write that timed out blames no record: without a probe to
		// show the store takes writes, bisecting would only time out
		// again, level after level.
		bisectBlind := len(recs) > 1 && r.probe.Load() == nil && !errors.Is(err, context.DeadlineExceeded)
		if !bisectBlind && !r.storeTakesWrites(ctx) {
			return err
		}
	case errBadData:
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
// dropped connection) must not start an outage nor blame the records. A
// data error is not retried: it would fail again. Inserts are idempotent
// by request id, so a retry after an ambiguous failure cannot
// double-count.
func (r *Recorder) tryInsert(ctx context.Context, recs []store.UsageRecord) error {
	backoff := r.retryBackoff
	for attempt := 1; ; attempt++ {
		err := r.insertOne(ctx, recs)
		if err == nil || attempt >= r.attempts || classify(err) == errBadData || ctx.Err() != nil {
			return err
		}
		r.log.Warn("usage write failed, retrying", zap.Int("records", len(recs)), zap.Int("attempt", attempt), zap.Error(err))
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
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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

// setProbe remembers a record just written (a copy: recs is reused).
func (r *Recorder) setProbe(recs []store.UsageRecord) {
	p := recs[len(recs)-1]
	r.probe.Store(&p)
}

// storeTakesWrites inserts again a record known to be stored (a no-op
// that still needs the store to take a write).
func (r *Recorder) storeTakesWrites(ctx context.Context) bool {
	p := r.probe.Load()
	if p == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return r.w.InsertUsage(ctx, []store.UsageRecord{*p}) == nil
}

// errKind is what a failed write says about the store.
type errKind int

const (
	errUnknown     errKind = iota // retried; then the probe decides
	errUnreachable                // the store cannot be reached: an outage
	errBadData                    // the store refuses what the records hold
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
