package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// The prompt every traced request sends: it must never be an attribute
// unless content capture is on.
const tracedPrompt = "my-private-prompt-words-4242"

// Callers' trace context: a trace id xroute must continue.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	callerParent  = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// tracedGateway is a gateway whose spans go to an in-memory exporter,
// exported as each ends. Spans are read after g.close: the server has
// then finished every request (httptest.Server.Close waits for them).
type tracedGateway struct {
	*gateway
	spans    *tracetest.InMemoryExporter
	mu       sync.Mutex
	upstream []http.Header // the headers of each upstream call
}

func newTracedGateway(t *testing.T, o gwOptions, capture bool) *tracedGateway {
	t.Helper()
	tg := &tracedGateway{spans: tracetest.NewInMemoryExporter()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tg.spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	o.tracer = telemetry.FromProvider(tp, capture)
	inner := o.wrapPrimary
	o.wrapPrimary = func(h http.Handler) http.Handler {
		if inner != nil {
			h = inner(h)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tg.mu.Lock()
			tg.upstream = append(tg.upstream, r.Header.Clone())
			tg.mu.Unlock()
			h.ServeHTTP(w, r)
		})
	}
	tg.gateway = newGateway(t, o)
	return tg
}

// finished closes the gateway and returns every span it ended.
func (tg *tracedGateway) finished() tracetest.SpanStubs {
	tg.close()
	return tg.spans.GetSpans()
}

// tree is one trace's spans, by name and parent.
type tree struct {
	t     *testing.T
	spans tracetest.SpanStubs
}

func traceOf(t *testing.T, all tracetest.SpanStubs, traceID trace.TraceID) tree {
	var out tracetest.SpanStubs
	for _, s := range all {
		if s.SpanContext.TraceID() == traceID {
			out = append(out, s)
		}
	}
	return tree{t, out}
}

func (tr tree) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tr.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (tr tree) one(name string) tracetest.SpanStub {
	tr.t.Helper()
	s := tr.named(name)
	if len(s) != 1 {
		tr.t.Fatalf("%d spans named %q, want 1; the trace: %s", len(s), name, tr)
	}
	return s[0]
}

func (tr tree) children(parent tracetest.SpanStub) []string {
	var out []string
	for _, s := range tr.spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() && s.Parent.IsValid() {
			out = append(out, s.Name)
		}
	}
	return out
}

func (tr tree) String() string {
	var b strings.Builder
	for _, s := range tr.spans {
		b.WriteString(s.Name + " (parent " + s.Parent.SpanID().String() + ", id " + s.SpanContext.SpanID().String() + "); ")
	}
	return b.String()
}

func attr(s tracetest.SpanStub, key string) (any, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.AsInterface(), true
		}
	}
	return nil, false
}

func wantAttr(t *testing.T, s tracetest.SpanStub, key string, want any) {
	t.Helper()
	got, ok := attr(s, key)
	if !ok {
		t.Errorf("span %s has no %s; attributes: %v", s.Name, key, s.Attributes)
		return
	}
	if want != nil && got != want {
		t.Errorf("span %s: %s = %v (%T), want %v (%T)", s.Name, key, got, got, want, want)
	}
}

// noSecrets scans every attribute and event of every span for the prompt
// and the keys.
func noSecrets(t *testing.T, spans tracetest.SpanStubs, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		var vals []string
		for _, kv := range s.Attributes {
			vals = append(vals, kv.Value.Emit())
		}
		for _, ev := range s.Events {
			for _, kv := range ev.Attributes {
				vals = append(vals, kv.Value.Emit())
			}
		}
		vals = append(vals, s.Status.Description, s.Name)
		for _, v := range vals {
			for _, sec := range secrets {
				if sec != "" && strings.Contains(v, sec) {
					t.Errorf("span %s carries %q", s.Name, sec)
				}
			}
		}
	}
}

// post sends a chat request with the caller's traceparent, reading the
// whole answer.
func post(t *testing.T, url, key, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func mustTraceID(t *testing.T, s string) trace.TraceID {
	t.Helper()
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// logLines are the gateway's log lines that name request id.
func (g *gateway) logLines(t *testing.T, requestID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(g.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] == requestID {
			out = append(out, m)
		}
	}
	return out
}

func fund(t *testing.T, g *gateway) {
	t.Helper()
	if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 1_000_000_000_000, "t", "test"); err != nil {
		t.Fatal(err)
	}
}

