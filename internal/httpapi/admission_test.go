package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// modelIngresses are the model endpoints, each with a small request body
// for a model.
var modelIngresses = []struct {
	endpoint, path string
	body           func(model string) string
}{
	{"chat", "/v1/chat/completions", func(m string) string {
		return `{"model":"` + m + `","max_tokens":8,"messages":[{"role":"user","content":"Say hello"}]}`
	}},
	{"completions", "/v1/completions", func(m string) string {
		return `{"model":"` + m + `","max_tokens":8,"prompt":"Say hello"}`
	}},
	{"embeddings", "/v1/embeddings", func(m string) string { return `{"model":"` + m + `","input":"Say hello"}` }},
	{"responses", "/v1/responses", func(m string) string {
		return `{"model":"` + m + `","store":false,"max_output_tokens":16,"input":"Say hello"}`
	}},
	{"messages", "/v1/messages", func(m string) string {
		return `{"model":"` + m + `","max_tokens":8,"messages":[{"role":"user","content":"Say hello"}]}`
	}},
}

func postKey(t *testing.T, g *gateway, key, path, body string) rawResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return rawResponse{resp, sb.String()}
}

// TestEveryIngressGetsTheSameAdmission: one admission pipeline, so every
// model endpoint has the same effects: the key's routing_strategy picks
// the deployment (embeddings included), its model scope refuses, an
// unknown model is a 404, its RPM limits, and every request served or
// refused leaves a usage record under its endpoint.
func TestEveryIngressGetsTheSameAdmission(t *testing.T) {
	g := newGateway(t, gwOptions{backup: &mock.Config{}, mutate: func(c *config.Config) {
		// The first deployment costs more: "priority" (the default) picks
		// it, "cost" the backup.
		for i := range c.Models {
			for j := range c.Models[i].Deployments {
				d := &c.Models[i].Deployments[j]
				d.InputPrice, d.OutputPrice = "0.5", "0.5"
				if d.Provider == "primary" {
					d.InputPrice, d.OutputPrice = "5", "5"
				}
			}
		}
	}})
	ctx := context.Background()
	if _, _, err := g.app.Ledger.TopUp(ctx, keys.DefaultAccountID, 1000*billing.NanoPerUSD, "t", "test"); err != nil {
		t.Fatal(err)
	}
	newKey := func(p keys.CreateParams) string {
		p.Name = "k"
		k, _, err := g.app.Keys.Create(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	byCost := newKey(keys.CreateParams{Metadata: map[string]string{"routing_strategy": "cost"}})
	scoped := newKey(keys.CreateParams{AllowedModels: []string{"gpt-4o"}})
	for _, in := range modelIngresses {
		t.Run(in.endpoint, func(t *testing.T) {
			r := postKey(t, g, g.key, in.path, in.body("gpt-4o-mini"))
			if r.StatusCode != 200 || r.Header.Get("x-xroute-provider") != "primary" {
				t.Fatalf("default strategy: status %d provider %q: %s", r.StatusCode, r.Header.Get("x-xroute-provider"), r.body)
			}
			r = postKey(t, g, byCost, in.path, in.body("gpt-4o-mini"))
			if r.StatusCode != 200 || r.Header.Get("x-xroute-provider") != "backup" {
				t.Fatalf("the key's routing_strategy cost was ignored: status %d provider %q: %s", r.StatusCode, r.Header.Get("x-xroute-provider"), r.body)
			}
			rec := g.usageFor(r.Header.Get("x-request-id"))
			if rec.Endpoint != in.endpoint || rec.Model != "gpt-4o-mini" || rec.Provider != "backup" || rec.CostNano <= 0 {
				t.Fatalf("usage record %+v", rec)
			}
			r = postKey(t, g, scoped, in.path, in.body("gpt-4o-mini"))
			if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "gpt-4o-mini") {
				t.Fatalf("out of the key's scope: status %d: %s", r.StatusCode, r.body)
			}
			if rec := g.usageFor(r.Header.Get("x-request-id")); rec.Endpoint != in.endpoint || rec.Status != http.StatusForbidden || rec.CostNano != 0 {
				t.Fatalf("refusal's usage record %+v", rec)
			}
			r = postKey(t, g, g.key, in.path, in.body("no-such-model"))
			if r.StatusCode != http.StatusNotFound || gjson.Get(r.body, "error.message").Str == "" {
				t.Fatalf("unknown model: status %d: %s", r.StatusCode, r.body)
			}
			// One request a minute: the second is refused before routing.
			limited := newKey(keys.CreateParams{RPM: 1})
			if r := postKey(t, g, limited, in.path, in.body("gpt-4o-mini")); r.StatusCode != 200 {
				t.Fatalf("first request under RPM 1: %d: %s", r.StatusCode, r.body)
			}
			r = postKey(t, g, limited, in.path, in.body("gpt-4o-mini"))
			if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("x-xroute-provider") != "" {
				t.Fatalf("second request under RPM 1: %d: %s", r.StatusCode, r.body)
			}
		})
	}
}
