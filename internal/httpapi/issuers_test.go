package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/exchange/oidctest"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
)

// issuerJSON is an issuer document for the admin API trusting is's
// GitHub Actions tokens from octo-org.
func issuerJSON(iss string) string {
	return `{"issuer":"` + iss + `","audiences":["xroute"],"max_token_lifetime":"1h","rules":[{"name":"ci",` +
		`"claims":{"repository_owner":"octo-org"},"account":"` + keys.DefaultAccountID + `",` +
		`"key":{"models":["gpt-4o-mini"],"endpoints":["chat.completions"],"ttl":"15m"}}]}`
}

// TestIssuersAdminCRUD: issuers added through the admin API are listed
// beside the config file's (read-only), validated with the config's
// rules (400 naming the field), may not shadow a config issuer or another
// API issuer (409), and every change is audited with the admin key.
func TestIssuersAdminCRUD(t *testing.T) {
	t.Parallel()
	cfgIss := "https://config.example"
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Auth.Issuers = []config.Issuer{{Issuer: cfgIss, Audiences: []string{"xroute"}, Rules: []config.IssuerRule{
			{Name: "all", Claims: map[string]string{"sub": "*"}, Account: keys.DefaultAccountID}}}}
	}})
	owner, ok := g.roleKey(t, keys.RoleOwner)
	u := g.srv.URL + adminPrefix

	st, out, _ := call(t, "GET", u+"/issuers", owner, "")
	data, _ := out["data"].([]any)
	if st != 200 || len(data) != 1 {
		t.Fatalf("list with the config issuer only: %d %v", st, out)
	}
	cfgObj := data[0].(map[string]any)
	if cfgObj["source"] != "config" || cfgObj["read_only"] != true || cfgObj["issuer"] != cfgIss {
		t.Fatalf("config issuer %v", cfgObj)
	}
	cfgID := cfgObj["id"].(string)

	bad := []struct {
		name, body, param string
	}{
		{"no audience", `{"issuer":"https://a.example","rules":[{"name":"r","claims":{"sub":"*"},"account":"acct"}]}`, "audiences"},
		{"not a URL", strings.Replace(issuerJSON("x"), `"x"`, `"not a url"`, 1), "issuer"},
		{"hmac algorithm", strings.Replace(issuerJSON("https://a.example"), `"audiences"`, `"algorithms":["HS256"],"audiences"`, 1), "algorithms[0]"},
		{"rule without account", strings.Replace(issuerJSON("https://a.example"), `"account":"`+keys.DefaultAccountID+`"`, `"account":""`, 1), "rules[0].account"},
		{"bad duration", strings.Replace(issuerJSON("https://a.example"), `"15m"`, `"soon"`, 1), "rules[0].key.ttl"},
		{"unknown field", strings.Replace(issuerJSON("https://a.example"), `"audiences"`, `"audience":["x"],"audiences"`, 1), "audience"},
		{"clock skew too large", strings.Replace(issuerJSON("https://a.example"), `"audiences"`, `"clock_skew":"1h","audiences"`, 1), "clock_skew"},
	}
	for _, tc := range bad {
		st, out, _ := call(t, "POST", u+"/issuers", owner, tc.body)
		e, _ := out["error"].(map[string]any)
		if st != 400 || errCode(out) != "invalid_value" || e["param"] != tc.param {
			t.Errorf("%s: %d %v, want 400 invalid_value naming %s", tc.name, st, out, tc.param)
		}
	}
	if st, out, _ := call(t, "POST", u+"/issuers", owner, issuerJSON(cfgIss)); st != 409 || errCode(out) != "issuer_in_config" {
		t.Fatalf("shadowing a config issuer: %d %v", st, out)
	}

	st, created, _ := call(t, "POST", u+"/issuers", owner, issuerJSON("https://a.example"))
	id, _ := created["id"].(string)
	if st != 201 || created["source"] != "api" || created["read_only"] != false || !strings.HasPrefix(id, "iss_") || created["created_by"] != "admin:"+ok.ID {
		t.Fatalf("create: %d %v", st, created)
	}
	if rules, _ := created["rules"].([]any); len(rules) != 1 || rules[0].(map[string]any)["key"].(map[string]any)["ttl"] != "15m" {
		t.Fatalf("rules as created: %v", created["rules"])
	}
	if st, out, _ := call(t, "POST", u+"/issuers", owner, issuerJSON("https://a.example")); st != 409 || errCode(out) != "issuer_exists" {
		t.Fatalf("the same iss twice: %d %v", st, out)
	}
	if st, out, _ := call(t, "GET", u+"/issuers/"+id, owner, ""); st != 200 || out["issuer"] != "https://a.example" {
		t.Fatalf("get: %d %v", st, out)
	}
	if st, out, _ := call(t, "GET", u+"/issuers?issuer=https://a.example", owner, ""); st != 200 || len(out["data"].([]any)) != 1 {
		t.Fatalf("list by iss: %d %v", st, out)
	}
	if st, out, _ := call(t, "GET", u+"/issuers/"+cfgID, owner, ""); st != 200 || out["source"] != "config" {
		t.Fatalf("get a config issuer: %d %v", st, out)
	}
	if st, out, _ := call(t, "GET", u+"/issuers/iss_nope", owner, ""); st != 404 {
		t.Fatalf("get a missing issuer: %d %v", st, out)
	}

	// PATCH: a merge patch; the result is validated as a whole.
	if st, out, _ := call(t, "PATCH", u+"/issuers/"+id, owner, `{"audiences":["xroute","other"]}`); st != 200 || len(out["audiences"].([]any)) != 2 || len(out["rules"].([]any)) != 1 {
		t.Fatalf("patch: %d %v", st, out)
	}
	if st, out, _ := call(t, "PATCH", u+"/issuers/"+id, owner, `{"audiences":null}`); st != 400 || out["error"].(map[string]any)["param"] != "audiences" {
		t.Fatalf("patch removing the audiences: %d %v", st, out)
	}
	// PUT replaces the whole definition; it may move to another iss.
	if st, out, _ := call(t, "PUT", u+"/issuers/"+id, owner, issuerJSON("https://b.example")); st != 200 || out["issuer"] != "https://b.example" || len(out["audiences"].([]any)) != 1 {
		t.Fatalf("put: %d %v", st, out)
	}
	if st, out, _ := call(t, "PUT", u+"/issuers/"+id, owner, issuerJSON(cfgIss)); st != 409 || errCode(out) != "issuer_in_config" {
		t.Fatalf("put onto a config iss: %d %v", st, out)
	}
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		body := issuerJSON(cfgIss)
		if m == "DELETE" {
			body = ""
		}
		if st, out, _ := call(t, m, u+"/issuers/"+cfgID, owner, body); st != 409 || errCode(out) != "issuer_read_only" {
			t.Errorf("%s a config issuer: %d %v", m, st, out)
		}
	}
	if st, out, _ := call(t, "DELETE", u+"/issuers/"+id, owner, ""); st != 200 || out["deleted"] != true {
		t.Fatalf("delete: %d %v", st, out)
	}
	if st, _, _ := call(t, "DELETE", u+"/issuers/"+id, owner, ""); st != 404 {
		t.Fatalf("delete twice: %d", st)
	}

	// Audit: one row per change, naming the admin key and the issuer.
	for _, want := range []struct {
		kind string
		n    int
	}{{exchange.AuditIssuerCreated, 1}, {exchange.AuditIssuerUpdated, 2}, {exchange.AuditIssuerDeleted, 1}} {
		_, ev, _ := call(t, "GET", u+"/audit?kind="+want.kind+"&subject="+id, owner, "")
		rows, _ := ev["data"].([]any)
		if len(rows) != want.n {
			t.Errorf("%s rows: %d, want %d (%v)", want.kind, len(rows), want.n, ev)
			continue
		}
		r := rows[0].(map[string]any)
		if r["actor"] != "admin:"+ok.ID || r["details"].(map[string]any)["issuer"] == nil {
			t.Errorf("%s row %v", want.kind, r)
		}
	}
}

