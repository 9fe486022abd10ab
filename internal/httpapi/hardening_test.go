package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
)

// TestHoleAdminAnswerCacheable: admin answers (keys as they are created,
// balances, the audit log, provider-key hints) carried no Cache-Control,
// so a browser or a shared proxy between the operator and xroute could
// keep them. Every answer under /admin/v1 — success, error, refusal — says
// no-store.
func TestHoleAdminAnswerCacheable(t *testing.T) {
	t.Parallel()
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
	// Under /admin but no route: an unknown path, a method not served.
	for _, r := range []struct{ method, path string }{{"GET", "/admin/v1/nope"}, {"HEAD", "/admin/v1/keys"}, {"PUT", "/admin/v1/accounts"}} {
		status, _, hdr := call(t, r.method, root+r.path, admin, "")
		if cc := hdr.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s %s (status %d): Cache-Control %q, want no-store", r.method, r.path, status, cc)
		}
	}
}

// TestHoleAccountStatusEmpty: the answer that creates an account said
// "status": "" (the store filled in the default on its own copy).
func TestHoleAccountStatusEmpty(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// verifyWebhook is what the README tells a receiver to do: recompute
// HMAC-SHA256(secret, "<t>.<raw body>"), compare in constant time with
// v1, refuse a t more than 5 minutes off.
func verifyWebhook(secret string, r *http.Request, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(r.Header.Get("X-Xroute-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("no signature: %q", r.Header.Get("X-Xroute-Signature"))
	}
	if d := now.Sub(time.Unix(t, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %d is %s off", t, d)
	}
	if r.Header.Get("X-Xroute-Timestamp") != ts {
		return fmt.Errorf("X-Xroute-Timestamp %q is not the signed t %q", r.Header.Get("X-Xroute-Timestamp"), ts)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("signature does not match the body")
	}
	return nil
}

// TestHoleWebhookUnsigned: anomaly webhooks carried no signature and no
// timestamp: anyone who learnt the receiver's URL could post fake alerts
// (or replay real ones). Every webhook is signed with the configured
// secret; a receiver verifies it as the README says, and a changed body
// or another secret fails.
func TestHoleWebhookUnsigned(t *testing.T) {
	t.Parallel()
	const secret = "whsec-0123456789abcdef"
	type delivery struct {
		r    *http.Request
		body []byte
	}
	got := make(chan delivery, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r, body}
	}))
	defer hook.Close()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Anomaly.AuthFailures = 3
		c.Anomaly.Action = "webhook"
		c.Anomaly.Webhook = hook.URL
		c.Anomaly.WebhookSecret = secret
	}})
	plain, _, _ := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "office", AllowedCIDRs: []string{"10.0.0.0/8"}})
	for i := 0; i < 4; i++ {
		call(t, "GET", g.base+"/models", plain, "")
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook call")
	}
	if err := verifyWebhook(secret, d.r, d.body, time.Now()); err != nil {
		t.Fatalf("the receiver cannot verify the webhook: %v", err)
	}
	if !strings.Contains(string(d.body), `"kind":"auth_failures"`) {
		t.Fatalf("webhook body %s", d.body)
	}
	forged := append([]byte(nil), d.body...)
	forged[len(forged)-2] ^= 1
	if verifyWebhook(secret, d.r, forged, time.Now()) == nil {
		t.Fatal("a changed body still verifies")
	}
	if verifyWebhook("another-secret-0123456789", d.r, d.body, time.Now()) == nil {
		t.Fatal("another secret verifies")
	}
	if verifyWebhook(secret, d.r, d.body, time.Now().Add(time.Hour)) == nil {
		t.Fatal("an hour-old delivery (a replay) verifies")
	}
}
