package router

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// benchRouter is a model served by 20 priced deployments with latency
// numbers, as the strategies see them after some traffic.
func benchRouter(b *testing.B, strategy string) (*Router, *Model) {
	b.Helper()
	cfg := config.Default()
	adapters := map[string]providers.Provider{}
	m := config.Model{Name: "m"}
	for i := range 20 {
		name := fmt.Sprintf("p%02d", i)
		cfg.Providers = append(cfg.Providers, config.Provider{Name: name, Type: "t"})
		adapters[name] = &scripted{}
		m.Deployments = append(m.Deployments, config.Deployment{Provider: name, Model: "x"})
	}
	cfg.Models = []config.Model{m}
	lookup := func(provider, model string) (catalog.Model, bool) {
		var n int
		fmt.Sscanf(provider, "p%d", &n)
		return catalog.Model{Provider: provider, ID: model, Context: 1 << 20, Input: catalog.Price(100 + 37*n%11), Output: catalog.Price(400 + 53*n%7)}, true
	}
	rt := config.Routing{DefaultStrategy: strategy}
	r, err := New(cfg, adapters, zap.NewNop(), time.Now, lookup, WithRouting(rt))
	if err != nil {
		b.Fatal(err)
	}
	mm, _ := r.Lookup("m")
	now := time.Now().UnixNano()
	for i, d := range mm.Deployments {
		d.health.observeTTFT(float64(time.Duration(50+i*7)*time.Millisecond), now)
		d.health.observeLatency(float64(time.Duration(300+i*13)*time.Millisecond), 100, now)
	}
	return r, mm
}

// BenchmarkPick measures choosing the first candidate among 20
// deployments: parsing the routing needs of the request, ordering by the
// strategy, admitting the first (capabilities, cooldown, breaker).
func BenchmarkPick(b *testing.B) {
	req := &providers.ChatRequest{Model: "m", Stream: true, MaxTokens: 200, ContextTokens: 600,
		Body: []byte(`{"model":"m","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"Say hello to the benchmark, please."}]}`)}
	for _, s := range BuiltinStrategies().Names() {
		b.Run(s, func(b *testing.B) {
			r, m := benchRouter(b, s)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p := r.plans.Get().(*plan)
				if err := p.init(ctx, r, m, req, false, 0); err != nil {
					b.Fatal(err)
				}
				c, ok := p.next()
				if !ok {
					b.Fatal("no candidate")
				}
				c.done(nil)
				r.putPlan(p)
			}
		})
	}
}

// BenchmarkOrder measures the strategies alone on 20 deployments.
func BenchmarkOrder(b *testing.B) {
	for _, s := range BuiltinStrategies().Names() {
		b.Run(s, func(b *testing.B) {
			r, m := benchRouter(b, s)
			q := &Query{Stream: true, PromptTokens: 400, CompletionTokens: 200, Now: r.now().UnixNano()}
			ds := make([]*Deployment, len(m.Deployments))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				copy(ds, m.Deployments)
				q.explored = false
				m.strategy.Order(q, ds)
			}
		})
	}
}

// endless is a stream that never ends: one chunk per Recv.
type endless struct{ c providers.Chunk }

func (e *endless) Recv() (providers.Chunk, error) { return e.c, nil }
func (e *endless) Close() error                   { return nil }

// BenchmarkStreamRecv measures what the router adds to each chunk of a
// stream it returned: the idle watchdog (re-armed and stopped per chunk)
// and the statistics, against the same stream without a watchdog.
func BenchmarkStreamRecv(b *testing.B) {
	for _, idle := range []time.Duration{0, time.Minute} {
		b.Run("idle="+idle.String(), func(b *testing.B) {
			_, cancel := context.WithCancel(context.Background())
			defer cancel()
			d := &Deployment{idle: idle}
			p := &peeked{Stream: &endless{providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"hi"}}]}`)}}, d: d, watch: newWatchdog(cancel, 0), release: cancel}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Recv(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
