package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// TestThreeReplicasShareTheResponseCache: three xroute processes on one
// PostgreSQL and Redis; a prompt answered on one replica is a hit on the
// other two, and the upstream is called once.
func TestThreeReplicasShareTheResponseCache(t *testing.T) {
	redisURL := os.Getenv("XROUTE_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("integration test: set XROUTE_TEST_REDIS_URL and XROUTE_TEST_POSTGRES_URL to run it")
	}
	pgURL := storetest.Postgres(t)
	dir := t.TempDir()
	t.Chdir(dir)
	var calls atomic.Int64
	m := mock.New(mock.Config{CompletionTokens: 8})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			calls.Add(1)
		}
		m.ServeHTTP(w, r)
	}))
	defer up.Close()
	yaml := fmt.Sprintf(`log: {level: error}
database: {url: '%s'}
redis: {url: '%s'}
auth: {pepper_file: pepper}
vault: {master_key_file: master}
providers:
  - {name: up, type: openai, base_url: '%s/v1'}
models:
  - {name: cached, deployments: [{provider: up, model: m, free: true}], cache: {enabled: true, ttl: 1m}}
`, pgURL, redisURL, up.URL)
	if err := os.WriteFile("x.yaml", []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := app.Build(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := a.Keys.Create(ctx, keys.CreateParams{Name: "caller"})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()

	c := &cluster{dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	for i := 0; i < 3; i++ {
		c.replicas = append(c.replicas, &replica{env: append(os.Environ(), "XROUTE_REDIS_TIMEOUT=2s",
			"XROUTE_USAGE_SPOOL_DIR="+filepath.Join(dir, fmt.Sprintf("spool-%d", i)))})
	}
	for i := range c.replicas {
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
		defer c.stop(i)
	}
	// A prompt no earlier run put in the shared Redis.
	body := `{"model":"cached","messages":[{"role":"user","content":"replicas ` + fmt.Sprint(time.Now().UnixNano()) + `"}]}`
	var first string
	for i, want := range []string{"miss", "hit", "hit"} {
		resp, err := c.do(c.replicas[i], "POST", "/v1/chat/completions", key, body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-xroute-cache") != want {
			t.Fatalf("replica %d: %d x-xroute-cache=%q, want %q: %s", i, resp.StatusCode, resp.Header.Get("x-xroute-cache"), want, b)
		}
		text := string(b[strings.Index(string(b), `"content"`):])
		text = text[:strings.Index(text, `",`)]
		if i == 0 {
			first = text
		} else if text != first {
			t.Fatalf("replica %d answered %s, the first %s", i, text, first)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the upstream was called %d times, want 1", n)
	}
}