// TestTraceSuccess: a plain request continues the caller's trace: a
// server span under the caller's span, with children for every step and
// the upstream call beneath its attempt; the upstream got a traceparent
// naming that call; GenAI and xroute attributes on the server span; the
// trace id in every log line; no prompt and no key on any span.
func TestTraceSuccess(t *testing.T) {
	t.Parallel()
	tg := newTracedGateway(t, gwOptions{mutate: priced}, false)
	fund(t, tg.gateway)
	body := `{"model":"gpt-4o-mini","max_tokens":12,"temperature":0.5,"messages":[{"role":"user","content":"` + tracedPrompt + `"}]}`
	st, b, h := post(t, tg.base+"/chat/completions", tg.key, body, "traceparent", callerParent)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	reqID := h.Get("x-request-id")
	// The request log row names the same trace.
	if rec := tg.usageFor(reqID); rec.TraceID != callerTraceID {
		t.Errorf("request log trace_id %q, want %q", rec.TraceID, callerTraceID)
	}
	spans := tg.finished()
	tr := traceOf(t, spans, mustTraceID(t, callerTraceID))

	srv := tr.one("POST /v1/chat/completions")
	if srv.SpanKind != trace.SpanKindServer || srv.Parent.SpanID().String() != callerSpanID || !srv.Parent.IsRemote() {
		t.Fatalf("server span: kind %v, parent %v (remote %v); want a server span under the caller's %s", srv.SpanKind, srv.Parent.SpanID(), srv.Parent.IsRemote(), callerSpanID)
	}
	want := []string{telemetry.SpanAuth, telemetry.SpanLimits, telemetry.SpanTokenLimit, telemetry.SpanCreditHold, telemetry.SpanAttempt, telemetry.SpanUsageWrite, telemetry.SpanSettle}
	if got := tr.children(srv); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("server span's children %v, want %v", got, want)
	}
	att := tr.one(telemetry.SpanAttempt)
	up := tr.one("POST")
	if up.SpanKind != trace.SpanKindClient || up.Parent.SpanID() != att.SpanContext.SpanID() {
		t.Fatalf("upstream span: kind %v, parent %v; want a client span under the attempt %v", up.SpanKind, up.Parent.SpanID(), att.SpanContext.SpanID())
	}
	wantAttr(t, up, "http.response.status_code", int64(200))
	wantAttr(t, up, "server.address", "127.0.0.1")

	// The upstream heard of the call that reached it.
	if len(tg.upstream) != 1 {
		t.Fatalf("%d upstream calls", len(tg.upstream))
	}
	wantTP := "00-" + callerTraceID + "-" + up.SpanContext.SpanID().String() + "-01"
	if got := tg.upstream[0].Get("traceparent"); got != wantTP {
		t.Fatalf("upstream traceparent %q, want %q", got, wantTP)
	}

	wantAttr(t, att, "gen_ai.provider.name", "primary")
	wantAttr(t, att, "gen_ai.request.model", "mock-small")
	wantAttr(t, att, "xroute.deployment", "primary/mock-small")
	wantAttr(t, att, "xroute.attempt.outcome", telemetry.OutcomeSuccess)
	wantAttr(t, att, "xroute.attempt.hedge", false)
	wantAttr(t, att, "xroute.breaker.state", "closed")

	for k, v := range map[string]any{
		"gen_ai.operation.name":          "chat",
		"gen_ai.request.model":           "gpt-4o-mini",
		"gen_ai.response.model":          "mock-small",
		"gen_ai.provider.name":           "primary",
		"gen_ai.request.max_tokens":      int64(12),
		"gen_ai.request.temperature":     0.5,
		"http.response.status_code":      int64(200),
		"http.route":                     "/v1/chat/completions",
		"xroute.attempts":                int64(1),
		"xroute.account_id":              keys.DefaultAccountID,
		"xroute.request_id":              reqID,
		"xroute.stream":                  false,
		"xroute.cache":                   "miss",
		"gen_ai.usage.input_tokens":      nil,
		"gen_ai.usage.output_tokens":     nil,
		"xroute.key_id":                  nil,
		"gen_ai.response.finish_reasons": nil,
	} {
		wantAttr(t, srv, k, v)
	}
	if v, _ := attr(srv, "gen_ai.usage.output_tokens"); v.(int64) <= 0 {
		t.Errorf("output tokens %v", v)
	}
	if v, _ := attr(srv, "xroute.cost_usd"); v == nil || v.(float64) <= 0 {
		t.Errorf("xroute.cost_usd = %v, want the charge", v)
	}
	noSecrets(t, spans, tracedPrompt, tg.key, tg.key[3:20], providerKey)

	lines := tg.logLines(t, reqID)
	if len(lines) == 0 {
		t.Fatal("no log line names the request")
	}
	for _, l := range lines {
		if l["trace_id"] != callerTraceID {
			t.Errorf("log line %v: trace_id %v, want %s", l["msg"], l["trace_id"], callerTraceID)
		}
	}
}

