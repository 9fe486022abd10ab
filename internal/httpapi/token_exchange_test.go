package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/exchange/oidctest"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// exchangeGateway is a gateway that trusts one in-test issuer: pushes to
// octo-org's main branch get gpt-4o-mini for chat, and Kubernetes
// service accounts in ml-* namespaces get every model.
func exchangeGateway(t *testing.T) (*gateway, *oidctest.Issuer) {
	t.Helper()
	is := oidctest.New(t)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Auth.Issuers = []config.Issuer{{Issuer: is.URL, Audiences: []string{"xroute"}, Rules: []config.IssuerRule{
			{Name: "ci", Claims: map[string]string{"repository_owner": "octo-org", "ref": "refs/heads/main"}, Account: keys.DefaultAccountID,
				Key: config.KeyTemplate{Models: []string{"gpt-4o-mini"}, Endpoints: []string{"chat.completions"}, TTL: 15 * time.Minute}},
			{Name: "k8s", Claims: map[string]string{"kubernetes.io.namespace": "ml-*"}, Account: keys.DefaultAccountID,
				Key: config.KeyTemplate{TTL: time.Hour}, RefreshTokens: true},
		}}}
	}})
	return g, is
}

// postToken posts a token request as a form (json: false) or JSON.
func postToken(t *testing.T, g *gateway, params map[string]string, asJSON bool) (int, map[string]any, http.Header) {
	t.Helper()
	var body, ct string
	if asJSON {
		b, _ := json.Marshal(params)
		body, ct = string(b), "application/json"
	} else {
		v := url.Values{}
		for k, x := range params {
			v.Set(k, x)
		}
		body, ct = v.Encode(), "application/x-www-form-urlencoded"
	}
	return call(t, "POST", g.base+"/auth/token", "", body, "Content-Type", ct)
}

func exchangeParams(tok string) map[string]string {
	return map[string]string{"grant_type": exchange.GrantTokenExchange, "subject_token": tok, "subject_token_type": exchange.TokenTypeIDToken}
}

// TestTokenExchangeServesAndRevokes: a GitHub Actions token (form) and a
// Kubernetes token (JSON) are exchanged in the RFC's shape; the issued
// token calls /v1/chat/completions on the mock within its scope only, and
// stops at once when revoked.
func TestTokenExchangeServesAndRevokes(t *testing.T) {
	t.Parallel()
	g, is := exchangeGateway(t)
	st, body, hdr := postToken(t, g, exchangeParams(is.Sign(is.GitHubActions("octo-org/octo-repo", "refs/heads/main"))), false)
	if st != 200 || body["token_type"] != "Bearer" || body["issued_token_type"] != exchange.TokenTypeAccess || body["scope"] != "model:gpt-4o-mini endpoint:chat.completions" {
		t.Fatalf("exchange: %d %v", st, body)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", hdr.Get("Cache-Control"))
	}
	if exp, _ := body["expires_in"].(float64); exp < 500 || exp > 600 {
		t.Fatalf("expires_in %v: want the identity token's remaining ten minutes, not the rule's 15", body["expires_in"])
	}
	access := body["access_token"].(string)
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", access, chatBody); st != 200 {
		t.Fatalf("chat with the issued token: %d %v", st, b)
	}
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", access, strings.Replace(chatBody, "gpt-4o-mini", "gpt-4o", 1)); st != 404 && st != 403 {
		t.Fatalf("a model outside the rule: %d %v", st, b)
	}
	if st, b, _ := call(t, "POST", g.base+"/embeddings", access, `{"model":"gpt-4o-mini","input":"x"}`); st != 403 {
		t.Fatalf("an endpoint outside the rule: %d %v", st, b)
	}
	k, err := g.app.Keys.Verify(context.Background(), access)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.app.Keys.Revoke(context.Background(), k.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", access, chatBody); st != 401 || errCode(b) != "api_key_revoked" {
		t.Fatalf("after revocation: %d %v", st, b)
	}

	st, body, _ = postToken(t, g, exchangeParams(is.Sign(is.Kubernetes("ml-prod", "inference"))), true)
	if st != 200 {
		t.Fatalf("kubernetes token as JSON: %d %v", st, body)
	}
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", body["access_token"].(string), chatBody); st != 200 {
		t.Fatalf("chat with the kubernetes token: %d %v", st, b)
	}
}

