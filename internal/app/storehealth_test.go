package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/testutil"
)

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// pings is a ping whose answers the test sets; the tests call check
// themselves instead of running the loop, so nothing depends on timing.
type pings struct {
	err   atomic.Pointer[error]
	calls atomic.Int32
}

func (p *pings) ping(context.Context) error {
	p.calls.Add(1)
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *pings) fail(err error) { p.err.Store(&err) }
func (p *pings) succeed()       { p.err.Store(nil) }

func TestStoreHealthFollowsPingsAndFailures(t *testing.T) {
	p := &pings{}
	h := newStoreHealth(newStoreState(zap.NewNop()), p.ping, nil, time.Hour, time.Second)
	if !h.StoreUp() || h.SpoolFull() {
		t.Fatal("a fresh monitor reports the store up and no spool")
	}
	// The store is down after downAfterPings failed pings in a row, not
	// before: one slow ping is no outage.
	p.fail(errRefused)
	for i := 1; i < downAfterPings; i++ {
		h.check()
		if !h.StoreUp() {
			t.Fatalf("down after %d failed ping(s), want %d", i, downAfterPings)
		}
	}
	// A success in between starts the count again.
	p.succeed()
	h.check()
	p.fail(fmt.Errorf("ping: %w", context.DeadlineExceeded)) // a pool busy with slow queries
	for i := 1; i < downAfterPings; i++ {
		h.check()
	}
	if !h.StoreUp() {
		t.Fatal("failed pings separated by a success took the store down")
	}
	h.check()
	if h.StoreUp() {
		t.Fatalf("still up after %d failed pings in a row", downAfterPings)
	}
	if !h.Unreachable(errors.New("any error while down")) {
		t.Fatal("while the store is down every store error is taken as that")
	}
	p.succeed()
	h.check()
	if !h.StoreUp() {
		t.Fatal("a successful ping must bring the store up")
	}

	// A connection failure on the request path (or the recorder's,
	// through markDown) takes it down at once; the next ping brings it
	// back.
	for _, err := range []error{
		errors.New("constraint violated"),
		fmt.Errorf("query: %w", context.DeadlineExceeded), // a wait for a pooled connection
		fmt.Errorf("query: %w", context.Canceled),         // a caller that went away
	} {
		if h.Unreachable(err) || !h.StoreUp() {
			t.Fatalf("%v must not take the store down", err)
		}
	}
	if !h.Unreachable(fmt.Errorf("keys: lookup: %w", errRefused)) || h.StoreUp() {
		t.Fatal("a refused connection on the request path must take the store down at once")
	}
	h.check()
	if !h.StoreUp() {
		t.Fatal("the next successful ping must bring the store up")
	}
	h.markDown()
	if h.StoreUp() {
		t.Fatal("markDown must take the store down at once")
	}
	h.check()
	if !h.StoreUp() {
		t.Fatal("the next successful ping must bring the store up")
	}
}

// A ping that began before markDown proves nothing about the store after
// it: its success must not bring the store back.
func TestStoreHealthPingRacingMarkDown(t *testing.T) {
	var h *storeHealth
	first := true
	h = newStoreHealth(newStoreState(zap.NewNop()), func(context.Context) error {
		if first {
			first = false
			h.markDown() // the recorder finds the store unreachable meanwhile
		}
		return nil
	}, nil, time.Hour, time.Second)
	h.check()
	if h.StoreUp() {
		t.Fatal("a ping that began before markDown brought the store back")
	}
	h.check()
	if !h.StoreUp() {
		t.Fatal("a ping begun after markDown must bring the store back")
	}
}

func TestStoreHealthPingTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"shorter than the floor", 500 * time.Millisecond, minPingTimeout},
		{"longer", 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var left time.Duration
			h := newStoreHealth(newStoreState(zap.NewNop()), func(ctx context.Context) error {
				d, _ := ctx.Deadline()
				left = time.Until(d)
				return nil
			}, nil, time.Hour, tt.timeout)
			h.check()
			// The deadline was set just before the ping: it has all but
			// a sliver of its time left.
			if left > tt.want || left < tt.want-tt.want/10 {
				t.Fatalf("ping deadline %v away, want %v", left, tt.want)
			}
		})
	}
}

// The loop pings until close, which is idempotent, and leaves nothing
// running.
func TestStoreHealthLoopStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := &pings{}
	h := newStoreHealth(newStoreState(zap.NewNop()), p.ping, nil, time.Millisecond, time.Second)
	h.start()
	testutil.Eventually(t, "the loop to ping twice", func() bool { return p.calls.Load() >= 2 })
	h.close()
	h.close()
}
