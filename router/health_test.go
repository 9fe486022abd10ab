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

func TestRateLimitCoolsDownWithoutOpeningTheBreaker(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b")
	limited := true
	f["a"].fail = func(int64) error {
		if limited {
			return &providers.Error{Status: 429, RetryAfter: 10 * time.Second}
		}
		return nil
	}
	r, m := fleet{names: []string{"a", "b"}, fakes: f, failures: 1, clock: clock}.build(t)
	_, res, err := r.Chat(context.Background(), m, chatReq(""))
	if err != nil || res.Deployment.Provider != "b" || res.Attempts != 2 {
		t.Fatalf("429 fails over: %v %v", res.Deployment, err)
	}
	a := m.Deployments[0]
	if st := a.BreakerState(); st != "closed" {
		t.Fatalf("a 429 must not open the breaker (even at breaker_failures 1): %s", st)
	}
	st := r.Deployments()[0]
	if want := clock.Now().Add(10 * time.Second); !st.CooldownUntil.Equal(want) {
		t.Fatalf("cooldown until %v, want %v", st.CooldownUntil, want)
	}
	limited = false
	for range 3 {
		if _, res, _ := r.Chat(context.Background(), m, chatReq("")); res.Deployment.Provider != "b" || res.Attempts != 1 {
			t.Fatalf("a cooling deployment is skipped without an attempt: %v after %d", res.Deployment, res.Attempts)
		}
	}
	clock.Advance(10*time.Second + time.Millisecond)
	if _, res, _ := r.Chat(context.Background(), m, chatReq("")); res.Deployment.Provider != "a" {
		t.Fatalf("after Retry-After the deployment serves again: %v", res.Deployment)
	}
	// Every deployment cooling down: a 429 with the shortest wait.
	f["b"].fail = fail(&providers.Error{Status: 429, RetryAfter: 3 * time.Second})
	f["a"].fail = fail(&providers.Error{Status: 429, RetryAfter: 5 * time.Second})
	r.Chat(context.Background(), m, chatReq(""))
	clock.Advance(time.Second)
	_, res, err = r.Chat(context.Background(), m, chatReq(""))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 429 || pe.RetryAfter != 2*time.Second || res.Attempts != 0 {
		t.Fatalf("all cooling: want a 429 retry after 2s without an attempt, got %v (%d attempts)", err, res.Attempts)
	}
	clock.Advance(5 * time.Second)
	// Without Retry-After: the default cooldown.
	limited = true
	f["a"].fail = fail(&providers.Error{Status: 429})
	r.Chat(context.Background(), m, chatReq(""))
	if got := time.Duration(a.health.coolUntil.Load() - clock.Now().UnixNano()); got != time.Second {
		t.Fatalf("default cooldown %v", got)
	}
}

