package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// scrape is one parsed GET /metrics.
type scrape struct {
	t    *testing.T
	raw  string
	fams map[string]*dto.MetricFamily
}

func (g *gateway) scrape() scrape {
	g.t.Helper()
	resp, err := http.Get(g.srv.URL + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("GET /metrics: %d %s", resp.StatusCode, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		g.t.Fatalf("parse /metrics: %v", err)
	}
	return scrape{t: g.t, raw: string(raw), fams: fams}
}

// value is the value of the series of name with exactly these labels
// (name, value pairs; a label left out must be empty): a counter's or a
// gauge's value, a histogram's sample count.
func (s scrape) value(name string, labels ...string) float64 {
	s.t.Helper()
	f, ok := s.fams[name]
	if !ok {
		s.t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		if !sameLabels(m.Label, labels) {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	s.t.Fatalf("no series %s%v", name, labels)
	return 0
}

func sameLabels(have []*dto.LabelPair, want []string) bool {
	got := map[string]string{}
	for _, l := range have {
		if l.GetValue() != "" {
			got[l.GetName()] = l.GetValue()
		}
	}
	n := 0
	for i := 0; i+1 < len(want); i += 2 {
		if want[i+1] == "" {
			continue
		}
		n++
		if got[want[i]] != want[i+1] {
			return false
		}
	}
	return n == len(got)
}

// sum adds up a counter over its series, skipping those with label=skip.
func (s scrape) sum(name, label, skip string) float64 {
	total := 0.0
	for _, m := range s.fams[name].GetMetric() {
		drop := false
		for _, l := range m.Label {
			drop = drop || (l.GetName() == label && l.GetValue() == skip)
		}
		if !drop {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// eventually scrapes until ok holds: a request is counted after its answer
// is written, so a client can see the answer first.
func (g *gateway) eventually(what string, ok func(scrape) bool) scrape {
	g.t.Helper()
	var s scrape
	if !testutil.Wait(testutil.Timeout, func() bool { s = g.scrape(); return ok(s) }) {
		g.t.Fatalf("metrics never showed %s:\n%s", what, s.raw)
	}
	return s
}

// TestMetricsAfterTraffic sends successes, a stream, refusals of every
// kind and auth failures through the real wiring, then checks the series
// of /metrics and that no label holds a key, a key or account id, or a
// model name a caller made up.
func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		priced(c)
		c.Providers[0].Free = true // caller-chosen provider/model names are free
	}, mock: mock.Config{TokensPerSec: 20}})
	ctx := context.Background()
	newKey := func(p keys.CreateParams) (string, keys.Key) {
		t.Helper()
		secret, k, err := g.app.Keys.Create(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return secret, k
	}
	rpmKey, rpm := newKey(keys.CreateParams{Name: "rpm", RPM: 1})
	tpmKey, tpm := newKey(keys.CreateParams{Name: "tpm", TPM: 100})
	concKey, conc := newKey(keys.CreateParams{Name: "conc", MaxConcurrent: 1})
	budgetKey, budget := newKey(keys.CreateParams{Name: "budget"})
	mainKey, err := g.app.Keys.Verify(ctx, g.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.app.Budgets.Set(ctx, billing.Budget{Scope: billing.ScopeKey, ScopeID: budget.ID, Period: billing.Daily, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	const unknownModel, dynamicModel = "no-such-model-Zq7", "primary/caller-chosen-Zq8"
	chat := g.base + "/chat/completions"
	expect := func(key, body string, status int, code string) {
		t.Helper()
		st, b, _ := call(t, "POST", chat, key, body)
		if st != status || errCode(b) != code {
			t.Fatalf("%s: %d %v, want %d %q", body, st, b, status, code)
		}
	}

	expect(g.key, chatBody, 429, "insufficient_quota") // no credits yet
	if _, _, err := g.app.Ledger.TopUp(ctx, keys.DefaultAccountID, 100*billing.NanoPerUSD, "t1", "test"); err != nil {
		t.Fatal(err)
	}
	expect(g.key, chatBody, 200, "")
	expect(g.key, chatBody, 200, "")
	expect(g.key, `{"model":"`+unknownModel+`","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found")
	expect(g.key, `{"model":"`+dynamicModel+`","messages":[{"role":"user","content":"hi"}]}`, 200, "")
	expect("xr-not-a-real-key-0000000000000000000000000000", chatBody, 401, "invalid_api_key")
	expect("", chatBody, 401, "missing_api_key")
	if st, b, _ := call(t, "GET", g.srv.URL+"/admin/v1/keys", g.key, ""); st != 403 || errCode(b) != "admin_key_required" {
		t.Fatalf("caller key on the admin API: %d %v", st, b)
	}
	expect(rpmKey, chatBody, 200, "")
	expect(rpmKey, chatBody, 429, "rate_limit_exceeded")
	expect(tpmKey, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5000}`, 429, "tokens_exceed_limit")
	expect(budgetKey, chatBody, 429, "budget_exceeded")

	// A stream: in flight while its answer is read, and it holds the
	// concurrency slot of its key.
	req, _ := http.NewRequest("POST", chat, strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+concKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	if v := g.scrape().value("xroute_streams_in_flight"); v != 1 {
		t.Errorf("streams in flight during a stream: %v", v)
	}
	expect(concKey, chatBody, 429, "concurrency_limit_exceeded")
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
	}
	resp.Body.Close()
	const requests = 14 // sent above, /metrics scrapes aside

	s := g.eventually("every request and no stream in flight", func(s scrape) bool {
		return s.sum("xroute_requests_total", "endpoint", "/metrics") == requests && s.value("xroute_streams_in_flight") == 0
	})
	const chatRoute = "/v1/chat/completions"
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"endpoint", chatRoute, "model", "gpt-4o-mini", "provider", "primary", "status", "200"}, 4},
		{[]string{"endpoint", chatRoute, "model", "gpt-4o-mini", "status", "429"}, 5},
		{[]string{"endpoint", chatRoute, "model", "other", "status", "404"}, 1},
		{[]string{"endpoint", chatRoute, "model", "other", "provider", "primary", "status", "200"}, 1},
		{[]string{"endpoint", chatRoute, "status", "401"}, 2},
		{[]string{"endpoint", "/admin/v1/keys", "status", "403"}, 1},
	} {
		if v := s.value("xroute_requests_total", c.labels...); v != c.want {
			t.Errorf("requests %v = %v, want %v", c.labels, v, c.want)
		}
	}
	for kind, want := range map[string]float64{"requests": 1, "tokens": 1, "concurrency": 1, "insufficient_quota": 1, "budget": 1} {
		if v := s.value("xroute_rate_limit_rejections_total", "kind", kind); v != want {
			t.Errorf("rejections %s = %v, want %v", kind, v, want)
		}
	}
	for code, want := range map[string]float64{"invalid_api_key": 1, "missing_api_key": 1, "admin_key_required": 1, "api_key_revoked": 0} {
		if v := s.value("xroute_auth_failures_total", "code", code); v != want {
			t.Errorf("auth failures %s = %v, want %v", code, v, want)
		}
	}
	mini := []string{"model", "gpt-4o-mini", "provider", "primary"}
	if v := s.value("xroute_request_duration_seconds", mini...); v != 4 {
		t.Errorf("latency samples = %v, want 4", v)
	}
	if v := s.value("xroute_request_duration_seconds", "model", "other", "provider", "primary"); v != 1 {
		t.Errorf("latency samples of other = %v, want 1", v)
	}
	if v := s.value("xroute_time_to_first_token_seconds", mini...); v != 1 {
		t.Errorf("TTFT samples = %v, want 1", v)
	}
	// A configured model's series exist before its first request.
	if v := s.value("xroute_request_duration_seconds", "model", "gpt-4o", "provider", "primary"); v != 0 {
		t.Errorf("gpt-4o latency samples = %v, want 0", v)
	}
	var prompt, completion, cost float64
	for _, r := range g.usage() {
		if r.Model == "gpt-4o-mini" && r.Provider == "primary" {
			prompt, completion, cost = prompt+float64(r.PromptTokens), completion+float64(r.CompletionTokens), cost+float64(r.CostNano)
		}
	}
	if prompt == 0 || cost == 0 {
		t.Fatalf("no usage recorded: prompt %v, cost %v", prompt, cost)
	}
	if v := s.value("xroute_tokens_total", append(mini, "type", "prompt")...); v != prompt {
		t.Errorf("prompt tokens = %v, want %v", v, prompt)
	}
	if v := s.value("xroute_tokens_total", append(mini, "type", "completion")...); v != completion {
		t.Errorf("completion tokens = %v, want %v", v, completion)
	}
	if v := s.value("xroute_cost_nano_usd_total", mini...); v != cost {
		t.Errorf("cost = %v nano-USD, want %v", v, cost)
	}
	for _, d := range []string{"primary/mock-small", "primary/mock-large"} {
		if v := s.value("xroute_deployment_breaker_state", "deployment", d, "provider", "primary", "state", "closed"); v != 1 {
			t.Errorf("breaker of %s closed = %v", d, v)
		}
		if v := s.value("xroute_deployment_breaker_state", "deployment", d, "provider", "primary", "state", "open"); v != 0 {
			t.Errorf("breaker of %s open = %v", d, v)
		}
	}
	if v := s.value("xroute_usage_queue_depth"); v < 0 {
		t.Errorf("usage queue depth %v", v)
	}
	if _, ok := s.fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// Nothing a caller holds or chose is a label, nor anywhere in the page.
	secrets := []string{g.key, rpmKey, tpmKey, concKey, budgetKey,
		mainKey.ID, rpm.ID, tpm.ID, conc.ID, budget.ID, mainKey.AccountID, keys.DefaultAccountID,
		"caller-chosen", "Zq7", "Zq8", providerKey}
	for name, f := range s.fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				for _, secret := range secrets {
					if l.GetValue() == secret || strings.Contains(l.GetValue(), secret) {
						t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
	for _, secret := range secrets {
		if strings.Contains(s.raw, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
}

// TestMetricsOffWithoutRegistry: with no registry there is no /metrics.
func TestMetricsOffWithoutRegistry(t *testing.T) {
	t.Parallel()
	s, err := httpapi.New(httpapi.Config{Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("GET /metrics without a registry: %d", w.Code)
	}
}
