package router

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/providers"
)

// watchdog ends a stream attempt whose upstream stays silent: it cancels
// the attempt's context when a read stays armed for longer than the
// deployment allows (router.first_byte_timeout from the request to the
// first chunk, router.stream_idle_timeout for each later chunk), which
// unblocks the read in flight.
//
// The stream hot path arms and pauses it once per chunk, thousands of
// times a second, so arm and pause only store the read's start: no timer
// is reset or stopped per chunk (a timer's Reset/Stop takes its heap's
// lock and showed as a few per cent of a stream's CPU). One timer per
// attempt wakes up when the armed read could first be overdue; finding it
// paused, or armed later, it sleeps again for what is left. While a
// stream is open it so wakes at most once per limit (a minute by
// default), and the upstream is cut between limit and limit plus the
// timer's own latency after the read began, as with a timer reset per chunk.
type watchdog struct {
	cancel context.CancelFunc
	fired  atomic.Bool
	// since is when the armed read began (nanoseconds on the package's
	// monotonic clock, +1 so that 0 means paused); limit its allowance.
	since atomic.Int64
	limit atomic.Int64

	mu      sync.Mutex // guards timer and stopped against check
	timer   *time.Timer
	stopped bool
}

// epoch is the watchdog's monotonic clock origin: time.Since(epoch) reads
// the monotonic clock only.
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

// newWatchdog returns a watchdog of the attempt whose context cancel
// ends, armed for first (0: not armed).
func newWatchdog(cancel context.CancelFunc, first time.Duration) *watchdog {
	w := &watchdog{cancel: cancel}
	w.arm(first)
	return w
}

// arm starts the silence allowed for the next read (0: unbounded).
func (w *watchdog) arm(d time.Duration) {
	if d <= 0 {
		return
	}
	prev := w.limit.Swap(int64(d))
	w.since.Store(monoNow() + 1)
	if prev == int64(d) && w.timer != nil {
		return // the hot path: the timer is already out, for this limit
	}
	// First arm, or a new limit (the first byte's, then the idle one):
	// the timer must not sleep past the new allowance.
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.check)
		return
	}
	w.timer.Reset(d)
}

// pause stops the clock once a read returned: time spent by the caller
// between reads (writing to a slow client) is not the upstream's silence.
func (w *watchdog) pause() { w.since.Store(0) }

// stop ends the watchdog for good (the attempt is over).
func (w *watchdog) stop() {
	w.pause()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// check runs on the timer: it cuts a read armed for longer than its limit,
// and otherwise sleeps until the current read could first be overdue (a
// whole limit when paused).
func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	limit := w.limit.Load()
	wait := limit
	if since := w.since.Load(); since != 0 {
		silent := monoNow() + 1 - since
		if silent >= limit {
			w.stopped = true
			w.fired.Store(true)
			w.cancel()
			return
		}
		wait = limit - silent
	}
	w.timer.Reset(time.Duration(wait))
}

// explain turns the error of a read the watchdog cut into what it means:
// the upstream went silent for limit. Other errors pass unchanged.
func (w *watchdog) explain(err error, provider string, limit time.Duration, midStream bool) error {
	if err == nil || !w.fired.Load() {
		return err
	}
	msg := "no first chunk within " + limit.String()
	if midStream {
		msg = "no chunk for " + limit.String()
	}
	return &providers.Error{Provider: provider, MidStream: midStream, Message: msg, Err: providers.ErrStalled}
}
