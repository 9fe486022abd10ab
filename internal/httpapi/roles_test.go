package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
)

// roleTable is who, besides the owner, may call each admin route: the
// test's own copy of the policy, written out so that a change to
// internal/httpapi/roles.go must be made here too. A route not listed is
// owner-only, as the server treats it.
var roleTable = func() map[string][]string {
	all := []string{keys.RoleOperator, keys.RoleBilling, keys.RoleViewer}
	op := []string{keys.RoleOperator}
	bill := []string{keys.RoleBilling}
	m := map[string][]string{}
	for _, p := range []string{"/openapi.json", "/me", "/accounts", "/accounts/:id", "/keys", "/keys/:id",
		"/audit", "/audit/verify", "/audit/head", "/provider-keys", "/accounts/:id/credits", "/accounts/:id/ledger",
		"/credits/verify", "/budgets", "/deployments", "/usage/report", "/requests", "/requests/:request_id",
		"/accounts/:id/capture", "/accounts/:id/cors", "/cache/models", "/cache/models/:model"} {
		m["GET "+adminPrefix+p] = all
	}
	for _, r := range []string{"POST /accounts", "POST /keys", "POST /keys/:id/rotate", "POST /keys/:id/revoke",
		"POST /keys/:id/suspend", "POST /keys/:id/resume", "POST /provider-keys", "POST /provider-keys/:id/disable",
		"POST /provider-keys/:id/enable", "DELETE /provider-keys/:id", "PUT /accounts/:id/capture",
		"PUT /accounts/:id/cors", "GET /audit/export", "POST /cache/purge", "PATCH /keys/:id", "PUT /cache/models/:model", "DELETE /cache/models/:model"} {
		method, p, _ := strings.Cut(r, " ")
		m[method+" "+adminPrefix+p] = op
	}
	for _, r := range []string{"POST /accounts/:id/credits", "POST /accounts/:id/multiplier", "POST /budgets", "DELETE /budgets"} {
		method, p, _ := strings.Cut(r, " ")
		m[method+" "+adminPrefix+p] = bill
	}
	// Trusted issuers: read by the operator and the viewer, not billing;
	// written by the operator.
	for _, p := range []string{"/issuers", "/issuers/:id"} {
		m["GET "+adminPrefix+p] = []string{keys.RoleOperator, keys.RoleViewer}
	}
	for _, r := range []string{"POST /issuers", "PUT /issuers/:id", "PATCH /issuers/:id", "DELETE /issuers/:id"} {
		method, p, _ := strings.Cut(r, " ")
		m[method+" "+adminPrefix+p] = op
	}
	return m
}()

func (g *gateway) roleKey(t *testing.T, role string) (string, keys.Key) {
	t.Helper()
	plain, k, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: role, Kind: keys.KindAdmin, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return plain, k
}

