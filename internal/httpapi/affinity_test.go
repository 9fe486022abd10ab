package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
)

// upstream is one Anthropic mock deployment behind a switch that makes it
// fail (529 overloaded) and a recorder of the bodies it received.
type upstream struct {
	name    string
	h       http.Handler
	failing atomic.Bool
	calls   atomic.Int64
	mu      sync.Mutex
	bodies  [][]byte
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if strings.HasSuffix(r.URL.Path, "/messages") {
		u.calls.Add(1)
		u.mu.Lock()
		u.bodies = append(u.bodies, b)
		u.mu.Unlock()
	}
	if u.failing.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	u.h.ServeHTTP(w, r)
}

func (u *upstream) last() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return nil
	}
	return u.bodies[len(u.bodies)-1]
}

// affGateway is xroute in front of three Anthropic mock deployments
// (distinct servers and provider keys, so three caches) of one public
// model "claude-team" under the balanced strategy, with the prices of
// Claude Sonnet, and "claude-sonnet-4-5" on the first alone.
type affGateway struct {
	*gateway
	ups map[string]*upstream // by provider name
}

const teamModel = "claude-team"

func newAffGateway(t *testing.T, affinity bool, mutate func(*config.Config)) *affGateway {
	t.Helper()
	cg := &affGateway{ups: map[string]*upstream{}}
	var provs []config.Provider
	var deps []config.Deployment
	for i, n := range []string{"anth-a", "anth-b", "anth-c"} {
		key := fmt.Sprintf("sk-ant-affinity-test-key-%04d", i+1)
		// The same latency everywhere: the deployments tie (as in the
		// issue's measurement) and balanced shares the traffic between them.
		u := &upstream{name: n, h: anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: key, Latency: 40 * time.Millisecond}})}
		srv := httptest.NewServer(u)
		t.Cleanup(srv.Close)
		cg.ups[n] = u
		provs = append(provs, config.Provider{Name: n, Type: "anthropic", BaseURL: srv.URL, APIKey: key})
		deps = append(deps, config.Deployment{Provider: n, Model: "claude-sonnet-4-5",
			InputPrice: "3.00", OutputPrice: "15.00", CachedInputPrice: "0.30", CacheWriteInputPrice: "3.75"})
	}
	cg.gateway = newGateway(t, gwOptions{strictPrices: true, mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, provs...)
		for i := range c.Models {
			for j := range c.Models[i].Deployments {
				c.Models[i].Deployments[j].Free = true
			}
		}
		c.Models = append(c.Models,
			config.Model{Name: teamModel, Deployments: deps},
			config.Model{Name: "claude-sonnet-4-5", Deployments: deps[:1]})
		c.Routing.Models = map[string]config.ModelRouting{teamModel: {Strategy: "balanced", Affinity: &affinity}}
		if mutate != nil {
			mutate(c)
		}
	}})
	if _, _, err := cg.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 100*billing.NanoPerUSD, "affinity", "test"); err != nil {
		t.Fatal(err)
	}
	return cg
}

// claudeCodeSession builds the requests of a Claude-Code-shaped session:
// two system blocks (the second long, marked as Claude Code marks it), 12
// tools, and turns of tool_use / tool_result; each request marks its last
// block, as Claude Code does.
type claudeCodeSession struct {
	system, tools json.RawMessage
	msgs          []json.RawMessage
}

func newClaudeCodeSession(n int) *claudeCodeSession {
	s := &claudeCodeSession{}
	s.system, _ = json.Marshal([]map[string]any{
		{"type": "text", "text": fmt.Sprintf("You are Claude Code, Anthropic's official CLI for Claude. (Project %d.)", n)},
		{"type": "text", "text": strings.Repeat("Follow the repository's conventions; run the tests before you commit. ", 300), "cache_control": map[string]string{"type": "ephemeral"}},
	})
	var tools []map[string]any
	for _, n := range []string{"Bash", "Read", "Write", "Edit", "Glob", "Grep", "LS", "WebFetch", "WebSearch", "TodoWrite", "Task", "NotebookEdit"} {
		tools = append(tools, map[string]any{"name": n, "description": n + ": " + strings.Repeat("a tool the agent uses to work on the code base. ", 25),
			"input_schema": map[string]any{"type": "object", "properties": map[string]any{"path": map[string]string{"type": "string"}}}})
	}
	s.tools, _ = json.Marshal(tools)
	s.msgs = append(s.msgs, json.RawMessage(`{"role":"user","content":[{"type":"text","text":"Fix the failing test in router/plan.go."}]}`))
	return s
}

