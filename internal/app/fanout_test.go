package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/limits"
	"github.com/xroute/xroute/loadtest/mock"
)

// TestRevocationReachesEveryReplica: two replicas share one database and
// Redis; a key revoked through replica A is refused by replica B, whose
// cache still held it, well before the cache TTL. Needs Redis: .ci/run
// sets XROUTE_TEST_REDIS_URL.
func TestRevocationReachesEveryReplica(t *testing.T) {
	url := os.Getenv("XROUTE_TEST_REDIS_URL")
	if url == "" {
		t.Skip("integration test: set XROUTE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run it; .ci/run does")
	}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Auth.CacheTTL = time.Hour // without the fan-out, B would accept the key for an hour
	cfg.Redis.URL = url
	replica := func() (*App, *httptest.Server) {
		cfg := cfg
		cfg.Usage.SpoolDir = t.TempDir() // each replica its own spool
		a, err := Build(context.Background(), cfg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(func() { srv.Close(); a.Close() })
		return a, srv
	}
	a, _ := replica()
	_, srvB := replica()
	plain, k, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	status := func() int {
		req, _ := http.NewRequest("GET", srvB.URL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+plain)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ { // B caches the key
		if st := status(); st != 200 {
			t.Fatalf("replica B before revocation: %d", st)
		}
	}
	// Let B's cache settle: ristretto sets are async, and keys.Service
	// does not expose its cache's Wait. Were the set still pending, B
	// would re-read the key and the test would pass without the fan-out;
	// it cannot fail because of this sleep.
	time.Sleep(50 * time.Millisecond)
	if err := a.Keys.Revoke(context.Background(), k.ID, "test"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	testutil.Eventually(t, "replica B to refuse a key revoked on replica A", func() bool { return status() == http.StatusUnauthorized })
	if took := time.Since(revoked); took > 5*time.Second {
		t.Fatalf("replica B accepted a key revoked on replica A for %v", took)
	}
	t.Logf("revocation on replica A refused by replica B after %v", time.Since(revoked))
}

// TestGlobalRateLimitAcrossReplicas: a key limited to 60 requests a
// minute, used through two replicas sharing Redis, gets 60 in all (within
// 5%), not 60 per replica.
func TestGlobalRateLimitAcrossReplicas(t *testing.T) {
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
	cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "up", Model: "m", Free: true}}}}
	var servers []*httptest.Server
	var first *App
	for i := 0; i < 2; i++ {
		cfg := cfg
		cfg.Usage.SpoolDir = t.TempDir() // each replica its own spool
		a, err := Build(context.Background(), cfg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(func() { srv.Close(); a.Close() })
		servers = append(servers, srv)
		if first == nil {
			first = a
		}
	}
	plain, _, err := first.Keys.Create(context.Background(), keys.CreateParams{Name: "limited", RPM: 60})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[int]int{}
	for i := 0; i < 120; i++ {
		req, _ := http.NewRequest("POST", servers[i%2].URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+plain)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	t.Logf("global RPM 60 across 2 replicas: %d of 120 allowed, %d refused", statuses[200], statuses[429])
	if statuses[200] < 57 || statuses[200] > 63 || statuses[200]+statuses[429] != 120 {
		t.Fatalf("statuses %v: want 60 allowed within 5%%, the rest 429", statuses)
	}
}

// TestRedisDownFallsBackToLocalLimits: with Redis unreachable, limits are
// enforced per replica and no request fails.
func TestRedisDownFallsBackToLocalLimits(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond})
	defer rdb.Close()
	l := limits.NewRedisLimiter(rdb, "t:", limits.NewLimiter(time.Now), zap.NewNop())
	allowed := 0
	for i := 0; i < 10; i++ {
		if l.Allow("k", limits.PerMinute(5), 1).Allowed {
			allowed++
		}
	}
	if allowed != 5 || l.Fallbacks() != 10 {
		t.Fatalf("allowed %d (want 5, by the local limiter), fallbacks %d", allowed, l.Fallbacks())
	}
}

// TestReplicaWithRedisDown: a replica whose Redis is unreachable serves
// every request, enforces the key's limits by itself and counts each
// decision taken alone in xroute_redis_fallbacks_total.
func TestReplicaWithRedisDown(t *testing.T) {
	up := httptest.NewServer(mock.New(mock.Config{}))
	defer up.Close()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Redis.URL = "redis://127.0.0.1:1/0" // nothing listens there
	cfg.Server.Metrics = true
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: up.URL + "/v1"}}
	cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "up", Model: "m", Free: true}}}}
	a, err := Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	defer func() { srv.Close(); a.Close() }()
	key, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "app", RPM: 5, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for i := 0; i < 8; i++ {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[200] != 5 || codes[429] != 3 {
		t.Fatalf("answers %v; want 5 served and 3 refused by the local RPM limit, nothing failed", codes)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var n float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "xroute_redis_fallbacks_total ") {
			fmt.Sscan(strings.TrimPrefix(line, "xroute_redis_fallbacks_total "), &n)
		}
	}
	if n < 8 {
		t.Fatalf("xroute_redis_fallbacks_total = %v; want at least one per request (8)", n)
	}
}
