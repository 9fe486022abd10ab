package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// The response cache benchmarks (issue 20): one priced chat request,
// plain and streamed, sent one at a time
//
//   - bare: straight to the mock upstream (no gateway);
//   - off: through the gateway, cache off for the model;
//   - miss: cache on, Cache-Control: no-cache (every request goes
//     upstream and its answer is stored: the cost of a miss);
//   - hit: cache on, the same request answered from memory.
//
// p50-µs and p99-µs are the request latencies as the client sees them;
// cpu-µs/req is the process's CPU time (client, gateway and mock alike)
// per request. Run:
//
//	go test -run '^$' -bench Cache -benchtime 3000x ./internal/httpapi
func BenchmarkCache(b *testing.B) {
	for _, kind := range []struct{ name, body string }{
		{"chat", `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello!"}]}`},
		{"stream", `{"model":"gpt-4o-mini","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}`},
	} {
		for _, mode := range []string{"bare", "off", "miss", "hit"} {
			b.Run(kind.name+"/"+mode, func(b *testing.B) {
				url, key := cacheBenchGateway(b, mode)
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
				do := func(check bool) {
					req, _ := http.NewRequest("POST", url, strings.NewReader(kind.body))
					req.Header.Set("Authorization", "Bearer "+key)
					req.Header.Set("Content-Type", "application/json")
					if mode == "miss" {
						req.Header.Set("Cache-Control", "no-cache")
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
					if want := map[string]string{"miss": "miss", "hit": "hit"}[mode]; check && resp.Header.Get("x-xroute-cache") != want {
						b.Fatalf("x-xroute-cache %q, want %q", resp.Header.Get("x-xroute-cache"), want)
					}
				}
				for range 50 { // warm the connections and pools (and store the hit's entry)
					do(false)
				}
				lat := make([]time.Duration, 0, b.N)
				cpu0 := cpuTime()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					t0 := time.Now()
					do(true)
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}

// cacheBenchGateway is the gateway as the binary builds it in front of a
// mock upstream, with the cache on for gpt-4o-mini unless mode is off;
// for bare it is the mock's own address.
func cacheBenchGateway(b *testing.B, mode string) (url, key string) {
	b.Helper()
	up := httptest.NewServer(mock.New(mock.Config{APIKey: providerKey}))
	b.Cleanup(up.Close)
	if mode == "bare" {
		return up.URL + "/v1/chat/completions", providerKey
	}
	dir := b.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "xroute.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Anomaly.WebhookSecretFile = filepath.Join(dir, "webhook_secret")
	cfg.Providers = []config.Provider{{Name: "primary", Type: "openai", BaseURL: up.URL + "/v1", APIKey: providerKey}}
	cfg.Models = []config.Model{{Name: "gpt-4o-mini", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small", InputPrice: "0.15", OutputPrice: "0.6"}}}}
	if mode != "off" {
		cfg.Models[0].Cache = &config.ModelCache{Enabled: true}
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
	return srv.URL + "/v1/chat/completions", key
}