// TestTokenExchangeKeyExpiresWithTheIdentity: the issued key lives no
// longer than the identity token, and is refused once it has expired.
func TestTokenExchangeKeyExpiresWithTheIdentity(t *testing.T) {
	t.Parallel()
	g, is := exchangeGateway(t)
	c := is.Kubernetes("ml-prod", "inference")
	c["exp"] = time.Now().Add(2 * time.Second).Unix()
	st, body, _ := postToken(t, g, exchangeParams(is.Sign(c)), false)
	if st != 200 {
		t.Fatalf("exchange: %d %v", st, body)
	}
	if exp, _ := body["expires_in"].(float64); exp > 2 {
		t.Fatalf("expires_in %v outlives the identity token", exp)
	}
	access := body["access_token"].(string)
	// Real time passes here: the key expires at the identity token's exp,
	// checked against the wall clock (the app takes no clock).
	testutil.Eventually(t, "the exchanged key to expire with its identity token", func() bool {
		st, b, _ := call(t, "POST", g.base+"/chat/completions", access, chatBody)
		if st == 401 && errCode(b) == "api_key_expired" {
			return true
		}
		if st != 200 {
			t.Fatalf("want 200 until the key expires, then 401 api_key_expired; got %d %v", st, b)
		}
		return false
	})
}

// TestTokenExchangeRefusalsOverHTTP: each refusal's status and RFC 6749
// error, and its audit row.
func TestTokenExchangeRefusalsOverHTTP(t *testing.T) {
	t.Parallel()
	g, is := exchangeGateway(t)
	good := func() map[string]any { return is.GitHubActions("octo-org/octo-repo", "refs/heads/main") }
	with := func(k string, v any) map[string]any { c := good(); c[k] = v; return c }
	replayed := is.Sign(good())
	if st, b, _ := postToken(t, g, exchangeParams(replayed), false); st != 200 {
		t.Fatalf("first use: %d %v", st, b)
	}
	other := oidctest.New(t)
	set := func(p map[string]string, k, v string) map[string]string { p[k] = v; return p }
	cases := []struct {
		name   string
		params map[string]string
		status int
		code   string
		reason string // "" when the request is refused before the exchange (no audit row)
	}{
		{"wrong iss", exchangeParams(other.Sign(other.GitHubActions("octo-org/octo-repo", "refs/heads/main"))), 400, "invalid_request", "wrong_issuer"},
		{"wrong aud", exchangeParams(is.Sign(with("aud", "elsewhere"))), 400, "invalid_request", "wrong_audience"},
		{"expired", exchangeParams(is.Sign(with("exp", time.Now().Add(-time.Hour).Unix()))), 400, "invalid_request", "expired"},
		{"nbf in the future", exchangeParams(is.Sign(with("nbf", time.Now().Add(time.Hour).Unix()))), 400, "invalid_request", "not_yet_valid"},
		{"alg none", exchangeParams(oidctest.Unsigned(good())), 400, "invalid_request", "malformed"},
		{"HS256 with the RSA public key", exchangeParams(is.SignHS256WithPublicKey(good())), 400, "invalid_request", "alg_not_allowed"},
		{"replayed jti", exchangeParams(replayed), 400, "invalid_request", "replayed_jti"},
		{"no rule matched", exchangeParams(is.Sign(is.GitHubActions("octo-org/octo-repo", "refs/heads/feature"))), 403, "unauthorized_client", "no_rule"},
		{"scope wider", set(exchangeParams(is.Sign(good())), "scope", "model:gpt-4o"), 400, "invalid_scope", "scope_wider"},
		{"unsupported grant", map[string]string{"grant_type": "password"}, 400, "unsupported_grant_type", "unsupported_grant_type"},
		{"no subject token", map[string]string{"grant_type": exchange.GrantTokenExchange}, 400, "invalid_request", "no_subject_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, body, hdr := postToken(t, g, tc.params, false)
			if st != tc.status || body["error"] != tc.code || body["error_description"] == "" {
				t.Fatalf("%d %v, want %d %s", st, body, tc.status, tc.code)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Fatal("an error answer without Cache-Control: no-store")
			}
			evs, err := g.app.Audit.List(context.Background(), auditlog.Filter{Kind: "token.", Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("audit: %v %v", evs, err)
			}
			if ev := evs[0]; ev.Kind != exchange.AuditRefused || ev.Details["reason"] != tc.reason || ev.Details["error"] != tc.code || ev.IP == "" {
				t.Fatalf("audit row %+v", ev)
			}
		})
	}
	// Refused before the exchange: not the RFC's encodings.
	if st, b, _ := call(t, "POST", g.base+"/auth/token", "", "grant_type=x", "Content-Type", "text/plain"); st != 400 || b["error"] != "invalid_request" {
		t.Fatalf("text/plain body: %d %v", st, b)
	}
	if st, b, _ := call(t, "POST", g.base+"/auth/token", "", "grant_type=a&grant_type=b", "Content-Type", "application/x-www-form-urlencoded"); st != 400 || b["error"] != "invalid_request" {
		t.Fatalf("a parameter twice: %d %v", st, b)
	}
}