// TestTraceFailover: the first deployment fails (503), the second
// answers: two attempt spans, each with its upstream call, the first
// marked failed with the upstream's status.
func TestTraceFailover(t *testing.T) {
	t.Parallel()
	tg := newTracedGateway(t, gwOptions{mock: mock.Config{FailRate503: 1}, backup: &mock.Config{}}, false)
	st, b, _ := post(t, tg.base+"/chat/completions", tg.key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`+tracedPrompt+`"}]}`, "traceparent", callerParent)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	spans := tg.finished()
	tr := traceOf(t, spans, mustTraceID(t, callerTraceID))
	srv := tr.one("POST /v1/chat/completions")
	atts := tr.named(telemetry.SpanAttempt)
	if len(atts) != 2 {
		t.Fatalf("%d attempts; the trace: %s", len(atts), tr)
	}
	for i, c := range []struct{ deployment, outcome string }{
		{"primary/mock-small", telemetry.OutcomeFailure},
		{"backup/mock-small-b", telemetry.OutcomeSuccess},
	} {
		a := atts[i]
		if a.Parent.SpanID() != srv.SpanContext.SpanID() {
			t.Errorf("attempt %d is not a child of the server span", i)
		}
		wantAttr(t, a, "xroute.deployment", c.deployment)
		wantAttr(t, a, "xroute.attempt.outcome", c.outcome)
		if ch := tr.children(a); len(ch) != 1 || ch[0] != "POST" {
			t.Errorf("attempt %d's children %v, want its upstream call", i, ch)
		}
	}
	wantAttr(t, atts[0], "error.type", "503")
	if atts[0].Status.Code.String() != "Error" || atts[1].Status.Code.String() == "Error" {
		t.Errorf("statuses %v, %v: want the first attempt failed, the second not", atts[0].Status, atts[1].Status)
	}
	wantAttr(t, srv, "xroute.attempts", int64(2))
	wantAttr(t, srv, "gen_ai.provider.name", "backup")
	noSecrets(t, spans, tracedPrompt, tg.key, providerKey)
}

// TestTraceStream: a stream's relay is a span with the first token as an
// event; the upstream call's span lasts until the stream is read.
func TestTraceStream(t *testing.T) {
	t.Parallel()
	tg := newTracedGateway(t, gwOptions{mutate: priced}, false)
	fund(t, tg.gateway)
	st, b, _ := post(t, tg.base+"/chat/completions", tg.key, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"`+tracedPrompt+`"}]}`, "traceparent", callerParent)
	if st != 200 || !strings.Contains(b, "[DONE]") {
		t.Fatalf("status %d: %s", st, b)
	}
	spans := tg.finished()
	tr := traceOf(t, spans, mustTraceID(t, callerTraceID))
	srv := tr.one("POST /v1/chat/completions")
	relay := tr.one(telemetry.SpanStream)
	if relay.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Fatal("the stream span is not a child of the server span")
	}
	var first bool
	for _, ev := range relay.Events {
		if ev.Name == telemetry.EventFirstToken {
			first = true
			for _, kv := range ev.Attributes {
				if kv.Key == telemetry.AttrTTFTms && kv.Value.AsFloat64() <= 0 {
					t.Errorf("ttft %v", kv.Value.AsFloat64())
				}
			}
		}
	}
	if !first {
		t.Fatalf("no %s event on the stream span: %v", telemetry.EventFirstToken, relay.Events)
	}
	up := tr.one("POST")
	if up.EndTime.Before(tr.one(telemetry.SpanAttempt).EndTime) {
		t.Error("the upstream call's span ended before its attempt chose it: it must cover the stream")
	}
	wantAttr(t, srv, "xroute.stream", true)
	wantAttr(t, srv, "gen_ai.response.finish_reasons", nil)
	if v, _ := attr(srv, "gen_ai.usage.output_tokens"); v == nil || v.(int64) <= 0 {
		t.Errorf("output tokens %v", v)
	}
	noSecrets(t, spans, tracedPrompt, tg.key, providerKey)
}

// TestTraceRefusals: a request the key's RPM refuses (429) and one the
// account's credits cannot cover (429 insufficient_quota in OpenAI's
// shape, 402 in Anthropic's) are traced to the step that refused them,
// and no attempt nor upstream call was made.
func TestTraceRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path, body, code string
		status                 int
		refusedBy              string
		rpm                    int
		hdr                    []string
	}{
		{"rate limit", "/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + tracedPrompt + `"}]}`, "rate_limit_exceeded", 429, telemetry.SpanLimits, 1, nil},
		{"insufficient credit", "/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + tracedPrompt + `"}]}`, "insufficient_quota", 429, telemetry.SpanCreditHold, 0, nil},
		{"insufficient credit, Anthropic", "/messages", `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"` + tracedPrompt + `"}]}`, "insufficient_quota", 402, telemetry.SpanCreditHold, 0, []string{"anthropic-version", "2023-06-01"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := newTracedGateway(t, gwOptions{mutate: func(cfg *config.Config) {
				priced(cfg)
				cfg.Limits.RPM = c.rpm
			}}, false)
			if c.rpm > 0 {
				fund(t, tg.gateway)
				// The first request spends the minute's only one.
				if st, b, _ := post(t, tg.base+c.path, tg.key, c.body); st != 200 {
					t.Fatalf("first request: %d %s", st, b)
				}
			}
			st, b, h := post(t, tg.base+c.path, tg.key, c.body, append([]string{"traceparent", callerParent}, c.hdr...)...)
			if st != c.status {
				t.Fatalf("status %d, want %d: %s", st, c.status, b)
			}
			spans := tg.finished()
			tr := traceOf(t, spans, mustTraceID(t, callerTraceID))
			srv := tr.one("POST /v1" + c.path)
			wantAttr(t, srv, "http.response.status_code", int64(c.status))
			wantAttr(t, srv, "xroute.error_code", c.code)
			wantAttr(t, srv, "xroute.request_id", h.Get("x-request-id"))
			if srv.Status.Code.String() == "Error" {
				t.Error("a refusal is the caller's: the server span is not an error")
			}
			ref := tr.one(c.refusedBy)
			if ref.Status.Code.String() != "Error" {
				t.Errorf("%s: status %v, want Error", c.refusedBy, ref.Status)
			}
			wantAttr(t, ref, "error.type", c.code)
			if n := len(tr.named(telemetry.SpanAttempt)) + len(tr.named("POST")); n != 0 {
				t.Fatalf("%d attempt or upstream spans for a refused request: %s", n, tr)
			}
			noSecrets(t, spans, tracedPrompt, tg.key, providerKey)
		})
	}
}

// TestTraceContentCapture: with content capture on, the prompt and the
// answer are on the server span (and the keys still are not).
func TestTraceContentCapture(t *testing.T) {
	t.Parallel()
	tg := newTracedGateway(t, gwOptions{}, true)
	st, b, _ := post(t, tg.base+"/chat/completions", tg.key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`+tracedPrompt+`"}]}`, "traceparent", callerParent)
	if st != 200 {
		t.Fatalf("status %d: %s", st, b)
	}
	spans := tg.finished()
	srv := traceOf(t, spans, mustTraceID(t, callerTraceID)).one("POST /v1/chat/completions")
	in, _ := attr(srv, "gen_ai.input.messages")
	if s, _ := in.(string); !strings.Contains(s, tracedPrompt) {
		t.Errorf("gen_ai.input.messages = %v, want the prompt", in)
	}
	out, _ := attr(srv, "gen_ai.output.messages")
	if s, _ := out.(string); !strings.Contains(s, `"role":"assistant"`) {
		t.Errorf("gen_ai.output.messages = %v, want the answer", out)
	}
	noSecrets(t, spans, tg.key, providerKey)
}

