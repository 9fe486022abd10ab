package router

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// simProvider is one upstream of the simulation: a latency on the fake
// clock, a price, a seeded failure rate, and a switch to take it down.
type simProvider struct {
	name    string
	latency time.Duration
	price   [2]catalog.Price
	errRate float64
}

// TestSimulation routes a few thousand requests over five upstreams of
// different prices, latencies and error rates, one of which dies and comes
// back, and checks what the issue asks of the router. It is sequential and
// seeded: every number but the breaker's open time (gobreaker's own clock)
// runs on the fake clock.
func TestSimulation(t *testing.T) {
	ups := []simProvider{
		{"cheap", 600 * time.Millisecond, [2]catalog.Price{100_000, 400_000}, 0},
		{"fast", 100 * time.Millisecond, [2]catalog.Price{3_000_000, 12_000_000}, 0},
		{"mid", 300 * time.Millisecond, [2]catalog.Price{500_000, 1_500_000}, 0.05},
		{"flaky", 200 * time.Millisecond, [2]catalog.Price{1_000_000, 4_000_000}, 0.10},
		{"slow", 800 * time.Millisecond, [2]catalog.Price{200_000, 800_000}, 0.02},
	}
	const cooldown = 30 * time.Millisecond
	clock := newClock()
	f := map[string]*fake{}
	prices := map[string][2]catalog.Price{}
	var mu sync.Mutex
	down := map[string]bool{}
	var names []string
	for i, u := range ups {
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		errRate, name := u.errRate, u.name
		f[u.name] = &fake{clock: clock, latency: u.latency, fail: func(int64) error {
			mu.Lock()
			defer mu.Unlock()
			if down[name] {
				return providers.TransportError(name, errors.New("connection refused"))
			}
			if rng.Float64() < errRate {
				return &providers.Error{Provider: name, Status: 500}
			}
			return nil
		}}
		prices[u.name] = u.price
		names = append(names, u.name)
	}
	r, m := fleet{names: names, fakes: f, prices: prices, clock: clock, failures: 5, cooldown: cooldown,
		routing: config.Routing{Breaker: config.Breaker{FailureRatio: -1}}}.build(t)
	costOfUsage := func(name string) int64 {
		p := prices[name]
		return catalog.Model{Input: p[0], Output: p[1]}.Cost(100, 0, 50)
	}

	var total, failed int
	run := func(strategy string, stream bool) (providersUsed []string, latencies []time.Duration) {
		body := `{"model":"m","messages":[{"role":"user","content":"x"}],"provider":{"sort":"` + strategy + `"}}`
		if stream {
			body = `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}],"provider":{"sort":"` + strategy + `"}}`
		}
		start := clock.Now()
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
		total++
		if err != nil {
			failed++
			return nil, nil
		}
		return []string{res.Deployment.Provider}, []time.Duration{clock.Now().Sub(start)}
	}

	// Phase 1, cost: spend against the cheapest healthy deployment.
	var spend, cheapest int64
	for range 2000 {
		used, _ := run("cost", false)
		if used != nil {
			spend += costOfUsage(used[0])
			cheapest += costOfUsage("cheap")
		}
	}
	if over := float64(spend-cheapest) / float64(cheapest); over > 0.01 {
		t.Errorf("cost strategy spent %.2f%% above the cheapest", over*100)
	}

	// Phase 2, latency (streams, TTFT): p50 against the fastest healthy.
	var lat []time.Duration
	for range 2000 {
		_, l := run("latency", true)
		lat = append(lat, l...)
	}
	slices.Sort(lat)
	if p50 := lat[len(lat)/2]; float64(p50) > 1.1*float64(100*time.Millisecond) {
		t.Errorf("latency strategy p50 %v, fastest healthy 100ms", p50)
	}

	// Phase 3, outage: the cheapest dies, the cost strategy moves on, and
	// comes back within two breaker timeouts of the revival.
	setDown := func(v bool) { mu.Lock(); down["cheap"] = v; mu.Unlock() }
	setDown(true)
	for range 1000 {
		run("cost", false)
	}
	if st := m.Deployments[0].BreakerState(); st == "closed" {
		t.Fatalf("a dead deployment's breaker: %s", st)
	}
	setDown(false)
	// Each step sleeps a third of the breaker timeout, so six steps are
	// at least two timeouts (a slow machine only makes them longer). Real
	// sleeps: gobreaker times its open state with the wall clock.
	steps := 0
	for back := false; !back; {
		if steps++; steps > 6 {
			t.Fatal("traffic did not return to the revived deployment within 2 breaker timeouts")
		}
		time.Sleep(cooldown / 3)
		used, _ := run("cost", false)
		back = used != nil && used[0] == "cheap"
	}
	// Once the probe succeeded, the cheapest takes everything again.
	for range 200 {
		if used, _ := run("cost", false); used != nil && used[0] != "cheap" {
			t.Fatalf("after recovery a request went to %s", used[0])
		}
	}
	if rate := 1 - float64(failed)/float64(total); rate < 0.999 {
		t.Errorf("success rate %.4f over %d requests", rate, total)
	}
	t.Logf("%d requests, %d failed; cost +%.3f%%; latency p50 %v; back after %d steps", total, failed, float64(spend-cheapest)/float64(cheapest)*100, lat[len(lat)/2], steps)
}
