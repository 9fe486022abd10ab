package router

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

func hedging(delay time.Duration) config.Routing {
	return config.Routing{Hedge: config.Hedge{Enabled: true, Delay: delay}}
}

func TestHedgeWinsOverASlowDeployment(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, stream := range []bool{false, true} {
		name := "chat"
		body := ""
		if stream {
			name, body = "stream", `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`
		}
		t.Run(name, func(t *testing.T) {
			clock := newClock()
			f := fakes(clock, "slow", "fast")
			f["slow"].block = true // answers only when cancelled
			r, m := fleet{names: []string{"slow", "fast"}, fakes: f, clock: clock, routing: hedging(time.Millisecond)}.build(t)
			var res Result
			var err error
			if stream {
				var st providers.Stream
				st, res, err = r.ChatStream(context.Background(), m, chatReq(body))
				if err == nil {
					st.Close()
				}
			} else {
				_, res, err = r.Chat(context.Background(), m, chatReq(body))
			}
			if err != nil || res.Deployment.Provider != "fast" || !res.Hedged || res.Attempts != 2 || len(res.Tried) != 2 {
				t.Fatalf("result %+v, %v", res, err)
			}
			slow, fast := res.Tried[0], res.Tried[1]
			if !slow.Canceled || slow.Won || slow.Hedge || !errors.Is(slow.Err, context.Canceled) {
				t.Fatalf("the slow attempt is cancelled and reported: %+v", slow)
			}
			if !fast.Won || !fast.Hedge || fast.Err != nil {
				t.Fatalf("the hedge won: %+v", fast)
			}
			if !stream && (fast.Usage == nil || fast.Usage.CompletionTokens != 50) {
				t.Fatalf("the winner's usage: %+v", fast.Usage)
			}
			s := m.Deployments[0]
			if s.BreakerState() != "closed" || s.health.failures.Load() != 0 || s.health.inflight.Load() != 0 {
				t.Fatal("a cancelled hedge loser is no failure, and is no longer in flight")
			}
			if m.Deployments[1].health.inflight.Load() != 0 {
				t.Fatal("the closed winner is no longer in flight")
			}
		})
	}
}

func TestHedgeNotSentWhenTheFirstAnswers(t *testing.T) {
	defer goleak.VerifyNone(t)
	clock := newClock()
	f := fakes(clock, "a", "b")
	r, m := fleet{names: []string{"a", "b"}, fakes: f, clock: clock, routing: hedging(time.Hour)}.build(t)
	_, res, err := r.Chat(context.Background(), m, chatReq(""))
	if err != nil || res.Hedged || res.Attempts != 1 || f["b"].calls.Load() != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestHedgedFailureFailsOver(t *testing.T) {
	defer goleak.VerifyNone(t)
	clock := newClock()
	f := fakes(clock, "a", "b", "c")
	f["a"].fail = fail(&providers.Error{Status: 503})
	f["b"].fail = fail(&providers.Error{Status: 400, Message: "bad"})
	r, m := fleet{names: []string{"a", "b", "c"}, fakes: f, clock: clock, routing: hedging(time.Hour)}.build(t)
	_, res, err := r.Chat(context.Background(), m, chatReq(""))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 400 || res.Attempts != 2 || res.Hedged || f["c"].calls.Load() != 0 {
		t.Fatalf("503 fails over, 400 goes back to the caller: %+v %v", res, err)
	}
}

func TestHedgePerModelSwitch(t *testing.T) {
	clock := newClock()
	rt := hedging(time.Millisecond)
	rt.Models = map[string]config.ModelRouting{"m": {Hedge: ptr(false)}}
	f := fakes(clock, "a")
	r, m := fleet{names: []string{"a"}, fakes: f, clock: clock, routing: rt}.build(t)
	if m.hedge {
		t.Fatal("routing.models.m.hedge: false must win over hedge.enabled")
	}
	_ = r
}

func TestHedgeDelayFollowsP95(t *testing.T) {
	clock := newClock()
	r, m := fleet{names: []string{"a"}, fakes: fakes(clock, "a"), clock: clock,
		routing: config.Routing{Hedge: config.Hedge{MinDelay: 10 * time.Millisecond, MaxDelay: time.Second}}}.build(t)
	d := m.Deployments[0]
	if got := r.hedgeDelay(d, true); got != time.Second {
		t.Fatalf("no samples: the max delay, got %v", got)
	}
	for i := range 200 {
		d.health.observeTTFT(float64(time.Duration(100+i%2*100)*time.Millisecond), clock.Now().UnixNano())
	}
	// Alternating 100ms and 200ms: mean 150ms, sd 50ms, p95 ~ 232ms.
	if got := r.hedgeDelay(d, true); got < 200*time.Millisecond || got > 260*time.Millisecond {
		t.Fatalf("p95 delay %v", got)
	}
}
