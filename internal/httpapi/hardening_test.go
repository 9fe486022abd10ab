package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

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
