package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// Issue 17, money: no answer leaves xroute without a price, and no request
// starts without a hold that covers its worst case.

// listPriced prices the harness's models at OpenAI's list prices (as the
// demo does): gpt-4o-mini 0.15/0.60, gpt-4o 2.50/10.00 USD per million.
func listPriced(c *config.Config) {
	for i := range c.Models {
		in, out := "0.15", "0.60"
		if c.Models[i].Name == "gpt-4o" {
			in, out = "2.50", "10.00"
		}
		for j := range c.Models[i].Deployments {
			d := &c.Models[i].Deployments[j]
			d.InputPrice, d.OutputPrice = in, out
		}
	}
}

// moneyPost posts body to path (under the server root) with the
// gateway's key, as the path's own clients do.
func moneyPost(t *testing.T, g *gateway, key, path, body string) rawResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/v1/messages") {
		req.Header.Set("anthropic-version", "2023-06-01")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp, string(b)}
}

// balance is the default account's balance and what is still held.
func balance(t *testing.T, g *gateway) (bal, reserved billing.Nano) {
	t.Helper()
	bal, reserved, _, err := g.app.Ledger.Balance(context.Background(), keys.DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	return bal, reserved
}

// TestHoleUnpricedModelRefused: a deployment without a price (a
// provider/model address the catalog does not know, a configured model
// given no price, a fallback model) used to be served for nothing: no
// hold, no debit. It is a 400 model_not_priced naming the model, in the
// caller's API shape, on every endpoint, before any upstream call.
func TestHoleUnpricedModelRefused(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{strictPrices: true, mutate: func(c *config.Config) {
		listPriced(c)
		c.Models = append(c.Models, config.Model{Name: "bare", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-bare"}}})
	}})
	reviewTopUp(t, g, 10*billing.NanoPerUSD)
	for _, c := range []struct {
		name, path, body, model string
	}{
		{"chat, provider/model", "/v1/chat/completions", `{"model":"primary/mock-anything","messages":[{"role":"user","content":"hi"}]}`, "primary/mock-anything"},
		{"chat stream, configured model without a price", "/v1/chat/completions", `{"model":"bare","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "bare"},
		{"chat, unpriced fallback", "/v1/chat/completions", `{"model":"gpt-4o-mini","models":["primary/mock-anything"],"messages":[{"role":"user","content":"hi"}]}`, "primary/mock-anything"},
		{"embeddings", "/v1/embeddings", `{"model":"primary/text-embedding-3-small","input":"hi"}`, "primary/text-embedding-3-small"},
		{"completions", "/v1/completions", `{"model":"primary/mock-anything","prompt":"hi"}`, "primary/mock-anything"},
		{"responses", "/v1/responses", `{"model":"primary/mock-anything","input":"hi","store":false}`, "primary/mock-anything"},
		{"messages", "/v1/messages", `{"model":"primary/mock-anything","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, "primary/mock-anything"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := g.primary.Stats().Requests
			r := moneyPost(t, g, g.key, c.path, c.body)
			code := gjson.Get(r.body, "error.code").Str
			if c.path == "/v1/messages" {
				// Anthropic's shape: {"type":"error","error":{"type","message"}}.
				code = gjson.Get(r.body, "error.type").Str
				if gjson.Get(r.body, "type").Str != "error" || code != "invalid_request_error" {
					t.Fatalf("not Anthropic's error shape: %d %s", r.StatusCode, r.body)
				}
				code = "model_not_priced"
			}
			if r.StatusCode != http.StatusBadRequest || code != "model_not_priced" || !strings.Contains(gjson.Get(r.body, "error.message").Str, c.model) {
				t.Fatalf("%d %s; want 400 model_not_priced naming %s", r.StatusCode, r.body, c.model)
			}
			if n := g.primary.Stats().Requests - before; n != 0 {
				t.Fatalf("the upstream was called %d times for an unpriced model", n)
			}
		})
	}
	if bal, reserved := balance(t, g); bal != 10*billing.NanoPerUSD || reserved != 0 {
		t.Fatalf("balance %s, reserved %s after refusals", bal, reserved)
	}
	// The operator hears of it at start, and at each refusal.
	if logs := g.logs.String(); !strings.Contains(logs, "deployment has no price") || !strings.Contains(logs, "primary/mock-bare") || !strings.Contains(logs, "request refused: model has no price") {
		t.Fatal("unpriced deployments were not logged")
	}
}

// TestHoleChoicesCountedInHoldAndTPM: n (and best_of, and fallback
// models) multiply a request's worst case. n=100 × max_tokens=1000 used to
// be served to a $0.01 account; a key with TPM 2,000 reserved one answer's
// worth of tokens for a request without max_tokens that asked for 100; a
// fallback model ten times the price was served on the hold of the
// cheaper one; max_completion_tokens=1 beside max_tokens=100000 held for
// one token, while an upstream may read the other.
func TestHoleChoicesCountedInHoldAndTPM(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		listPriced(c)
		c.Providers[0].NativeFormats = []string{"completions"} // best_of is native-only
	}})
	reviewTopUp(t, g, billing.NanoPerUSD/100) // $0.01
	tpm, _, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "tpm2000", TPM: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, key, path, body, code string
	}{
		{"n=100 max_tokens=1000 on $0.01", g.key, "/v1/chat/completions", `{"model":"gpt-4o-mini","n":100,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, "insufficient_quota"},
		{"best_of=20 max_tokens=1000 on $0.01", g.key, "/v1/completions", `{"model":"gpt-4o-mini","best_of":20,"max_tokens":1000,"prompt":"hi"}`, "insufficient_quota"},
		{"max_completion_tokens=1 beside max_tokens=100000", g.key, "/v1/chat/completions", `{"model":"gpt-4o-mini","max_completion_tokens":1,"max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`, "insufficient_quota"},
		{"fallback ten times the price", g.key, "/v1/chat/completions", `{"model":"gpt-4o-mini","models":["gpt-4o"],"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, "insufficient_quota"},
		{"TPM 2000, n=100 max_tokens=1000", tpm, "/v1/chat/completions", `{"model":"gpt-4o-mini","n":100,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, "tokens_exceed_limit"},
		{"TPM 2000, n=100 without max_tokens", tpm, "/v1/chat/completions", `{"model":"gpt-4o-mini","n":100,"messages":[{"role":"user","content":"hi"}]}`, "tokens_exceed_limit"},
		{"TPM 2000, best_of=20 max_tokens=200 completions", tpm, "/v1/completions", `{"model":"gpt-4o-mini","best_of":20,"max_tokens":200,"prompt":"hi"}`, "tokens_exceed_limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := g.primary.Stats().Requests
			r := moneyPost(t, g, c.key, c.path, c.body)
			if r.StatusCode != http.StatusTooManyRequests || gjson.Get(r.body, "error.code").Str != c.code {
				t.Fatalf("%d %s; want 429 %s", r.StatusCode, r.body, c.code)
			}
			if n := g.primary.Stats().Requests - before; n != 0 {
				t.Fatalf("the upstream was called %d times", n)
			}
		})
	}
	if bal, reserved := balance(t, g); bal != billing.NanoPerUSD/100 || reserved != 0 {
		t.Fatalf("balance %s, reserved %s after refusals", bal, reserved)
	}
}

// TestAbandonedStreamIsBilledAndReleased (kept): a priced stream the caller
// leaves is billed for what it delivered, its hold is released, and the
// upstream call is cancelled.
func TestAbandonedStreamIsBilledAndReleased(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{TokensPerSec: 20, CompletionTokens: 400}, mutate: listPriced})
	reviewTopUp(t, g, 10*billing.NanoPerUSD)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("x-request-id")
	rd := bufio.NewReader(resp.Body)
	for seen := 0; seen < 3; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"content":"`) && !strings.Contains(line, `"content":""`) {
			seen++
		}
	}
	cancel()
	resp.Body.Close()
	testutil.Eventually(t, "the upstream request to be cancelled", func() bool { return g.primary.Stats().Canceled != 0 })
	rec := g.usageFor(id)
	if rec.Status != 499 || rec.CostNano <= 0 || rec.CompletionTokens <= 0 || rec.CompletionTokens > 100 {
		t.Fatalf("record %+v; want the delivered part billed", rec)
	}
	testutil.Eventually(t, "the abandoned stream's hold to be released", func() bool {
		_, reserved := balance(t, g)
		return reserved == 0
	})
	if bal, _ := balance(t, g); bal != 10*billing.NanoPerUSD-billing.Nano(rec.CostNano) {
		t.Fatalf("balance %s, want %s", bal, 10*billing.NanoPerUSD-billing.Nano(rec.CostNano))
	}
}

