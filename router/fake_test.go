package router

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// fakeClock is the router's clock in tests; fake providers advance it by
// their latency, so that measured latencies are exact.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fake is a provider whose behaviour a test scripts.
type fake struct {
	clock   *fakeClock
	latency time.Duration // added to the clock per call (TTFT for streams)
	// fail decides the error of call n (1-based); nil: success.
	fail       func(n int64) error
	completion int
	// block makes calls wait for their context to end.
	block bool

	calls atomic.Int64
	mu    sync.Mutex
	last  []byte // the last body the upstream saw
}

func (f *fake) call(ctx context.Context, c *providers.Call) error {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.last = c.Request.Body
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return providers.TransportError("fake", ctx.Err())
	}
	if f.clock != nil {
		f.clock.Advance(f.latency)
	}
	if f.fail != nil {
		return f.fail(n)
	}
	return nil
}

func (f *fake) Chat(ctx context.Context, c *providers.Call) (*providers.ChatResponse, error) {
	if err := f.call(ctx, c); err != nil {
		return nil, err
	}
	u := providers.Usage{PromptTokens: 100, CompletionTokens: f.completionTokens()}
	return &providers.ChatResponse{Body: []byte(`{"model":"` + c.Model + `"}`), Usage: u}, nil
}

func (f *fake) ChatStream(ctx context.Context, c *providers.Call) (providers.Stream, error) {
	if err := f.call(ctx, c); err != nil {
		return nil, err
	}
	return &fakeStream{completion: f.completionTokens()}, nil
}

func (f *fake) completionTokens() int {
	if f.completion == 0 {
		return 50
	}
	return f.completion
}

func (f *fake) body() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

type fakeStream struct {
	completion int
	n          int
	closed     bool
}

func (s *fakeStream) Recv() (providers.Chunk, error) {
	s.n++
	switch s.n {
	case 1:
		return providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"hi"}}]}`)}, nil
	case 2:
		return providers.Chunk{Data: []byte(`{"usage":{}}`), UsageOnly: true, Usage: &providers.Usage{PromptTokens: 100, CompletionTokens: s.completion}}, nil
	}
	return providers.Chunk{}, io.EOF
}

func (s *fakeStream) Close() error { s.closed = true; return nil }

func fail(err error) func(int64) error { return func(int64) error { return err } }

// fleet describes a test router: deployments "<name>/<name>-m" of one
// public model "m", priced per provider.
type fleet struct {
	names    []string
	fakes    map[string]*fake
	prices   map[string][2]catalog.Price // input, output
	caps     map[string]catalog.Capabilities
	routing  config.Routing
	failures uint32
	cooldown time.Duration
	attempts int
	clock    *fakeClock
	extra    []config.Model
}

func (f fleet) build(t testing.TB) (*Router, *Model) {
	t.Helper()
	return f.buildWith(t, nil)
}

// buildWith is build with more adapters by provider name (providers that
// are not fakes).
func (f fleet) buildWith(t testing.TB, more map[string]providers.Provider) (*Router, *Model) {
	t.Helper()
	cfg := config.Default()
	cfg.Router.BreakerFailures = f.failures
	if cfg.Router.BreakerFailures == 0 {
		cfg.Router.BreakerFailures = 5
	}
	cfg.Router.BreakerCooldown = f.cooldown
	if f.cooldown == 0 {
		cfg.Router.BreakerCooldown = time.Hour
	}
	if f.attempts > 0 {
		cfg.Router.MaxAttempts = f.attempts
	}
	adapters := map[string]providers.Provider{}
	m := config.Model{Name: "m"}
	for n, fk := range f.fakes {
		cfg.Providers = append(cfg.Providers, config.Provider{Name: n, Type: "test"})
		adapters[n] = fk
	}
	for n, p := range more {
		cfg.Providers = append(cfg.Providers, config.Provider{Name: n, Type: "test"})
		adapters[n] = p
	}
	for _, n := range f.names {
		m.Deployments = append(m.Deployments, config.Deployment{Provider: n, Model: n + "-m"})
	}
	cfg.Models = append([]config.Model{m}, f.extra...)
	lookup := func(provider, model string) (catalog.Model, bool) {
		p, ok := f.prices[provider]
		if !ok {
			return catalog.Model{}, false
		}
		caps := catalog.Capabilities{Tools: true}
		if c, ok := f.caps[provider]; ok {
			caps = c
		}
		return catalog.Model{Provider: provider, ID: model, Name: "m", Input: p[0], Output: p[1], Context: 100_000, Caps: caps}, true
	}
	clock := f.clock
	if clock == nil {
		clock = newClock()
	}
	r, err := New(cfg, adapters, zap.NewNop(), clock.Now, lookup, WithRouting(f.routing))
	if err != nil {
		t.Fatal(err)
	}
	mm, _ := r.Lookup("m")
	return r, mm
}

// fakes makes a fake per name on clock.
func fakes(clock *fakeClock, names ...string) map[string]*fake {
	out := map[string]*fake{}
	for _, n := range names {
		out[n] = &fake{clock: clock}
	}
	return out
}

func chatReq(body string) *providers.ChatRequest {
	if body == "" {
		body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	}
	req, err := providers.ParseChatRequest([]byte(body))
	if err != nil {
		panic(err)
	}
	return req
}