// TestTraceOffKeepsCallerTraceID: with tracing off, the caller's
// traceparent still names the trace in the request's log lines; without
// one, no trace id is made up.
func TestTraceOffKeepsCallerTraceID(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	_, _, h1 := post(t, g.base+"/chat/completions", g.key, body, "traceparent", callerParent)
	_, _, h2 := post(t, g.base+"/chat/completions", g.key, body)
	g.close()
	for _, c := range []struct {
		id, want string
	}{{h1.Get("x-request-id"), callerTraceID}, {h2.Get("x-request-id"), ""}} {
		lines := g.logLines(t, c.id)
		if len(lines) == 0 {
			t.Fatalf("no log line of %s", c.id)
		}
		for _, l := range lines {
			got, _ := l["trace_id"].(string)
			if got != c.want {
				t.Errorf("%s: trace_id %q, want %q", l["msg"], got, c.want)
			}
		}
	}
}

// TestTraceKeyNeverOnSpans: a refused key (401) is traced to the auth
// step, and neither the presented key nor a part of it is on a span.
func TestTraceKeyNeverOnSpans(t *testing.T) {
	t.Parallel()
	tg := newTracedGateway(t, gwOptions{}, true)
	bad := keys.CallerPrefix + "0000000000000000000000000000000000"
	st, _, _ := post(t, tg.base+"/chat/completions", bad, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "traceparent", callerParent)
	if st != 401 {
		t.Fatalf("status %d", st)
	}
	spans := tg.finished()
	tr := traceOf(t, spans, mustTraceID(t, callerTraceID))
	auth := tr.one(telemetry.SpanAuth)
	wantAttr(t, auth, "error.type", "invalid_api_key")
	noSecrets(t, spans, bad, bad[3:20], tg.key, providerKey)
}