// TestEveryAdminRouteWithEveryRole calls every admin route the server
// registered (from gin's route list, so a new route is covered without
// editing this test) with every role, and checks that exactly the roles
// the table names (and the owner) get past authorization.
func TestEveryAdminRouteWithEveryRole(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	srv := g.app.Handler.(*httpapi.Server)
	ctx := context.Background()
	acct, err := g.app.Keys.CreateAccount(ctx, "acme", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	roleKeys := map[string]string{}
	for _, r := range keys.Roles {
		roleKeys[r], _ = g.roleKey(t, r)
	}

	var routes []gin.RouteInfo
	served := map[string]bool{}
	for _, r := range srv.Routes() {
		if strings.HasPrefix(r.Path, adminPrefix+"/") {
			routes = append(routes, r)
			served[r.Method+" "+r.Path] = true
		}
	}
	if len(routes) < 30 {
		t.Fatalf("only %d admin routes mounted; is the app wired with every admin service?", len(routes))
	}
	for r := range roleTable {
		if !served[r] {
			t.Errorf("the role table names %s, which the server does not serve", r)
		}
	}

	// The owner goes last: its writes (a revoke, a vault rotation) must
	// not change what the others' calls meet.
	order := []string{keys.RoleViewer, keys.RoleBilling, keys.RoleOperator, keys.RoleOwner}
	for _, role := range order {
		for _, r := range routes {
			allowed := role == keys.RoleOwner
			for _, a := range roleTable[r.Method+" "+r.Path] {
				allowed = allowed || a == role
			}
			// Each call acts on a fresh caller key, so the routes of one
			// role do not see another's revocations.
			_, target, err := g.app.Keys.Create(ctx, keys.CreateParams{Name: "target", AccountID: acct.ID})
			if err != nil {
				t.Fatal(err)
			}
			path := r.Path
			for param, v := range map[string]string{":request_id": "req_nope", ":id": map[bool]string{true: target.ID, false: acct.ID}[strings.HasPrefix(path, adminPrefix+"/keys/")]} {
				path = strings.ReplaceAll(path, param, v)
			}
			if strings.HasPrefix(r.Path, adminPrefix+"/provider-keys/") {
				path = strings.ReplaceAll(r.Path, ":id", "pk_nope")
			}
			body := "{}"
			if r.Method == http.MethodPost && r.Path == adminPrefix+"/keys" {
				body = `{"name":"made by ` + role + `","account_id":"` + acct.ID + `"}`
			}
			if r.Method == http.MethodGet || r.Method == http.MethodDelete {
				body = ""
			}
			st, out, _ := call(t, r.Method, g.srv.URL+path, roleKeys[role], body)
			refused := st == http.StatusForbidden && errCode(out) == "role_forbidden"
			if allowed && st == http.StatusForbidden {
				t.Errorf("%s %s as %s: %d %v, want it allowed", r.Method, path, role, st, out)
			}
			if !allowed && !refused {
				t.Errorf("%s %s as %s: %d %v, want 403 role_forbidden", r.Method, path, role, st, out)
			}
			if refused {
				msg, _ := out["error"].(map[string]any)["message"].(string)
				if !strings.Contains(msg, "owner") || !strings.Contains(msg, "("+role+")") {
					t.Errorf("%s %s as %s: the refusal names neither the role nor the one needed: %q", r.Method, path, role, msg)
				}
			}
		}
	}
}

// TestRoleEscalationRefused: only the owner makes or acts on admin keys,
// so no role can mint itself a stronger one.
func TestRoleEscalationRefused(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	owner, _ := g.roleKey(t, keys.RoleOwner)
	operator, _ := g.roleKey(t, keys.RoleOperator)
	_, other := g.roleKey(t, keys.RoleViewer)
	u := g.srv.URL + adminPrefix

	cases := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"operator creates an admin key", operator, "POST", "/keys", `{"name":"x","kind":"admin","role":"viewer"}`, 403, "role_forbidden"},
		{"operator rotates an admin key", operator, "POST", "/keys/" + other.ID + "/rotate", `{}`, 403, "role_forbidden"},
		{"operator revokes an admin key", operator, "POST", "/keys/" + other.ID + "/revoke", ``, 403, "role_forbidden"},
		{"operator suspends an admin key", operator, "POST", "/keys/" + other.ID + "/suspend", `{}`, 403, "role_forbidden"},
		{"operator acts on a missing key", operator, "POST", "/keys/key_nope/revoke", ``, 404, "not_found"},
		{"operator creates a caller key", operator, "POST", "/keys", `{"name":"app"}`, 201, ""},
		{"caller key with a role", owner, "POST", "/keys", `{"name":"app","role":"viewer"}`, 400, "invalid_value"},
		{"unknown role", owner, "POST", "/keys", `{"name":"x","kind":"admin","role":"root"}`, 400, "invalid_value"},
		{"owner creates a billing key", owner, "POST", "/keys", `{"name":"books","kind":"admin","role":"billing"}`, 201, ""},
		{"owner suspends an admin key", owner, "POST", "/keys/" + other.ID + "/suspend", `{}`, 200, ""},
		{"operator changes an admin key's cache policy", operator, "PATCH", "/keys/" + other.ID, `{"cache":{"enabled":false}}`, 403, "role_forbidden"},
		{"owner changes an admin key's cache policy", owner, "PATCH", "/keys/" + other.ID, `{"cache":{"enabled":false}}`, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, out, _ := call(t, tc.method, u+tc.path, tc.key, tc.body)
			if st != tc.status || (tc.code != "" && errCode(out) != tc.code) {
				t.Fatalf("%d %v, want %d %s", st, out, tc.status, tc.code)
			}
			if tc.name == "owner creates a billing key" && out["role"] != "billing" {
				t.Fatalf("created key's role: %v", out["role"])
			}
		})
	}
}

// TestAdminKeyRoleVisible: the key object and GET /me name the role, an
// admin key made without one is an owner, and the audit's key.created
// names the role granted.
func TestAdminKeyRoleVisible(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	owner := g.adminKey(t) // made without a role
	billing, bk := g.roleKey(t, keys.RoleBilling)
	u := g.srv.URL + adminPrefix
	for _, tc := range []struct{ key, role string }{{owner, keys.RoleOwner}, {billing, keys.RoleBilling}} {
		if st, out, _ := call(t, "GET", u+"/me", tc.key, ""); st != 200 || out["role"] != tc.role {
			t.Errorf("GET /me: %d %v, want role %s", st, out, tc.role)
		}
	}
	if st, out, _ := call(t, "GET", u+"/keys/"+bk.ID, owner, ""); st != 200 || out["role"] != keys.RoleBilling {
		t.Errorf("GET /keys/%s: %d %v", bk.ID, st, out)
	}
	_, ev, _ := call(t, "GET", u+"/audit?kind=key.created&subject="+bk.ID, owner, "")
	data, _ := ev["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["details"].(map[string]any)["role"] != keys.RoleBilling {
		t.Errorf("key.created event: %v", ev)
	}
}