// body is the next request: the conversation so far, its last block
// marked.
func (s *claudeCodeSession) body(model string) string {
	msgs := make([]json.RawMessage, len(s.msgs))
	copy(msgs, s.msgs)
	last := gjson.ParseBytes(msgs[len(msgs)-1])
	n := len(last.Get("content").Array())
	marked, _ := sjson.Set(string(msgs[len(msgs)-1]), fmt.Sprintf("content.%d.cache_control", n-1), map[string]string{"type": "ephemeral"})
	msgs[len(msgs)-1] = json.RawMessage(marked)
	m, _ := json.Marshal(msgs)
	return `{"model":"` + model + `","max_tokens":64,"stream":true,"system":` + string(s.system) + `,"tools":` + string(s.tools) + `,"messages":` + string(m) + `}`
}

// turn appends the agent's tool call and its result (Claude Code's
// rhythm: read a file, look at it, read another).
func (s *claudeCodeSession) turn(k int) {
	s.msgs = append(s.msgs,
		json.RawMessage(fmt.Sprintf(`{"role":"assistant","content":[{"type":"text","text":"Reading file %d."},{"type":"tool_use","id":"toolu_%02d","name":"Read","input":{"path":"f%d.go"}}]}`, k, k, k)),
		json.RawMessage(fmt.Sprintf(`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_%02d","content":%q}]}`, k, strings.Repeat(fmt.Sprintf("line %d of the file; ", k), 40))))
}

// runSession sends turns requests of one session and returns the request
// ids in order.
func (cg *affGateway) runSession(t *testing.T, key, model string, n, turns int, hdr ...string) []string {
	t.Helper()
	s := newClaudeCodeSession(n)
	var ids []string
	for k := 1; k <= turns; k++ {
		r := sendModel(t, cg.srv.URL, key, "/v1/messages", s.body(model), hdr...)
		if r.StatusCode != 200 || !strings.Contains(r.body, "message_stop") {
			t.Fatalf("turn %d: %d %.300s", k, r.StatusCode, r.body)
		}
		ids = append(ids, r.Header.Get("x-request-id"))
		s.turn(k)
	}
	return ids
}

type sessionTotals struct {
	prompt, cached, written int
	costNano                int64
	byDeployment            map[string]int
	deployments             []string
}

func (cg *affGateway) totals(t *testing.T, ids []string) sessionTotals {
	t.Helper()
	st := sessionTotals{byDeployment: map[string]int{}}
	for _, id := range ids {
		r := cg.usageFor(id)
		st.prompt += r.PromptTokens
		st.cached += r.CachedTokens
		st.written += r.CacheWriteTokens
		st.costNano += r.CostNano
		st.byDeployment[r.Deployment]++
		st.deployments = append(st.deployments, r.Deployment)
	}
	return st
}

