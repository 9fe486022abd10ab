package router

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// scripted is a Provider whose answers tests choose.
type scripted struct {
	calls atomic.Int64
	err   error // returned by Chat / ChatStream
	// streamErr, when set, is what the first Recv of a started stream returns.
	streamErr error
}

func (s *scripted) Chat(ctx context.Context, c *providers.Call) (*providers.ChatResponse, error) {
	s.calls.Add(1)
	if s.err != nil {
		return nil, s.err
	}
	return &providers.ChatResponse{Body: []byte(`{"model":"` + c.Model + `"}`)}, nil
}

func (s *scripted) ChatStream(ctx context.Context, c *providers.Call) (providers.Stream, error) {
	s.calls.Add(1)
	if s.err != nil {
		return nil, s.err
	}
	return &oneChunk{err: s.streamErr}, nil
}

type oneChunk struct {
	err  error
	sent bool
}

func (o *oneChunk) Recv() (providers.Chunk, error) {
	if o.err != nil {
		return providers.Chunk{}, o.err
	}
	if o.sent {
		return providers.Chunk{}, io.EOF
	}
	o.sent = true
	return providers.Chunk{Data: []byte(`{}`)}, nil
}
func (o *oneChunk) Close() error { return nil }

func newRouter(t *testing.T, failures uint32, adapters map[string]providers.Provider, order ...string) (*Router, *Model) {
	t.Helper()
	cfg := config.Default()
	cfg.Router.BreakerFailures = failures
	cfg.Router.BreakerCooldown = time.Hour
	cfg.Router.MaxAttempts = 3
	m := config.Model{Name: "m"}
	for _, p := range order {
		cfg.Providers = append(cfg.Providers, config.Provider{Name: p, Type: "test"})
		m.Deployments = append(m.Deployments, config.Deployment{Provider: p, Model: p + "-model"})
	}
	cfg.Models = []config.Model{m}
	r, err := New(cfg, adapters, zap.NewNop(), time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	mm, _ := r.Lookup("m")
	return r, mm
}

var req = &providers.ChatRequest{Model: "m"}

func TestFailoverRules(t *testing.T) {
	unavailable := &providers.Error{Provider: "a", Status: 503}
	tests := []struct {
		name         string
		aErr         error
		wantProvider string
		wantAttempts int
		wantErr      bool
	}{
		{"first healthy answers", nil, "a", 1, false},
		{"503 fails over", unavailable, "b", 2, false},
		{"429 fails over", &providers.Error{Status: 429}, "b", 2, false},
		{"connect error fails over", providers.TransportError("a", errors.New("connection refused")), "b", 2, false},
		{"400 goes back to the caller", &providers.Error{Status: 400, Message: "bad"}, "a", 1, true},
		{"caller cancel stops", providers.TransportError("a", context.Canceled), "a", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := &scripted{err: tt.aErr}, &scripted{}
			r, m := newRouter(t, 5, map[string]providers.Provider{"a": a, "b": b}, "a", "b")
			_, res, err := r.Chat(context.Background(), m, req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if res.Deployment.Provider != tt.wantProvider || res.Attempts != tt.wantAttempts {
				t.Fatalf("went to %s in %d attempts", res.Deployment.Provider, res.Attempts)
			}
		})
	}
}

func TestBreakerOpensAndIsSkipped(t *testing.T) {
	a, b := &scripted{err: &providers.Error{Status: 500}}, &scripted{}
	r, m := newRouter(t, 3, map[string]providers.Provider{"a": a, "b": b}, "a", "b")
	for i := 0; i < 3; i++ {
		if _, _, err := r.Chat(context.Background(), m, req); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Deployments[0].BreakerState(); got != "open" {
		t.Fatalf("breaker after 3 consecutive failures: %s", got)
	}
	_, res, err := r.Chat(context.Background(), m, req)
	if err != nil || res.Attempts != 1 || res.Deployment.Provider != "b" {
		t.Fatalf("open deployment must be skipped without an attempt: %+v %v", res, err)
	}
	if a.calls.Load() != 3 {
		t.Fatalf("open breaker still let %d calls through", a.calls.Load()-3)
	}
	// Every deployment open: a clear error, no call.
	b.err = &providers.Error{Status: 500}
	for i := 0; i < 3; i++ {
		r.Chat(context.Background(), m, req)
	}
	if _, _, err := r.Chat(context.Background(), m, req); !errors.Is(err, ErrNoDeployment) {
		t.Fatalf("all open: want ErrNoDeployment, got %v", err)
	}
}

func TestRequestErrorsDoNotTripBreaker(t *testing.T) {
	a := &scripted{err: &providers.Error{Status: 400}}
	r, m := newRouter(t, 2, map[string]providers.Provider{"a": a}, "a")
	for i := 0; i < 5; i++ {
		r.Chat(context.Background(), m, req)
	}
	if st := m.Deployments[0].BreakerState(); st != "closed" {
		t.Fatalf("caller mistakes opened the breaker: %s", st)
	}
}

func TestStreamFailsOverBeforeFirstChunk(t *testing.T) {
	a := &scripted{streamErr: &providers.Error{Provider: "a", MidStream: true, Err: io.ErrUnexpectedEOF}}
	b := &scripted{}
	r, m := newRouter(t, 5, map[string]providers.Provider{"a": a, "b": b}, "a", "b")
	st, res, err := r.ChatStream(context.Background(), m, req)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if res.Deployment.Provider != "b" || res.Attempts != 2 {
		t.Fatalf("stream went to %s after %d attempts", res.Deployment.Provider, res.Attempts)
	}
	if c, err := st.Recv(); err != nil || string(c.Data) != "{}" {
		t.Fatalf("the peeked first chunk must be replayed: %q %v", c.Data, err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("then EOF, got %v", err)
	}
}

func TestMaxAttemptsBoundsFailover(t *testing.T) {
	ps := map[string]providers.Provider{}
	var order []string
	for _, n := range []string{"a", "b", "c", "d"} {
		ps[n] = &scripted{err: &providers.Error{Status: 503}}
		order = append(order, n)
	}
	r, m := newRouter(t, 5, ps, order...)
	_, res, err := r.Chat(context.Background(), m, req)
	if err == nil || res.Attempts != 3 || ps["d"].(*scripted).calls.Load() != 0 {
		t.Fatalf("attempts %d, d called %d times, err %v", res.Attempts, ps["d"].(*scripted).calls.Load(), err)
	}
}

func TestCapabilityRouting(t *testing.T) {
	plain, tooled := &scripted{}, &scripted{}
	cfg := config.Default()
	cfg.Providers = []config.Provider{{Name: "plain", Type: "t"}, {Name: "tooled", Type: "t"}}
	cfg.Models = []config.Model{
		{Name: "m", Deployments: []config.Deployment{{Provider: "plain", Model: "p"}, {Provider: "tooled", Model: "t"}}},
		{Name: "only-plain", Deployments: []config.Deployment{{Provider: "plain", Model: "p"}}},
	}
	lookup := func(provider, model string) (catalog.Model, bool) {
		m := catalog.Model{Provider: provider, ID: model, Context: 1000}
		m.Caps.Tools = provider == "tooled"
		return m, true
	}
	r, err := New(cfg, map[string]providers.Provider{"plain": plain, "tooled": tooled}, zap.NewNop(), time.Now, lookup)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := r.Lookup("m")
	withTools := &providers.ChatRequest{Model: "m", HasTools: true}
	if _, res, err := r.Chat(context.Background(), m, withTools); err != nil || res.Deployment.Provider != "tooled" || res.Attempts != 1 {
		t.Fatalf("tools request went to %v (%v)", res.Deployment, err)
	}
	if _, res, _ := r.Chat(context.Background(), m, &providers.ChatRequest{Model: "m"}); res.Deployment.Provider != "plain" {
		t.Fatal("a plain request takes the first deployment")
	}
	only, _ := r.Lookup("only-plain")
	_, _, err = r.Chat(context.Background(), only, withTools)
	var ce *CapabilityError
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "tools") || plain.calls.Load() != 1 {
		t.Fatalf("want a CapabilityError naming tools without calling: %v (calls %d)", err, plain.calls.Load())
	}
	long := &providers.ChatRequest{Model: "m", ContextTokens: 5000}
	if _, _, err := r.Chat(context.Background(), m, long); !errors.As(err, &ce) {
		t.Fatalf("a request over every context window: %v", err)
	}
}

// TestCallerChosenNamesCannotGrowTheTables: "provider/<anything>" names are
// chosen by callers; past a cap they are served without being remembered.
func TestCallerChosenNamesCannotGrowTheTables(t *testing.T) {
	r, _ := newRouter(t, 5, map[string]providers.Provider{"a": &scripted{}}, "a")
	for i := 0; i < maxDynamic+500; i++ {
		m, ok := r.Lookup("a/model-" + strconv.Itoa(i))
		if !ok || len(m.Deployments) != 1 || m.Deployments[0].Model != "model-"+strconv.Itoa(i) {
			t.Fatalf("lookup %d: %+v %v", i, m, ok)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dynamic) > maxDynamic || r.dynamicDeployments > maxDynamic || len(r.shared) > maxDynamic+1 {
		t.Fatalf("tables grew past the cap: models %d, deployments %d (%d shared)", len(r.dynamic), r.dynamicDeployments, len(r.shared))
	}
}