// TestTokenExchangeWithoutIssuers: with no issuer yet the route is
// served (one may be added through the admin API at any time) and
// refuses every grant in the RFC's shape.
func TestTokenExchangeWithoutIssuers(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	if st, b, _ := call(t, "POST", g.base+"/auth/token", "", "grant_type=x", "Content-Type", "application/x-www-form-urlencoded"); st != 400 || b["error"] != exchange.CodeUnsupportedGrantType {
		t.Fatalf("without issuers: %d %v", st, b)
	}
}

// TestTokenRefreshOverHTTP: grant_type=refresh_token returns a new pair;
// the spent refresh token coming back is 400 invalid_grant and revokes
// the family's keys (token.refresh_reused in the audit log).
func TestTokenRefreshOverHTTP(t *testing.T) {
	t.Parallel()
	g, is := exchangeGateway(t)
	st, body, _ := postToken(t, g, exchangeParams(is.Sign(is.Kubernetes("ml-prod", "inference"))), false)
	rt, _ := body["refresh_token"].(string)
	if st != 200 || !strings.HasPrefix(rt, exchange.RefreshPrefix) {
		t.Fatalf("exchange: %d %v", st, body)
	}
	refresh := map[string]string{"grant_type": "refresh_token", "refresh_token": rt}
	st, next, _ := postToken(t, g, refresh, true)
	if st != 200 || next["refresh_token"] == rt || next["access_token"] == body["access_token"] || next["token_type"] != "Bearer" {
		t.Fatalf("refresh: %d %v", st, next)
	}
	if st, b, _ := call(t, "POST", g.base+"/chat/completions", next["access_token"].(string), chatBody); st != 200 {
		t.Fatalf("chat with the refreshed token: %d %v", st, b)
	}
	if st, b, _ := postToken(t, g, refresh, false); st != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", st, b)
	}
	for _, access := range []any{body["access_token"], next["access_token"]} {
		if st, b, _ := call(t, "POST", g.base+"/chat/completions", access.(string), chatBody); st != 401 || errCode(b) != "api_key_revoked" {
			t.Fatalf("a family key after the reuse: %d %v", st, b)
		}
	}
	evs, err := g.app.Audit.List(context.Background(), auditlog.Filter{Kind: "token.refresh_reused"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit: %v %v", evs, err)
	}
	m := g.scrape()
	for outcome, want := range map[string]float64{"issued": 1, "refreshed": 1, "refresh_reused": 1} {
		if got := m.value("xroute_token_exchanges_total", "outcome", outcome); got != want {
			t.Errorf("xroute_token_exchanges_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}
