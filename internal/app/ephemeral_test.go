package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// ephemeralGateway is a whole gateway on SQLite in front of a mock whose
// answers are 40 tokens at $0.001 each (prompts are free), with $10 of
// credits on the default account.
type ephemeralGateway struct {
	t     *testing.T
	a     *App
	url   string
	admin string
}

func newEphemeralGateway(t *testing.T) *ephemeralGateway {
	t.Helper()
	up := httptest.NewServer(mock.New(mock.Config{CompletionTokens: 40}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Usage.SpoolDir = filepath.Join(dir, "spool")
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: up.URL + "/v1"}}
	cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "up", Model: "m", InputPrice: "0", OutputPrice: "1000"}}},
		{Name: "other", Deployments: []config.Deployment{{Provider: "up", Model: "other", Free: true}}}}
	a, err := Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	if _, _, err := a.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 10*billing.NanoPerUSD, "t", "test"); err != nil {
		t.Fatal(err)
	}
	admin, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "ops", Kind: keys.KindAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return &ephemeralGateway{t: t, a: a, url: srv.URL, admin: admin}
}

func (g *ephemeralGateway) parent(endpoints ...string) (string, keys.Key) {
	g.t.Helper()
	plain, k, err := g.a.Keys.Create(context.Background(), keys.CreateParams{Name: "server", AllowedModels: []string{"m"}, AllowedEndpoints: endpoints, RPM: 100})
	if err != nil {
		g.t.Fatal(err)
	}
	return plain, k
}

func (g *ephemeralGateway) do(method, path, key string, body string, hdr map[string]string) *http.Response {
	g.t.Helper()
	req, _ := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type apiErr struct {
	Error struct{ Code, Param, Message string } `json:"error"`
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
	}
	return v
}

type minted struct {
	Key              string   `json:"key"`
	ID               string   `json:"id"`
	ParentID         string   `json:"parent_id"`
	AllowedModels    []string `json:"allowed_models"`
	AllowedEndpoints []string `json:"allowed_endpoints"`
	RPM              int      `json:"rpm"`
	MaxSpendUSD      string   `json:"max_spend_usd"`
}

func (g *ephemeralGateway) mint(parent, body string) minted {
	g.t.Helper()
	resp := g.do("POST", "/v1/keys/ephemeral", parent, body, nil)
	if resp.StatusCode != http.StatusCreated {
		raw, _ := io.ReadAll(resp.Body)
		g.t.Fatalf("mint: %d %s", resp.StatusCode, raw)
	}
	return decode[minted](g.t, resp)
}

const chatBody = `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`

func TestMintEphemeralOverHTTP(t *testing.T) {
	g := newEphemeralGateway(t)
	parent, pk := g.parent(keys.EndpointChat, keys.EndpointModels, keys.EndpointMint)
	noMint, _ := g.parent(keys.EndpointChat)

	refusals := []struct {
		name, key, body string
		status          int
		code, param     string
	}{
		{"no keys.mint scope", noMint, `{}`, 403, "endpoint_not_allowed", ""},
		{"wider model", parent, `{"models":["other"]}`, 400, "invalid_value", "models"},
		{"wider endpoint", parent, `{"endpoints":["embeddings"]}`, 400, "invalid_value", "endpoints"},
		{"wider rpm", parent, `{"rpm":101}`, 400, "invalid_value", "rpm"},
		{"ttl past the cap", parent, `{"ttl_seconds":7200}`, 400, "invalid_value", "ttl_seconds"},
		{"bad spend", parent, `{"max_spend_usd":"1e3"}`, 400, "invalid_value", "max_spend_usd"},
		{"unknown field", parent, `{"modles":["m"]}`, 400, "invalid_json", ""},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.do("POST", "/v1/keys/ephemeral", tt.key, tt.body, nil)
			e := decode[apiErr](t, resp)
			if resp.StatusCode != tt.status || e.Error.Code != tt.code || e.Error.Param != tt.param {
				t.Fatalf("got %d %+v", resp.StatusCode, e.Error)
			}
		})
	}

	child := g.mint(parent, `{"endpoints":["chat.completions"],"rpm":10,"max_spend_usd":"0.5"}`)
	if child.ParentID != pk.ID || child.RPM != 10 || child.MaxSpendUSD != "0.50" || strings.Join(child.AllowedModels, ",") != "m" ||
		strings.Join(child.AllowedEndpoints, ",") != "chat.completions" || !strings.HasPrefix(child.Key, keys.CallerPrefix) {
		t.Fatalf("minted %+v", child)
	}
	if resp := g.do("POST", "/v1/chat/completions", child.Key, chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("child chat: %d", resp.StatusCode)
	}
	if resp := g.do("GET", "/v1/models", child.Key, "", nil); resp.StatusCode != 403 {
		t.Fatalf("child kept an endpoint it was not given: %d", resp.StatusCode)
	}
	// A child cannot mint.
	if resp := g.do("POST", "/v1/keys/ephemeral", child.Key, `{}`, nil); resp.StatusCode != 403 {
		t.Fatalf("child minted: %d", resp.StatusCode)
	}
	// Its usage is its own row, on its parent's account.
	rows, err := g.a.DB.ListKeys(context.Background(), keys.KeyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.ID == child.ID && (r.AccountID != pk.AccountID || r.ExpiresAt == nil) {
			t.Fatalf("child row %+v", r)
		}
	}
}

