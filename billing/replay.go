// Spool replay: a second goroutine writes from disk what the writer let
// go of (sealed spool segments, the backlog), with capped backoff, and
// counts what it covered for Flush; the last pass runs at Close.

package billing

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

// coveredCount is how many of the records let go of the replay has
// written.
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
	left := append([]books.UsageRecord(nil), r.backlog...)
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