// TestIssuerAddedThroughAPIIsTrustedAtOnce: a token from an issuer the
// gateway does not know is refused; once the issuer is added through
// the admin API it is exchanged (no restart); once deleted it is refused
// again, while the key already issued keeps working until its expiry.
func TestIssuerAddedThroughAPIIsTrustedAtOnce(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{}) // no issuer in the config
	is := oidctest.New(t)
	owner := g.adminKey(t)
	u := g.srv.URL + adminPrefix
	exchangeOnce := func() (int, map[string]any) {
		st, body, _ := postToken(t, g, exchangeParams(is.Sign(is.GitHubActions("octo-org/octo-repo", "refs/heads/main"))), false)
		return st, body
	}

	if st, body := exchangeOnce(); st != 400 || body["error"] != exchange.CodeInvalidRequest {
		t.Fatalf("before the issuer is added: %d %v", st, body)
	}
	st, created, _ := call(t, "POST", u+"/issuers", owner, issuerJSON(is.URL))
	if st != 201 {
		t.Fatalf("add issuer: %d %v", st, created)
	}
	st, body := exchangeOnce()
	if st != 200 || body["scope"] != "model:gpt-4o-mini endpoint:chat.completions" {
		t.Fatalf("after the issuer is added: %d %v", st, body)
	}
	access := body["access_token"].(string)
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", access, chatBody); st != 200 {
		t.Fatalf("chat with the issued token: %d %v", st, b)
	}
	// A change of rule is in force at once too.
	if st, out, _ := call(t, "PATCH", u+"/issuers/"+created["id"].(string), owner,
		`{"rules":[{"name":"other","claims":{"repository_owner":"someone-else"},"account":"`+keys.DefaultAccountID+`"}]}`); st != 200 {
		t.Fatalf("patch rules: %d %v", st, out)
	}
	if st, body := exchangeOnce(); st != 403 || body["error"] != exchange.CodeUnauthorizedClient {
		t.Fatalf("after the rule no longer admits the identity: %d %v", st, body)
	}
	if st, out, _ := call(t, "DELETE", u+"/issuers/"+created["id"].(string), owner, ""); st != 200 {
		t.Fatalf("delete: %d %v", st, out)
	}
	if st, body := exchangeOnce(); st != 400 || body["error"] != exchange.CodeInvalidRequest || !strings.Contains(body["error_description"].(string), "not trusted") {
		t.Fatalf("after the issuer is deleted: %d %v", st, body)
	}
	// Documented: keys already issued live until their own expiry.
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", access, chatBody); st != 200 {
		t.Fatalf("the key issued before the delete: %d %v", st, b)
	}
}

// TestIssuerStoredOutsideTheReplicaIsPolled: an issuer written to the
// store by another process (the CLI on the database, another replica)
// is trusted by this replica's poll, without a message and a restart.
func TestIssuerStoredOutsideTheReplicaIsPolled(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	is := oidctest.New(t)
	doc, err := config.ParseIssuerDoc([]byte(issuerJSON(is.URL)))
	if err != nil {
		t.Fatal(err)
	}
	def, _ := json.Marshal(doc)
	now := time.Now()
	if err := g.app.DB.CreateIssuer(context.Background(), store.StoredIssuer{ID: "iss_elsewhere", Issuer: is.URL, Definition: def, CreatedAt: now, UpdatedAt: now, CreatedBy: "cli", UpdatedBy: "cli"}); err != nil {
		t.Fatal(err)
	}
	var st int
	var body map[string]any
	if !testutil.Wait(testutil.Timeout, func() bool {
		st, body, _ = postToken(t, g, exchangeParams(is.Sign(is.GitHubActions("octo-org/octo-repo", "refs/heads/main"))), false)
		return st == 200
	}) {
		t.Fatalf("the stored issuer was not picked up: %d %v", st, body)
	}
}