func TestBreakerTripsOnFailureRatio(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b")
	// Every other call fails: never 3 in a row, but 50% of the window.
	f["a"].fail = func(n int64) error {
		if n%2 == 0 {
			return &providers.Error{Status: 500}
		}
		return nil
	}
	rt := config.Routing{Breaker: config.Breaker{FailureRatio: 0.5, MinRequests: 10}}
	r, m := fleet{names: []string{"a", "b"}, fakes: f, failures: 3, routing: rt, clock: clock}.build(t)
	for range 10 {
		if _, _, err := r.Chat(context.Background(), m, chatReq("")); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.Deployments[0].BreakerState(); st != "open" {
		t.Fatalf("50%% failures over 10 requests: breaker %s", st)
	}
	calls := f["a"].calls.Load()
	r.Chat(context.Background(), m, chatReq(""))
	if f["a"].calls.Load() != calls {
		t.Fatal("an open deployment was called")
	}
	// Below the ratio (or with it off) the breaker stays closed.
	f2 := fakes(clock, "a", "b")
	f2["a"].fail = f["a"].fail
	r2, m2 := fleet{names: []string{"a", "b"}, fakes: f2, failures: 3, clock: clock,
		routing: config.Routing{Breaker: config.Breaker{FailureRatio: -1}}}.build(t)
	for range 20 {
		r2.Chat(context.Background(), m2, chatReq(""))
	}
	if st := m2.Deployments[0].BreakerState(); st != "closed" {
		t.Fatalf("ratio off: breaker %s", st)
	}
}

func TestHalfOpenProbeClosesTheBreaker(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b")
	f["a"].fail = fail(&providers.Error{Status: 503})
	// gobreaker times the open state with the real clock: a short cooldown.
	const cooldown = 20 * time.Millisecond
	r, m := fleet{names: []string{"a", "b"}, fakes: f, failures: 2, cooldown: cooldown, clock: clock}.build(t)
	for range 2 {
		r.Chat(context.Background(), m, chatReq(""))
	}
	a := m.Deployments[0]
	if a.BreakerState() != "open" || a.health.errRate.load() == 0 {
		t.Fatalf("breaker %s, error rate %v", a.BreakerState(), a.health.errRate.load())
	}
	f["a"].fail = nil // a recovers
	time.Sleep(cooldown + 5*time.Millisecond)
	if st := a.BreakerState(); st != "half-open" {
		t.Fatalf("after the cooldown: %s", st)
	}
	_, res, err := r.Chat(context.Background(), m, chatReq(""))
	if err != nil || res.Deployment != a {
		t.Fatalf("the probe goes to a: %v %v", res.Deployment, err)
	}
	if a.BreakerState() != "closed" || a.health.errRate.load() != 0 {
		t.Fatalf("a successful probe closes the breaker and forgets the errors: %s %v", a.BreakerState(), a.health.errRate.load())
	}
}

func TestStatisticsPerAttempt(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b")
	f["a"].latency, f["a"].completion = 400*time.Millisecond, 100
	f["b"].latency = 80 * time.Millisecond
	r, m := fleet{names: []string{"a", "b"}, fakes: f, clock: clock}.build(t)
	if _, _, err := r.Chat(context.Background(), m, chatReq("")); err != nil {
		t.Fatal(err)
	}
	a := m.Deployments[0]
	if got := time.Duration(a.health.latency.load()); got != 400*time.Millisecond {
		t.Fatalf("latency %v", got)
	}
	if got := time.Duration(a.health.perToken.load()); got != 4*time.Millisecond {
		t.Fatalf("per token %v", got)
	}
	// A stream: TTFT at the peek, in flight until closed, per-token at EOF.
	f["a"].fail = fail(&providers.Error{Status: 502})
	st, res, err := r.ChatStream(context.Background(), m, chatReq(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	if err != nil || res.Deployment.Provider != "b" {
		t.Fatalf("%v %v", res.Deployment, err)
	}
	b := m.Deployments[1]
	if got := time.Duration(b.health.ttft.load()); got != 80*time.Millisecond {
		t.Fatalf("ttft %v", got)
	}
	if b.health.inflight.Load() != 1 || a.health.inflight.Load() != 0 {
		t.Fatalf("in flight: a %d b %d", a.health.inflight.Load(), b.health.inflight.Load())
	}
	clock.Advance(920 * time.Millisecond)
	for {
		if _, err := st.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	st.Close()
	st.Close() // twice is fine
	if b.health.inflight.Load() != 0 {
		t.Fatalf("closed stream still in flight: %d", b.health.inflight.Load())
	}
	if got := time.Duration(b.health.perToken.load()); got != 20*time.Millisecond { // 1s / 50 tokens
		t.Fatalf("stream per token %v", got)
	}
	ds := r.Deployments()
	if len(ds) != 2 || ds[0].Name != "a/a-m" || ds[0].Failures != 1 || ds[0].Requests != 2 || ds[0].ErrorRate == 0 ||
		ds[1].TTFT != 80*time.Millisecond || len(ds[1].Models) != 1 || ds[1].Models[0] != "m" || ds[1].Breaker != "closed" {
		t.Fatalf("snapshot: %+v", ds)
	}
}

func TestBudgetBoundsFailover(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b", "c")
	for _, n := range []string{"a", "b", "c"} {
		f[n].latency = 700 * time.Millisecond
		f[n].fail = fail(&providers.Error{Status: 503})
	}
	r, m := fleet{names: []string{"a", "b", "c"}, fakes: f, clock: clock, routing: config.Routing{Budget: time.Second}}.build(t)
	_, res, err := r.Chat(context.Background(), m, chatReq(""))
	if err == nil || res.Attempts != 2 {
		t.Fatalf("a 1s budget allows a second attempt at 0.7s but not a third at 1.4s: %d attempts, %v", res.Attempts, err)
	}
}

func TestCallerDeadlineStopsFailover(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b")
	ctx, cancel := context.WithCancel(context.Background())
	f["a"].fail = func(int64) error { cancel(); return &providers.Error{Status: 503} }
	r, m := fleet{names: []string{"a", "b"}, fakes: f, clock: clock}.build(t)
	_, res, err := r.Chat(ctx, m, chatReq(""))
	if err == nil || res.Attempts != 1 || f["b"].calls.Load() != 0 {
		t.Fatalf("the caller left: no further attempt (%d, %v)", res.Attempts, err)
	}
}
