package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
)

// The request-path benchmarks (issue 22): one request at a time through the
// whole gateway as the binary wires it (SQLite store in a temporary
// directory, in front of an in-process mock upstream), on each ingress,
// plain and streamed, with money off (a model the operator marks free) and
// on (a priced model, a funded account: hold, usage record, ledger debit).
// allocs/op counts every goroutine's allocations (client, gateway and
// mock alike), so compare it between runs of this benchmark only; it is
// stable on a loaded machine, ns/op and cpu-µs/req are not. Run:
//
//	go test -run '^$' -bench RequestPath -benchtime 2000x ./internal/httpapi
func BenchmarkRequestPath(b *testing.B) {
	for _, in := range []struct{ name, path, plain, stream string }{
		{"chat", "/v1/chat/completions",
			`{"model":"%s","max_tokens":16,"messages":[{"role":"user","content":"Hello!"}]}`,
			`{"model":"%s","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}`},
		{"responses", "/v1/responses",
			`{"model":"%s","max_output_tokens":16,"store":false,"input":"Hello!"}`,
			`{"model":"%s","max_output_tokens":16,"store":false,"stream":true,"input":"Hello!"}`},
		{"messages", "/v1/messages",
			`{"model":"%s","max_tokens":16,"messages":[{"role":"user","content":"Hello!"}]}`,
			`{"model":"%s","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}`},
	} {
		for _, money := range []struct{ name, model string }{{"free", "free-model"}, {"paid", "paid-model"}} {
			for _, kind := range []struct{ name, body string }{{"plain", in.plain}, {"stream", in.stream}} {
				b.Run(in.name+"/"+kind.name+"/"+money.name, func(b *testing.B) {
					base, key := pathBenchGateway(b, nil)
					body := strings.Replace(kind.body, "%s", money.model, 1)
					benchRequests(b, base+in.path, key, body)
				})
			}
		}
	}
}

func benchRequests(b *testing.B, url, key, body string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	do := func() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d: %s", resp.StatusCode, out)
		}
	}
	for range 50 { // warm the connections, caches and pools
		do()
	}
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
}

// pathBenchGateway is the gateway as the binary builds it in front of a
// mock upstream, with a free and a priced model on it and a funded key.
func pathBenchGateway(b *testing.B, more func(*config.Config)) (base, key string) {
	b.Helper()
	up := httptest.NewServer(mock.New(mock.Config{APIKey: providerKey}))
	b.Cleanup(up.Close)
	dir := b.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "xroute.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Anomaly.WebhookSecretFile = filepath.Join(dir, "webhook_secret")
	cfg.Providers = []config.Provider{{Name: "primary", Type: "openai", BaseURL: up.URL + "/v1", APIKey: providerKey}}
	cfg.Models = []config.Model{
		{Name: "free-model", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small", Free: true}}},
		{Name: "paid-model", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small", InputPrice: "0.15", OutputPrice: "0.6"}}},
	}
	if more != nil {
		more(&cfg)
	}
	a, err := app.Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	b.Cleanup(func() { srv.Close(); a.Close() })
	key, _, err = a.Keys.Create(context.Background(), keys.CreateParams{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := a.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 1_000_000_000_000_000, "t", "bench"); err != nil {
		b.Fatal(err)
	}
	return srv.URL, key
}

// BenchmarkAgentRequest is one turn of a coding agent's session through the
// gateway with money on: a 330 KB Messages request
// (loadtest.AgentMessagesBody), streamed, to an
// Anthropic deployment (relayed natively) and to an OpenAI one
// (translated); and the same session as a Responses request
// (loadtest.AgentResponsesBody) to the OpenAI one. The per-request cost that grows with the conversation
// shows here, not in BenchmarkRequestPath's one-line prompts.
//
//	go test -run '^$' -bench AgentRequest -benchtime 200x ./internal/httpapi
func BenchmarkAgentRequest(b *testing.B) {
	am := httptest.NewServer(anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: "sk-ant-test-key-0001"}}))
	b.Cleanup(am.Close)
	base, key := pathBenchGateway(b, func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "claude", Type: "anthropic", BaseURL: am.URL, APIKey: "sk-ant-test-key-0001"})
		c.Models = append(c.Models,
			config.Model{Name: "agent-native", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5", InputPrice: "3", OutputPrice: "15"}}},
			config.Model{Name: "agent-translated", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small", InputPrice: "3", OutputPrice: "15"}}})
	})
	for _, model := range []string{"agent-native", "agent-translated"} {
		b.Run(model, func(b *testing.B) {
			benchRequests(b, base+"/v1/messages", key, string(loadtest.AgentMessagesBody(model, 121)))
		})
	}
	// The same session as Codex sends it, to the OpenAI mock's Responses
	// API (native).
	b.Run("responses", func(b *testing.B) {
		benchRequests(b, base+"/v1/responses", key, string(loadtest.AgentResponsesBody("agent-translated", 121)))
	})
}
