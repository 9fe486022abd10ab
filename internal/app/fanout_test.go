package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
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
	time.Sleep(50 * time.Millisecond) // let B's cache settle (ristretto sets are async)
	if err := a.Keys.Revoke(context.Background(), k.ID, "test"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for status() != http.StatusUnauthorized {
		if time.Since(revoked) > 5*time.Second {
			t.Fatal("replica B still accepts a key revoked on replica A")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("revocation on replica A refused by replica B after %v", time.Since(revoked))
}
