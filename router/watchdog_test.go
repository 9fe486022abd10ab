package router

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// silent is a provider whose streams send first chunks, then nothing
// until their context ends (a hung upstream).
type silent struct {
	fake
	chunks int // sent before the silence (0: not even the headers)
}

func (s *silent) ChatStream(ctx context.Context, c *providers.Call) (providers.Stream, error) {
	if s.chunks == 0 {
		<-ctx.Done()
		return nil, providers.TransportError("silent", ctx.Err())
	}
	return &silentStream{ctx: ctx, left: s.chunks}, nil
}

type silentStream struct {
	ctx  context.Context
	left int
}

func (s *silentStream) Recv() (providers.Chunk, error) {
	if s.left > 0 {
		s.left--
		return providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"hi"}}]}`)}, nil
	}
	<-s.ctx.Done()
	return providers.Chunk{}, &providers.Error{Provider: "silent", MidStream: true, Err: s.ctx.Err()}
}

func (s *silentStream) Close() error { return nil }

// TestStreamTimeoutsPerDeployment: routing.deployments' first_byte_timeout
// and stream_idle_timeout override router's (a minute here, which the
// test would hit): a deployment silent before its first chunk fails over
// as a stall, and one silent after it ends the stream with ErrStalled.
func TestStreamTimeoutsPerDeployment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		chunks    int
		routing   config.DeploymentRouting
		attempts  int
		midStream bool
	}{
		{"silent after headers fails over", 0, config.DeploymentRouting{FirstByteTimeout: 20 * time.Millisecond}, 2, false},
		{"silent after the first chunk ends the stream", 1, config.DeploymentRouting{StreamIdleTimeout: 20 * time.Millisecond}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			hung := &silent{chunks: tc.chunks}
			f := fleet{names: []string{"a", "b"}, fakes: map[string]*fake{"b": {clock: clock}}, clock: clock,
				routing: config.Routing{Deployments: map[string]config.DeploymentRouting{"a/a-m": tc.routing}}}
			r, m := f.buildWith(t, map[string]providers.Provider{"a": hung})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, res, err := r.ChatStream(ctx, m, chatReq(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if res.Attempts != tc.attempts {
				t.Fatalf("attempts %d, want %d", res.Attempts, tc.attempts)
			}
			if !tc.midStream {
				if !errors.Is(res.Tried[0].Err, providers.ErrStalled) || res.Deployment.Provider != "b" {
					t.Fatalf("tried %+v", res.Tried)
				}
				return
			}
			if _, err := st.Recv(); err != nil {
				t.Fatalf("first chunk: %v", err)
			}
			_, err = st.Recv()
			var pe *providers.Error
			if !errors.Is(err, providers.ErrStalled) || errors.Is(err, io.EOF) || !errors.As(err, &pe) || !pe.MidStream || ctx.Err() != nil {
				t.Fatalf("after the silence: %v", err)
			}
		})
	}
}

// TestWatchdogHonoursAShorterLimit: arming with a shorter limit than the
// one the timer sleeps for (the first byte's, then the idle one) cuts at
// the shorter one, not when the long timer would have woken.
func TestWatchdogHonoursAShorterLimit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWatchdog(cancel, time.Hour)
	w.pause()
	w.arm(10 * time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not cut 10 s after a read armed for 10 ms")
	}
	if err := w.explain(io.ErrUnexpectedEOF, "p", 10*time.Millisecond, true); !errors.Is(err, providers.ErrStalled) {
		t.Fatalf("explain: %v", err)
	}
	w.stop()
}

// TestWatchdogStoppedNeverFires: a watchdog stopped while armed does not
// cancel the attempt afterwards.
func TestWatchdogStoppedNeverFires(t *testing.T) {
	fired := make(chan struct{})
	w := newWatchdog(func() { close(fired) }, time.Millisecond)
	w.stop()
	select {
	case <-fired:
		t.Fatal("a stopped watchdog fired")
	case <-time.After(50 * time.Millisecond):
	}
}