// A child's spend cap is checked at admission with the request's hold: a
// stream that brings it near its cap finishes, and the next request,
// whose worst case no longer fits, is refused.
func TestEphemeralSpendCapMidStream(t *testing.T) {
	g := newEphemeralGateway(t)
	parent, _ := g.parent(keys.EndpointChat, keys.EndpointMint)
	// Each request holds 50 tokens ($0.05) and costs 40 ($0.04): the first
	// fits $0.08, the second (0.04 spent + 0.05 held) does not.
	child := g.mint(parent, `{"max_spend_usd":"0.08"}`)
	resp := g.do("POST", "/v1/chat/completions", child.Key,
		`{"model":"m","max_tokens":50,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	done := false
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		done = done || sc.Text() == "data: [DONE]"
	}
	if !done {
		t.Fatal("the stream did not finish")
	}
	next := g.do("POST", "/v1/chat/completions", child.Key, chatBody, nil)
	if e := decode[apiErr](t, next); next.StatusCode != 429 || e.Error.Code != "ephemeral_key_cap" || next.Header.Get("x-should-retry") != "false" {
		t.Fatalf("next request: %d %+v", next.StatusCode, e.Error)
	}
	// The parent is not capped by its child's cap.
	if resp := g.do("POST", "/v1/chat/completions", parent, chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("parent: %d", resp.StatusCode)
	}
	e, err := g.a.DB.EphemeralByKey(context.Background(), child.ID)
	if err != nil || e.Spent != int64(40*billing.NanoPerUSD/1000) || e.Held != 0 {
		t.Fatalf("child's spend %+v %v", e, err)
	}
}

func TestEphemeralMaxRequests(t *testing.T) {
	g := newEphemeralGateway(t)
	parent, _ := g.parent(keys.EndpointChat, keys.EndpointMint)
	child := g.mint(parent, `{"max_requests":1}`)
	if resp := g.do("POST", "/v1/chat/completions", child.Key, chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	resp := g.do("POST", "/v1/chat/completions", child.Key, chatBody, nil)
	if e := decode[apiErr](t, resp); resp.StatusCode != 429 || e.Error.Code != "ephemeral_key_cap" {
		t.Fatalf("second: %d %+v", resp.StatusCode, e.Error)
	}
}

func TestParentRevokedEndsChildren(t *testing.T) {
	g := newEphemeralGateway(t)
	parent, pk := g.parent(keys.EndpointChat, keys.EndpointMint)
	child := g.mint(parent, `{}`)
	if resp := g.do("POST", "/v1/chat/completions", child.Key, chatBody, nil); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	if resp := g.do("POST", "/admin/v1/keys/"+pk.ID+"/revoke", g.admin, `{}`, nil); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	resp := g.do("POST", "/v1/chat/completions", child.Key, chatBody, nil)
	if e := decode[apiErr](t, resp); resp.StatusCode != 401 || e.Error.Code != "api_key_revoked" {
		t.Fatalf("child after its parent's revocation: %d %+v", resp.StatusCode, e.Error)
	}
}

func TestCORS(t *testing.T) {
	g := newEphemeralGateway(t)
	parent, _ := g.parent(keys.EndpointChat, keys.EndpointMint)
	other, err := g.a.Keys.CreateAccount(context.Background(), "other", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	for acct, body := range map[string]string{keys.DefaultAccountID: `{"origins":["https://App.example:443/"]}`, other.ID: `{"origins":["https://other.example"]}`} {
		if resp := g.do("PUT", "/admin/v1/accounts/"+acct+"/cors", g.admin, body, nil); resp.StatusCode != 200 {
			t.Fatalf("put cors: %d", resp.StatusCode)
		}
	}
	if resp := g.do("PUT", "/admin/v1/accounts/"+other.ID+"/cors", g.admin, `{"origins":["https://*.example"]}`, nil); resp.StatusCode != 400 {
		t.Fatalf("a wildcard origin: %d", resp.StatusCode)
	}
	child := g.mint(parent, `{}`)
	preflight := func(path, origin string) *http.Response {
		return g.do("OPTIONS", path, "", "", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type,x-stainless-os,x-stainless-retry-count,x-evil"})
	}
	tests := []struct {
		name, path, origin string
		status             int
		allow              bool
	}{
		{"allowed origin", "/v1/chat/completions", "https://app.example", 204, true},
		{"another account's origin", "/v1/chat/completions", "https://other.example", 204, true}, // a preflight carries no key
		{"refused origin", "/v1/chat/completions", "https://evil.example", 403, false},
		{"openai base path", "/openai/v1/chat/completions", "https://app.example", 204, true},
		{"admin API", "/admin/v1/keys", "https://app.example", 405, false},
	}
	for _, tt := range tests {
		t.Run("preflight "+tt.name, func(t *testing.T) {
			resp := preflight(tt.path, tt.origin)
			got := resp.Header.Get("Access-Control-Allow-Origin")
			if resp.StatusCode != tt.status || (got == tt.origin) != tt.allow {
				t.Fatalf("status %d, allow-origin %q", resp.StatusCode, got)
			}
			if tt.allow {
				if h := resp.Header.Get("Access-Control-Allow-Headers"); h != "authorization, content-type, x-stainless-os, x-stainless-retry-count" {
					t.Fatalf("allow-headers %q", h)
				}
			}
			if strings.HasPrefix(tt.path, "/admin") && resp.Header.Get("Access-Control-Allow-Methods") != "" {
				t.Fatal("CORS on the admin API")
			}
		})
	}
	actual := []struct {
		name, origin string
		status       int
		code         string
	}{
		{"allowed origin", "https://app.example", 200, ""},
		{"origin of another account", "https://other.example", 403, "origin_not_allowed"},
		{"unknown origin", "https://evil.example", 403, "origin_not_allowed"},
		{"no origin (a server)", "", 200, ""},
	}
	for _, tt := range actual {
		t.Run("request "+tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.origin != "" {
				hdr["Origin"] = tt.origin
			}
			resp := g.do("POST", "/v1/chat/completions", child.Key, chatBody, hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if tt.code != "" {
				if e := decode[apiErr](t, resp); e.Error.Code != tt.code {
					t.Fatalf("code %q", e.Error.Code)
				}
			}
			if tt.status == 200 && tt.origin != "" && resp.Header.Get("Access-Control-Allow-Origin") != tt.origin {
				t.Fatal("no allow-origin on the answer")
			}
		})
	}
	// Never a CORS header on the admin API, even for an allowed origin.
	resp := g.do("GET", "/admin/v1/keys", g.admin, "", map[string]string{"Origin": "https://app.example"})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("admin: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
