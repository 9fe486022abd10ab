package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// TestCachePurgeReachesEveryReplica: two replicas share a database and
// Redis (so do a model's runtime policy, at the end); an answer stored through A is a hit on B, from B's own memory
// too. A purge through A's admin API then makes B's next request a miss
// at once (the purge is announced), not when B's copy reaches its TTL.
func TestCachePurgeReachesEveryReplica(t *testing.T) {
	url := os.Getenv("XROUTE_TEST_REDIS_URL")
	if url == "" {
		t.Skip("integration test: set XROUTE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run it; .ci/run does")
	}
	up := httptest.NewServer(mock.New(mock.Config{}))
	defer up.Close()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Redis.URL = url
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: up.URL + "/v1"}}
	cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "up", Model: "m", Free: true}},
		Cache: &config.ModelCache{Enabled: true, TTL: time.Hour}}}
	var srvs []*httptest.Server
	var first *App
	for range 2 {
		cfg := cfg
		cfg.Usage.SpoolDir = t.TempDir()
		a, err := Build(context.Background(), cfg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(func() { srv.Close(); a.Close() })
		srvs = append(srvs, srv)
		if first == nil {
			first = a
		}
	}
	ctx := context.Background()
	caller, _, err := first.Keys.Create(ctx, keys.CreateParams{Name: "caller"})
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := first.Keys.Create(ctx, keys.CreateParams{Name: "ops", Kind: keys.KindAdmin})
	if err != nil {
		t.Fatal(err)
	}
	post := func(srv *httptest.Server, path, key, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return resp
	}
	// A prompt no earlier run left in the shared Redis.
	body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"purge %d"}]}`, time.Now().UnixNano())
	chat := func(srv *httptest.Server) string {
		return post(srv, "/v1/chat/completions", caller, body).Header.Get("x-xroute-cache")
	}
	if got := chat(srvs[0]); got != "miss" {
		t.Fatalf("A first: %q", got)
	}
	if got := chat(srvs[1]); got != "hit" {
		t.Fatalf("B after A: %q", got)
	}
	// B now holds the answer in its memory as well as Redis.
	post(srvs[0], "/admin/v1/cache/purge", admin, `{"model":"m"}`)
	purged := time.Now()
	testutil.Eventually(t, "replica B to miss a model purged on replica A", func() bool { return chat(srvs[1]) == "miss" })
	if took := time.Since(purged); took > 5*time.Second {
		t.Fatalf("replica B answered from its memory a model purged on replica A for %v", took)
	}
	t.Logf("purge on replica A reached replica B after %v", time.Since(purged))

	// A model's policy set through A's admin API applies on B too: off,
	// B's answers carry no cache header.
	req, _ := http.NewRequest("PUT", srvs[0].URL+"/admin/v1/cache/models/m", strings.NewReader(`{"enabled":false}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT cache model: %d", resp.StatusCode)
	}
	set := time.Now()
	testutil.Eventually(t, "replica B to stop caching a model turned off on replica A", func() bool { return chat(srvs[1]) == "" })
	if took := time.Since(set); took > 5*time.Second {
		t.Fatalf("replica B cached a model turned off on replica A for %v", took)
	}
	t.Logf("policy set on replica A applied by replica B after %v", time.Since(set))
}