// TestAffinityClaudeCodeSession is the must-show: 20-turn
// Claude-Code-shaped sessions (three, each its own project and cache) on a
// model with three Anthropic deployments under balanced, with affinity on
// and off: the share of input tokens read from cache, and the cost.
func TestAffinityClaudeCodeSession(t *testing.T) {
	t.Parallel()
	const sessions, turns = 3, 20
	res := map[bool]sessionTotals{}
	spread := false
	for _, on := range []bool{true, false} {
		mode := map[bool]string{true: "on", false: "off"}[on]
		cg := newAffGateway(t, on, nil)
		var all []string
		for n := 1; n <= sessions; n++ {
			ids := cg.runSession(t, cg.key, teamModel, n, turns, "x-claude-code-session-id", fmt.Sprintf("0b6c9d2e-5f0a-4d61-9a53-2f6f1c1e7a1%d", n))
			st := cg.totals(t, ids)
			t.Logf("affinity %-3s session %d: %5.1f%% of %d input tokens read from cache, %d written; cost %.6f USD; turns per deployment %v",
				mode, n, 100*float64(st.cached)/float64(st.prompt), st.prompt, st.written, float64(st.costNano)/1e9, st.byDeployment)
			if on && len(st.byDeployment) != 1 {
				t.Fatalf("affinity on: session %d was spread: %v", n, st.deployments)
			}
			if !on && len(st.byDeployment) > 1 {
				spread = true
			}
			all = append(all, ids...)
		}
		st := cg.totals(t, all)
		res[on] = st
		t.Logf("affinity %-3s all %d sessions: %5.1f%% of %d input tokens read from cache, %d written; cost %.6f USD",
			mode, sessions, 100*float64(st.cached)/float64(st.prompt), st.prompt, st.written, float64(st.costNano)/1e9)
		if on {
			m := metricsText(t, cg.gateway)
			if !strings.Contains(m, fmt.Sprintf(`xroute_affinity_total{outcome="hit"} %d`, sessions*(turns-1))) ||
				!strings.Contains(m, fmt.Sprintf(`xroute_affinity_total{outcome="miss"} %d`, sessions)) {
				t.Fatalf("affinity metrics:\n%s", grepLines(m, "xroute_affinity"))
			}
		}
	}
	on, off := res[true], res[false]
	onShare, offShare := float64(on.cached)/float64(on.prompt), float64(off.cached)/float64(off.prompt)
	if onShare < 0.9 {
		t.Errorf("affinity on read only %.1f%% of its input from cache", 100*onShare)
	}
	if !spread {
		t.Logf("affinity off happened to keep every session on one deployment this run")
		return
	}
	if onShare <= offShare {
		t.Errorf("affinity on read %.1f%% from cache, off %.1f%%", 100*onShare, 100*offShare)
	}
	if on.costNano >= off.costNano {
		t.Errorf("affinity on cost %d nano-USD, off %d", on.costNano, off.costNano)
	}
}

