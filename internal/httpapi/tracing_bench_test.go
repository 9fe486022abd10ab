package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// The tracing benchmarks measure what tracing costs a request: the same
// priced chat request (plain and streamed) through the gateway as the
// binary wires it, with tracing off, and on with 100% and 1% of traces
// sampled, exported over OTLP/HTTP (protobuf) to an in-process collector
// that reads and drops each export. cpu-µs/req is the process's CPU time
// (user + system: gateway, mock upstream, collector and the client alike)
// per request; allocs/op counts every goroutine's allocations. Run:
//
//	go test -run '^$' -bench Tracing -benchtime 3000x ./internal/httpapi
func BenchmarkTracingOff(b *testing.B) { benchTracing(b, nil) }
func BenchmarkTracingOn100(b *testing.B) {
	benchTracing(b, &config.Telemetry{Sampler: "traceidratio", SamplerArg: "1"})
}
func BenchmarkTracingOn1(b *testing.B) {
	benchTracing(b, &config.Telemetry{Sampler: "traceidratio", SamplerArg: "0.01"})
}

func benchTracing(b *testing.B, tel *config.Telemetry) {
	for _, c := range []struct {
		name, body string
	}{
		{"chat", `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello!"}]}`},
		{"stream", `{"model":"gpt-4o-mini","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			url, key, exports := benchGateway(b, tel)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			do := func() {
				req, _ := http.NewRequest("POST", url, strings.NewReader(c.body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
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
			_ = exports
		})
	}
}

// benchGateway builds the gateway as the binary does (tel nil: tracing
// off) in front of a mock upstream, with a funded caller key.
func benchGateway(b *testing.B, tel *config.Telemetry) (url, key string, exports *atomic.Int64) {
	b.Helper()
	up := httptest.NewServer(mock.New(mock.Config{APIKey: providerKey}))
	b.Cleanup(up.Close)
	exports = &atomic.Int64{}
	dir := b.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "xroute.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Anomaly.WebhookSecretFile = filepath.Join(dir, "webhook_secret")
	cfg.Providers = []config.Provider{{Name: "primary", Type: "openai", BaseURL: up.URL + "/v1", APIKey: providerKey}}
	cfg.Models = []config.Model{{Name: "gpt-4o-mini", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small", InputPrice: "0.15", OutputPrice: "0.6"}}}}
	if tel != nil {
		col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			exports.Add(1)
			w.Header().Set("Content-Type", "application/x-protobuf")
		}))
		b.Cleanup(col.Close)
		cfg.Telemetry = *tel
		cfg.Telemetry.Endpoint = col.URL
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	a, err := app.Build(context.Background(), cfg, log)
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
	return srv.URL + "/v1/chat/completions", key, exports
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