// TestFreeOnlyWhenTheOperatorSaysSo: what is free is explicit: a
// deployment marked free, or any model of a provider marked free (a
// self-hosted server) is served to an account without credits and costs
// nothing; a provider/model address the catalog prices (the provider
// named after its preset) is held and billed at the catalog's price.
func TestFreeOnlyWhenTheOperatorSaysSo(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{strictPrices: true, mutate: func(c *config.Config) {
		listPriced(c)
		base := c.Providers[0].BaseURL
		c.Providers = append(c.Providers,
			config.Provider{Name: "selfhosted", Type: "openai", BaseURL: base, APIKey: providerKey, Free: true},
			config.Provider{Name: "openai", Type: "openai", BaseURL: base, APIKey: providerKey, NativeFormats: []string{"none"}})
		c.Models = append(c.Models, config.Model{Name: "local", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-local", Free: true}}})
	}})
	chat := func(model string) rawResponse {
		return moneyPost(t, g, g.key, "/v1/chat/completions", `{"model":"`+model+`","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
	}
	for _, model := range []string{"local", "selfhosted/any-model-at-all"} {
		r := chat(model)
		if r.StatusCode != 200 {
			t.Fatalf("%s on an account without credits: %d %s", model, r.StatusCode, r.body)
		}
		if rec := g.usageFor(r.Header.Get("x-request-id")); rec.CostNano != 0 || rec.CompletionTokens == 0 {
			t.Fatalf("%s: record %+v", model, rec)
		}
	}
	if r := chat("openai/gpt-4o-mini"); r.StatusCode != 429 || gjson.Get(r.body, "error.code").Str != "insufficient_quota" {
		t.Fatalf("a catalog-priced provider/model on an account without credits: %d %s", r.StatusCode, r.body)
	}
	reviewTopUp(t, g, billing.NanoPerUSD)
	r := chat("openai/gpt-4o-mini")
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	if rec := g.usageFor(r.Header.Get("x-request-id")); rec.CostNano <= 0 || rec.Estimated {
		t.Fatalf("catalog-priced answer: record %+v", rec)
	}
}