// TestViewerSeesNoKeyMaterial: a viewer's (and billing's) answers carry no
// key hint, caller, admin or provider, not even in the audit log; the
// owner's do.
func TestViewerSeesNoKeyMaterial(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	owner, ok := g.roleKey(t, keys.RoleOwner)
	viewer, _ := g.roleKey(t, keys.RoleViewer)
	billing, _ := g.roleKey(t, keys.RoleBilling)
	u := g.srv.URL + adminPrefix
	if st, out, _ := call(t, "POST", u+"/provider-keys", owner, `{"provider":"primary","name":"main","key":"`+providerKey+`","weight":1}`); st != 201 {
		t.Fatalf("add provider key: %d %v", st, out)
	}
	pkHint := keys.MaskSecret(providerKey)
	for _, path := range []string{"/keys", "/keys/" + ok.ID, "/provider-keys", "/audit?limit=1000"} {
		raw := func(key string) string {
			req, _ := http.NewRequest("GET", u+path, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			rec := httptest.NewRecorder()
			g.app.Handler.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
			}
			return rec.Body.String()
		}
		for _, key := range []string{viewer, billing} {
			body := raw(key)
			if strings.Contains(body, ok.Hint) || strings.Contains(body, pkHint) || strings.Contains(body, `"hint":"x`) {
				t.Errorf("GET %s as a reader carries a hint: %s", path, body)
			}
		}
		if body := raw(owner); !strings.Contains(body, ok.Hint) && !strings.Contains(body, pkHint) {
			t.Errorf("GET %s as the owner shows no hint: %s", path, body)
		}
	}
}

// TestUndeclaredAdminRouteIsOwnerOnly: a route mounted on the admin group
// without an entry in the role table (a new feature's, say) answers only
// the owner.
func TestUndeclaredAdminRouteIsOwnerOnly(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	srv, err := httpapi.New(httpapi.Config{Keys: g.app.Keys, Log: zap.NewNop(), Admin: httpapi.AdminConfig{Keys: g.app.Keys,
		Routes: []httpapi.Mounter{httpapi.MountFunc(func(r *gin.RouterGroup) {
			r.POST("/future/purge", func(c *gin.Context) { c.JSON(200, gin.H{"purged": true}) })
			r.GET("/future/stats", func(c *gin.Context) { c.JSON(200, gin.H{}) })
		})}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	for _, role := range keys.Roles {
		key, _ := g.roleKey(t, role)
		for _, path := range []string{"POST /future/purge", "GET /future/stats"} {
			method, p, _ := strings.Cut(path, " ")
			st, out, _ := call(t, method, ts.URL+adminPrefix+p, key, "")
			want := map[bool]int{true: 200, false: 403}[role == keys.RoleOwner]
			if st != want || (want == 403 && errCode(out) != "role_forbidden") {
				t.Errorf("%s as %s: %d %v, want %d", path, role, st, out, want)
			}
		}
	}
}

// TestOwnerChangesRole: an owner changes another admin key's role, which
// applies on that key's very next request (the cached key is dropped)
// and is audited with the old and new role; no key changes its own role.
func TestOwnerChangesRole(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	owner, ok := g.roleKey(t, keys.RoleOwner)
	viewer, vk := g.roleKey(t, keys.RoleViewer)
	u := g.srv.URL + adminPrefix
	// The viewer's key is cached by a first request, and refused a write.
	if st, out, _ := call(t, "POST", u+"/accounts", viewer, `{"name":"a"}`); st != 403 || errCode(out) != "role_forbidden" {
		t.Fatalf("viewer creates an account: %d %v", st, out)
	}
	if st, out, _ := call(t, "POST", u+"/keys/"+vk.ID+"/role", owner, `{"role":"operator"}`); st != 200 || out["role"] != keys.RoleOperator {
		t.Fatalf("set role: %d %v", st, out)
	}
	if st, out, _ := call(t, "POST", u+"/accounts", viewer, `{"name":"a"}`); st != 201 {
		t.Fatalf("the new operator creates an account: %d %v", st, out)
	}
	if st, out, _ := call(t, "POST", u+"/keys/"+ok.ID+"/role", owner, `{"role":"viewer"}`); st != 409 || errCode(out) != "own_role" {
		t.Fatalf("owner changes its own role: %d %v", st, out)
	}
	_, ev, _ := call(t, "GET", u+"/audit?kind=key.role_changed&subject="+vk.ID, owner, "")
	data, _ := ev["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("key.role_changed events: %v", ev)
	}
	d := data[0].(map[string]any)["details"].(map[string]any)
	if d["from"] != keys.RoleViewer || d["to"] != keys.RoleOperator {
		t.Fatalf("key.role_changed details: %v", d)
	}
}