// TestTraceEveryIngress: each model endpoint gets the same tree (server
// span, admission steps, an attempt with its upstream call) and its GenAI
// operation name.
func TestTraceEveryIngress(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path, body, op string
		hdr            []string
	}{
		{"/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "chat", nil},
		{"/responses", `{"model":"gpt-4o-mini","input":"hi","store":false}`, "chat", nil},
		{"/completions", `{"model":"gpt-4o-mini","prompt":"hi","max_tokens":5}`, "text_completion", nil},
		{"/messages", `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, "chat", []string{"anthropic-version", "2023-06-01"}},
		{"/embeddings", `{"model":"gpt-4o-mini","input":"hi"}`, "embeddings", nil},
	} {
		t.Run(c.path, func(t *testing.T) {
			tg := newTracedGateway(t, gwOptions{}, false)
			st, b, _ := post(t, tg.base+c.path, tg.key, c.body, append([]string{"traceparent", callerParent}, c.hdr...)...)
			if st != 200 {
				t.Fatalf("status %d: %s", st, b)
			}
			tr := traceOf(t, tg.finished(), mustTraceID(t, callerTraceID))
			srv := tr.one("POST /v1" + c.path)
			wantAttr(t, srv, "gen_ai.operation.name", c.op)
			wantAttr(t, srv, "gen_ai.request.model", "gpt-4o-mini")
			att := tr.one(telemetry.SpanAttempt)
			wantAttr(t, att, "gen_ai.operation.name", c.op)
			if ch := tr.children(att); len(ch) != 1 || ch[0] != "POST" {
				t.Errorf("attempt's children %v, want its upstream call", ch)
			}
			for _, step := range []string{telemetry.SpanAuth, telemetry.SpanLimits, telemetry.SpanCreditHold} {
				tr.one(step)
			}
		})
	}
}
