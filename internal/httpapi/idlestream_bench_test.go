package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest"
	"github.com/xroute/xroute/loadtest/mock"
)

// BenchmarkIdleStreams measures what an open stream that waits for its
// next token holds (issue 22's memory at scale): b.N priced chat streams
// are opened at once against a mock that sends a token every 4 s, each read
// up to its first event; then the live heap and the goroutines are
// counted, per stream, against the same count before. "bare" opens them
// straight on the mock, "proxy" through the bare httputil.ReverseProxy of
// the loadtest, "xroute" through the gateway: the process holds client,
// gateway and mock alike, so a gateway's own cost per idle stream is its
// difference from bare. Run:
//
//	go test -run '^$' -bench IdleStreams -benchtime 500x ./internal/httpapi
//
// With -idleheap FILE, the heap of the xroute run is written to FILE while
// its streams are open (go tool pprof -sample_index=inuse_space).
func BenchmarkIdleStreams(b *testing.B) {
	for _, target := range []string{"bare", "proxy", "xroute"} {
		b.Run(target, func(b *testing.B) {
			up := httptest.NewServer(mock.New(mock.Config{APIKey: providerKey, TokensPerSec: 0.25, ChunkTokens: 1, CompletionTokens: 100}))
			b.Cleanup(up.Close)
			url, key := up.URL+"/v1/chat/completions", providerKey
			model := "mock-small"
			switch target {
			case "proxy":
				u, _ := neturl.Parse(up.URL)
				px := httptest.NewServer(loadtest.NewReverseProxy(u, nil))
				b.Cleanup(px.Close)
				url = px.URL + "/v1/chat/completions"
			case "xroute":
				url, key = idleStreamGateway(b, up.URL)
				model = "gpt-4o-mini"
			}
			body := `{"model":"` + model + `","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}`
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.N + 1}}
			b.Cleanup(client.CloseIdleConnections)
			// One request first: what loads once (the tokenizer, on the
			// first priced request) is not an idle stream's.
			warm, _ := http.NewRequest("POST", url, strings.NewReader(strings.Replace(body, `"stream":true`, `"stream":false`, 1)))
			warm.Header.Set("Authorization", "Bearer "+key)
			warm.Header.Set("Content-Type", "application/json")
			if resp, err := client.Do(warm); err != nil {
				b.Fatal(err)
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			heap0, stack0, g0 := liveHeap()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			bodies := make([]*http.Response, b.N)
			b.Cleanup(func() { // before the servers close: they wait for these
				for _, r := range bodies {
					if r != nil {
						r.Body.Close()
					}
				}
			})
			errs := make(chan error, b.N)
			for i := range b.N {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest("POST", url, strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+key)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					bodies[i] = resp
					br := bufio.NewReaderSize(resp.Body, 64<<10)
					for { // up to the first event: the stream relays, then idles
						line, err := br.ReadSlice('\n')
						if err != nil {
							errs <- err
							return
						}
						if bytes.HasPrefix(line, []byte("data: {")) {
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			heap1, stack1, g1 := liveHeap()
			if *idleHeap != "" && target == "xroute" {
				if f, err := os.Create(*idleHeap); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
			b.ReportMetric(float64(heap1-heap0)/float64(b.N), "heap-B/stream")
			b.ReportMetric(float64(stack1-stack0)/float64(b.N), "stack-B/stream")
			b.ReportMetric(float64(g1-g0)/float64(b.N), "goroutines/stream")
		})
	}
}

var idleHeap = flag.String("idleheap", "", "BenchmarkIdleStreams: write the heap profile with the streams open to this file")

// liveHeap is the heap in use after a collection, the goroutines' stacks
// and the goroutines.
func liveHeap() (heap, stacks int64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse), runtime.NumGoroutine()
}

// idleStreamGateway is the gateway as the binary builds it in front of
// the mock at upstream, one priced model, a funded key.
func idleStreamGateway(b *testing.B, upstream string) (url, key string) {
	b.Helper()
	dir := b.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "xroute.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Anomaly.WebhookSecretFile = filepath.Join(dir, "webhook_secret")
	cfg.Providers = []config.Provider{{Name: "primary", Type: "openai", BaseURL: upstream + "/v1", APIKey: providerKey}}
	cfg.Models = []config.Model{{Name: "gpt-4o-mini", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small", InputPrice: "0.15", OutputPrice: "0.6"}}}}
	a, err := app.Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	b.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); a.Close() })
	key, _, err = a.Keys.Create(context.Background(), keys.CreateParams{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := a.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 1_000_000_000_000_000, "t", "bench"); err != nil {
		b.Fatal(err)
	}
	return srv.URL + "/v1/chat/completions", key
}
