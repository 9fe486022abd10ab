package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
)

// TestHoleAdminAnswerCacheable: admin answers (keys as they are created,
// balances, the audit log, provider-key hints) carried no Cache-Control,
// so a browser or a shared proxy between the operator and xroute could
// keep them. Every answer under /admin/v1 — success, error, refusal — says
// no-store.
func TestHoleAdminAnswerCacheable(t *testing.T) {
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	srv, ok := g.app.Handler.(*httpapi.Server)
	if !ok {
		t.Fatalf("app.Handler is a %T", g.app.Handler)
	}
	root := strings.TrimSuffix(g.base, "/v1")
	n := 0
	for _, r := range srv.Routes() {
		if !strings.HasPrefix(r.Path, "/admin/v1/") {
			continue
		}
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
				segs[i] = "nope" // no such object: nothing real changes
			}
		}
		path := strings.Join(segs, "/")
		body := ""
		if r.Method == http.MethodPost {
			body = "{}"
		}
		for _, key := range []string{admin, g.key, ""} { // answered, refused (caller key), unauthenticated
			status, _, hdr := call(t, r.Method, root+path, key, body)
			if cc := hdr.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s %s (status %d): Cache-Control %q, want no-store", r.Method, path, status, cc)
			}
			n++
		}
	}
	if n < 75 {
		t.Fatalf("only %d admin answers checked; are the admin routes mounted?", n)
	}
}

// TestHoleAccountStatusEmpty: the answer that creates an account said
// "status": "" (the store filled in the default on its own copy).
func TestHoleAccountStatusEmpty(t *testing.T) {
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	root := strings.TrimSuffix(g.base, "/v1")
	status, created, _ := call(t, "POST", root+"/admin/v1/accounts", admin, `{"name":"acme"}`)
	if status != http.StatusCreated || created["status"] != "active" {
		t.Fatalf("create account: %d %v", status, created)
	}
	id, _ := created["id"].(string)
	_, got, _ := call(t, "GET", root+"/admin/v1/accounts/"+id, admin, "")
	if got["status"] != "active" {
		t.Fatalf("get account: %v", got)
	}
	_, list, _ := call(t, "GET", root+"/admin/v1/accounts", admin, "")
	data, _ := list["data"].([]any)
	for _, a := range data {
		if a.(map[string]any)["status"] == "" {
			t.Fatalf("an account in the list has an empty status: %v", a)
		}
	}
	if len(data) < 2 {
		t.Fatalf("list: %v", list)
	}
}

// TestHoleMetricsTokenRequired: /metrics could only be open or off.
// server.metrics_token makes a scrape present a bearer token.
func TestHoleMetricsTokenRequired(t *testing.T) {
	const token = "scrape-token-0123456789"
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) { c.Server.MetricsToken = token }})
	root := strings.TrimSuffix(g.base, "/v1")
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer scrape-token-0123456788", http.StatusUnauthorized},
		{"a caller key", "Bearer " + g.key, http.StatusUnauthorized},
		{"the token", "Bearer " + token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", root+"/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if got := strings.Contains(string(raw), "xroute_requests_total"); got != (tc.want == http.StatusOK) {
				t.Fatalf("metrics in the answer: %v (status %d)", got, resp.StatusCode)
			}
		})
	}
}

// TestHoleMetricsOnSeparateAddr: server.metrics_addr moves /metrics off
// the public listener onto one of its own.
func TestHoleMetricsOnSeparateAddr(t *testing.T) {
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) { c.Server.MetricsAddr = "127.0.0.1:0" }})
	root := strings.TrimSuffix(g.base, "/v1")
	if status, _, _ := call(t, "GET", root+"/metrics", "", ""); status != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public listener: %d, want 404", status)
	}
	if g.app.Metrics == nil {
		t.Fatal("no metrics handler for the separate listener")
	}
	ms := httptest.NewServer(g.app.Metrics)
	defer ms.Close()
	resp, err := http.Get(ms.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "xroute_requests_total") {
		t.Fatalf("separate listener: %d %.200s", resp.StatusCode, raw)
	}
}
