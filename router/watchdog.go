package router

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/providers"
)

// watchdog ends a stream attempt whose upstream stays silent: it cancels
// the attempt's context when armed for longer than the deployment allows
// (router.first_byte_timeout from the request to the first chunk,
// router.stream_idle_timeout for each later chunk), which unblocks a read
// in flight. One timer per attempt, re-armed per chunk: the stream hot
// path pays a Reset and a Stop, no goroutine and no allocation.
type watchdog struct {
	timer  *time.Timer
	cancel context.CancelFunc
	fired  atomic.Bool
}

// newWatchdog returns a watchdog of the attempt whose context cancel
// ends, armed for first (0: not armed).
func newWatchdog(cancel context.CancelFunc, first time.Duration) *watchdog {
	w := &watchdog{cancel: cancel}
	w.arm(first)
	return w
}

func (w *watchdog) fire() {
	w.fired.Store(true)
	w.cancel()
}

// arm starts the silence allowed for the next read (0: unbounded).
func (w *watchdog) arm(d time.Duration) {
	if d <= 0 {
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.fire)
		return
	}
	w.timer.Reset(d)
}

// pause stops the clock once a read returned: time spent by the caller
// between reads (writing to a slow client) is not the upstream's silence.
func (w *watchdog) pause() {
	if w.timer != nil {
		w.timer.Stop()
	}
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
