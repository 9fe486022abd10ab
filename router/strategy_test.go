package router

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

func ptr[T any](v T) *T { return &v }

// order runs m's strategy (or the named one) once and returns provider
// names, best first.
func order(r *Router, m *Model, strategy string, stream bool) []string {
	ds := append([]*Deployment(nil), m.Deployments...)
	s := m.strategy
	if strategy != "" {
		s = r.strategies[strategy]
	}
	s.Order(&Query{Stream: stream, PromptTokens: 1000, CompletionTokens: 100, Now: r.now().UnixNano()}, ds)
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Provider
	}
	return out
}

func TestStrategiesRegistered(t *testing.T) {
	if got := strings.Join(BuiltinStrategies().Names(), ","); got != "balanced,cost,latency,priority" {
		t.Fatalf("strategies: %s", got)
	}
}

func TestStrategyOrder(t *testing.T) {
	clock := newClock()
	names := []string{"a", "b", "c", "d"}
	// a: cheap and slow, b: dear and fast, c: middling, d: no price.
	prices := map[string][2]catalog.Price{"a": {100_000, 400_000}, "b": {5_000_000, 15_000_000}, "c": {1_000_000, 2_000_000}}
	ttft := map[string]time.Duration{"a": 900 * time.Millisecond, "b": 100 * time.Millisecond, "c": 300 * time.Millisecond, "d": 200 * time.Millisecond}
	perToken := map[string]time.Duration{"a": 40 * time.Millisecond, "b": 30 * time.Millisecond, "c": 10 * time.Millisecond, "d": 20 * time.Millisecond}
	tests := []struct {
		name     string
		routing  config.Routing
		strategy string
		stream   bool
		want     string
	}{
		{"priority is config order", config.Routing{}, "priority", false, "a,b,c,d"},
		{"explicit priorities", config.Routing{Deployments: map[string]config.DeploymentRouting{
			"c/c-m": {Priority: ptr(-1)}, "a/a-m": {Priority: ptr(5)}}}, "priority", false, "c,b,d,a"},
		{"cost: cheapest first, unpriced last", config.Routing{}, "cost", false, "a,c,b,d"},
		{"latency of streams is TTFT", config.Routing{}, "latency", true, "b,d,c,a"},
		{"latency otherwise is per output token", config.Routing{}, "latency", false, "c,d,b,a"},
		{"balanced leaning on cost", config.Routing{CostWeight: 0.9}, "balanced", false, "a,c,b,d"},
		{"balanced leaning on latency", config.Routing{CostWeight: 0.01}, "balanced", true, "b,c,a,d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, m := fleet{names: names, fakes: fakes(clock, names...), prices: prices, routing: tt.routing, clock: clock}.build(t)
			now := clock.Now().UnixNano()
			for _, d := range m.Deployments {
				d.health.observeTTFT(float64(ttft[d.Provider]), now)
				d.health.observeLatency(float64(perToken[d.Provider]*100), 100, now)
			}
			for range 20 { // the same answer every time: no ties here
				if got := strings.Join(order(r, m, tt.strategy, tt.stream), ","); got != tt.want {
					t.Fatalf("order %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func TestLatencyPenalisesErrorsAndExploresUnknown(t *testing.T) {
	clock := newClock()
	names := []string{"a", "b", "c"}
	r, m := fleet{names: names, fakes: fakes(clock, names...), clock: clock}.build(t)
	now := clock.Now().UnixNano()
	m.Deployments[0].health.observeTTFT(float64(100*time.Millisecond), now)
	m.Deployments[1].health.observeTTFT(float64(150*time.Millisecond), now)
	// c has no numbers yet: it is tried first, to learn them.
	if got := order(r, m, "latency", true); got[0] != "c" {
		t.Fatalf("unknown deployment not explored: %v", got)
	}
	m.Deployments[2].health.observeTTFT(float64(120*time.Millisecond), now)
	// a fails half the time: 100ms / (1-0.5) is slower than b.
	for range 40 {
		m.Deployments[0].health.observeOutcome(true)
		m.Deployments[0].health.observeOutcome(false)
	}
	if got := strings.Join(order(r, m, "latency", true), ","); got != "c,b,a" {
		t.Fatalf("error rate ignored: %s", got)
	}
	// Numbers older than staleAfter are refreshed, one deployment per
	// request.
	clock.Advance(staleAfter + time.Second)
	var first []string
	for range 4 {
		first = append(first, order(r, m, "latency", true)[0])
	}
	if got := strings.Join(first, ","); got != "a,b,c,c" {
		t.Fatalf("each stale deployment is explored by one request, then the best wins again: %s", got)
	}
}

func TestTiesShareTrafficByWeight(t *testing.T) {
	clock := newClock()
	names := []string{"a", "b", "c"}
	prices := map[string][2]catalog.Price{"a": {1000, 1000}, "b": {1000, 1000}, "c": {9000, 9000}}
	rt := config.Routing{DefaultStrategy: "cost", Deployments: map[string]config.DeploymentRouting{"b/b-m": {Weight: 3}}}
	r, m := fleet{names: names, fakes: fakes(clock, names...), prices: prices, routing: rt, clock: clock}.build(t)
	first := map[string]int{}
	const n = 4000
	for range n {
		o := order(r, m, "", false)
		first[o[0]]++
		if o[2] != "c" {
			t.Fatalf("the dear one must stay last: %v", o)
		}
	}
	if share := float64(first["b"]) / n; share < 0.70 || share > 0.80 {
		t.Fatalf("weight 3 vs 1 should take ~75%% of ties, got %.3f (%v)", share, first)
	}
}

func TestStrategyPrecedence(t *testing.T) {
	clock := newClock()
	names := []string{"dear", "cheap"}
	prices := map[string][2]catalog.Price{"cheap": {1, 1}, "dear": {9, 9}}
	rt := config.Routing{DefaultStrategy: "priority", Models: map[string]config.ModelRouting{"m": {Strategy: "cost"}}}
	r, m := fleet{names: names, fakes: fakes(clock, names...), prices: prices, routing: rt, clock: clock}.build(t)
	newestCaller := func(s string) context.Context { return WithCaller(context.Background(), Caller{Strategy: s}) }
	tests := []struct {
		name, body string
		ctx        context.Context
		want       string
		strategy   string
	}{
		{"model config", "", context.Background(), "cheap", "cost"},
		{"caller's default wins over the model", "", newestCaller("priority"), "dear", "priority"},
		{"unknown caller default is ignored", "", newestCaller("nope"), "cheap", "cost"},
		{"request wins over the caller", `{"model":"m","messages":[{"role":"user","content":"x"}],"provider":{"sort":"price"}}`, newestCaller("priority"), "cheap", "cost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res, err := r.Chat(tt.ctx, m, chatReq(tt.body))
			if err != nil || res.Deployment.Provider != tt.want || res.Strategy != tt.strategy {
				t.Fatalf("went to %v by %q (%v)", res.Deployment.Name(), res.Strategy, err)
			}
		})
	}
	_, _, err := r.Chat(context.Background(), m, chatReq(`{"model":"m","messages":[{"role":"user","content":"x"}],"provider":{"sort":"fastest"}}`))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Param != "provider.sort" {
		t.Fatalf("unknown sort: want a 400 naming provider.sort, got %v", err)
	}
}

func TestUnknownStrategyInConfig(t *testing.T) {
	for _, rt := range []config.Routing{
		{DefaultStrategy: "fastest"},
		{Models: map[string]config.ModelRouting{"m": {Strategy: "fastest"}}},
	} {
		cfg := config.Default()
		cfg.Providers = []config.Provider{{Name: "a", Type: "t"}}
		cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "a", Model: "x"}}}}
		_, err := New(cfg, map[string]providers.Provider{"a": &fake{}}, nil, time.Now, nil, WithRouting(rt))
		if err == nil || !strings.Contains(err.Error(), "routing.") || !strings.Contains(err.Error(), "fastest") {
			t.Fatalf("want an error naming the field and the strategy, got %v", err)
		}
	}
}