func metricsText(t *testing.T, g *gateway) string {
	t.Helper()
	resp, err := http.Get(g.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAffinityTwoAccountsNeverShareAnEntry: the same prompt (no session
// header: the prefix names the session) from two accounts gives two
// sessions, each a miss on its first request.
func TestAffinityTwoAccountsNeverShareAnEntry(t *testing.T) {
	t.Parallel()
	cg := newAffGateway(t, true, nil)
	ctx := context.Background()
	var keysOf []string
	for _, name := range []string{"team-a", "team-b"} {
		acc, err := cg.app.Keys.CreateAccount(ctx, name, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		k, _, err := cg.app.Keys.Create(ctx, keys.CreateParams{Name: name, AccountID: acc.ID})
		if err != nil {
			t.Fatal(err)
		}
		keysOf = append(keysOf, k)
		if _, _, err := cg.app.Ledger.TopUp(ctx, acc.ID, 100*billing.NanoPerUSD, "affinity-"+name, "test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keysOf {
		cg.runSession(t, k, teamModel, 0, 3)
	}
	m := metricsText(t, cg.gateway)
	if !strings.Contains(m, `xroute_affinity_total{outcome="miss"} 2`) || !strings.Contains(m, `xroute_affinity_total{outcome="hit"} 4`) {
		t.Fatalf("want one miss per account and hits after:\n%s", grepLines(m, "xroute_affinity"))
	}
}

// TestAffinityBreakerOpensMidSession: the deployment a session is pinned
// to starts failing; its breaker opens, the session goes on elsewhere and
// is pinned there.
func TestAffinityBreakerOpensMidSession(t *testing.T) {
	t.Parallel()
	cg := newAffGateway(t, true, func(c *config.Config) { c.Router.BreakerFailures = 1 })
	s := newClaudeCodeSession(0)
	var served []string
	var warm string
	for k := 1; k <= 10; k++ {
		if k == 6 {
			warm = strings.SplitN(served[len(served)-1], "/", 2)[0]
			cg.ups[warm].failing.Store(true)
			cg.ups[warm].calls.Store(0)
		}
		r := sendModel(t, cg.srv.URL, cg.key, "/v1/messages", s.body(teamModel), "x-session-id", "breaker-session")
		if r.StatusCode != 200 || !strings.Contains(r.body, "message_stop") {
			t.Fatalf("turn %d: %d %.300s", k, r.StatusCode, r.body)
		}
		served = append(served, cg.usageFor(r.Header.Get("x-request-id")).Deployment)
		s.turn(k)
	}
	t.Logf("served: %v", served)
	for i, d := range served[5:] {
		if strings.HasPrefix(d, warm+"/") {
			t.Fatalf("turn %d served by the failing %s", i+6, d)
		}
		if d != served[5] {
			t.Fatalf("not re-pinned after the breaker opened: %v", served)
		}
	}
	if n := cg.ups[warm].calls.Load(); n != 1 {
		t.Fatalf("the failing deployment got %d calls after it failed, want 1 (then its breaker is open)", n)
	}
	m := metricsText(t, cg.gateway)
	if !strings.Contains(m, `xroute_affinity_total{outcome="repin"} 1`) {
		t.Fatalf("want one re-pin:\n%s", grepLines(m, "xroute_affinity"))
	}
}

// TestBreakpointsForOpenAIFormatCallers: an OpenAI-format conversation
// routed to the Anthropic mock gets breakpoints and reads its prefix
// from the cache from turn 2 on.
func TestBreakpointsForOpenAIFormatCallers(t *testing.T) {
	t.Parallel()
	cg := newAffGateway(t, true, nil)
	system := strings.Repeat("You review Go code for a gateway; be exact and brief. ", 120)
	msgs := []map[string]string{{"role": "system", "content": system}}
	for k := 1; k <= 10; k++ {
		msgs = append(msgs, map[string]string{"role": "user", "content": fmt.Sprintf("Question %d: what does line %d do?", k, k)})
		b, _ := json.Marshal(map[string]any{"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": msgs})
		r := sendModel(t, cg.srv.URL, cg.key, "/v1/chat/completions", string(b))
		if r.StatusCode != 200 {
			t.Fatalf("turn %d: %d %s", k, r.StatusCode, r.body)
		}
		cached := gjson.Get(r.body, "usage.prompt_tokens_details.cached_tokens").Int()
		prompt := gjson.Get(r.body, "usage.prompt_tokens").Int()
		t.Logf("turn %2d: %d of %d prompt tokens read from cache", k, cached, prompt)
		if k >= 2 && cached == 0 {
			t.Fatalf("turn %d read nothing from the cache; upstream got %.400s", k, cg.ups["anth-a"].last())
		}
		sent := cg.ups["anth-a"].last()
		if !bytes.Contains(sent, []byte(`"cache_control"`)) {
			t.Fatalf("turn %d: no breakpoint upstream: %.300s", k, sent)
		}
		msgs = append(msgs, map[string]string{"role": "assistant", "content": gjson.Get(r.body, "choices.0.message.content").Str})
	}
}

// TestBreakpointsNeverOverTheCallersOwn: a Messages request that marks
// its own breakpoints reaches the upstream byte for byte; one that marks
// none gets marks and nothing else.
func TestBreakpointsNeverOverTheCallersOwn(t *testing.T) {
	t.Parallel()
	cg := newAffGateway(t, true, nil)
	long := strings.Repeat("Context the model needs on every turn. ", 200)
	own := `{"model":"claude-sonnet-4-5","max_tokens":16,"system":[{"type":"text","text":"` + long + `","cache_control":{"type":"ephemeral","ttl":"1h"}}],` +
		`"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u"},"temperature": 0.50}`
	r := sendModel(t, cg.srv.URL, cg.key, "/v1/messages", own)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	if got := cg.ups["anth-a"].last(); !bytes.Equal(got, []byte(own)) {
		t.Fatalf("the caller's marked body was changed:\nsent %s\ngot  %s", own, got)
	}
	none := `{"model":"claude-sonnet-4-5","max_tokens":16,"system":"` + long + `","messages":[{"role":"user","content":"hi"}],"temperature": 0.50}`
	r = sendModel(t, cg.srv.URL, cg.key, "/v1/messages", none)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	got := cg.ups["anth-a"].last()
	want := `{"model":"claude-sonnet-4-5","max_tokens":16,"system":[{"type":"text","text":"` + long + `","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}],"temperature": 0.50}`
	if string(got) != want {
		t.Fatalf("unmarked body upstream:\n%s\nwant\n%s", got, want)
	}
}
