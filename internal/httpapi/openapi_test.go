package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
)

const adminPrefix = "/admin/v1"

func loadOpenAPI(t *testing.T, raw []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// documented lists the document's operations as "METHOD /admin/v1/path".
func documented(doc *openapi3.T) map[string]bool {
	out := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out[method+" "+adminPrefix+path] = true
		}
	}
	return out
}

// TestOpenAPIListsEveryAdminRoute walks the routes the real app mounts:
// every /admin/v1 route is in the document, and the document has no route
// the server lacks.
func TestOpenAPIListsEveryAdminRoute(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	srv, ok := g.app.Handler.(*httpapi.Server)
	if !ok {
		t.Fatalf("app.Handler is a %T, not the *httpapi.Server", g.app.Handler)
	}
	doc := loadOpenAPI(t, httpapi.OpenAPI())
	inDoc := documented(doc)
	served := map[string]bool{}
	for _, r := range srv.Routes() {
		if !strings.HasPrefix(r.Path, adminPrefix+"/") {
			continue
		}
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
				segs[i] = "{" + s[1:] + "}"
			}
		}
		served[r.Method+" "+strings.Join(segs, "/")] = true
	}
	if len(served) < 25 {
		t.Fatalf("only %d admin routes mounted; is the app wired with every admin service?", len(served))
	}
	for r := range served {
		if !inDoc[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for r := range inDoc {
		if !served[r] {
			t.Errorf("openapi.json documents %s, which the server does not serve", r)
		}
	}
}

// oaSession drives the real app and validates every request and answer
// against the served document.
type oaSession struct {
	t      *testing.T
	g      *gateway
	admin  string
	doc    *openapi3.T
	router routers.Router
	seen   map[string]bool // "METHOD /path" operations exercised
	calls  int
}

type oaResp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r oaResp) str(path ...string) string {
	var v any = r.body
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func (r oaResp) data() []map[string]any {
	list, _ := r.body["data"].([]any)
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i], _ = v.(map[string]any)
	}
	return out
}

// do calls the admin API with the admin key. want is the expected status;
// badRequest marks a call meant to break the document's request rules
// (its request must then fail validation; its answer must still match).
func (s *oaSession) do(method, path, body string, want int, badRequest ...bool) oaResp {
	s.t.Helper()
	return s.doKey(s.admin, method, path, body, want, len(badRequest) > 0 && badRequest[0])
}

func (s *oaSession) doKey(key, method, path, body string, want int, badRequest bool) oaResp {
	s.t.Helper()
	s.calls++
	full := s.g.srv.URL + adminPrefix + path
	newReq := func() *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, full, rd)
		if err != nil {
			s.t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return req
	}
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		s.t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := oaResp{status: resp.StatusCode, header: resp.Header, raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			s.t.Fatalf("%s %s: answer is not JSON: %s", method, path, raw)
		}
	}
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}

	vreq := newReq()
	route, params, err := s.router.FindRoute(vreq)
	if err != nil {
		s.t.Fatalf("%s %s: not in openapi.json: %v", method, path, err)
	}
	s.seen[method+" "+route.Path] = true
	// Schema errors name the field and the rule, without dumping the schema.
	short := []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, SchemaValidationOptions: short}}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case badRequest && err == nil:
		s.t.Errorf("%s %s %s: the document accepts this request, which the server refuses (%d)", method, path, body, resp.StatusCode)
	case !badRequest && err != nil:
		s.t.Errorf("%s %s %s: request does not match openapi.json: %v", method, path, body, err)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: short},
	})
	if err != nil {
		s.t.Errorf("%s %s -> %d: answer does not match openapi.json: %v\n%s", method, path, resp.StatusCode, err, raw)
	}
	return out
}

// TestOpenAPIRealResponsesValidate drives an operator's session through
// the real app: every request and every answer, errors included, is
// checked against the document the server serves, and every documented
// operation is exercised.
func TestOpenAPIRealResponsesValidate(t *testing.T) {
	t.Parallel()
	// The audit export answers JSON lines, which the validator reads as
	// text (no test here runs in parallel with this registration).
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
	g := newGateway(t, gwOptions{})
	s := &oaSession{t: t, g: g, admin: g.adminKey(t), seen: map[string]bool{}}

	// The served document, loaded and pointed at this server.
	st, _, _ := call(t, "GET", g.srv.URL+adminPrefix+"/openapi.json", "", "")
	if st != 401 {
		t.Fatalf("openapi.json without a key: %d", st)
	}
	req, _ := http.NewRequest("GET", g.srv.URL+adminPrefix+"/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(served, httpapi.OpenAPI()) {
		t.Fatalf("GET openapi.json: %d, %d bytes; want the embedded document", resp.StatusCode, len(served))
	}
	s.doc = loadOpenAPI(t, served)
	s.doc.Servers = openapi3.Servers{{URL: g.srv.URL + adminPrefix}}
	if s.router, err = legacy.NewRouter(s.doc); err != nil {
		t.Fatal(err)
	}
	s.do("GET", "/openapi.json", "", 200)

	// Accounts.
	acct := s.do("POST", "/accounts", `{"name":"acme","metadata":{"tier":"gold"}}`, 201).str("id")
	s.do("POST", "/accounts", `{"name":"globex"}`, 201)
	s.do("POST", "/accounts", `{"name":"acme"}`, 409)
	s.do("POST", "/accounts", `{"name":"x","plan":"gold"}`, 400, true)
	p1 := s.do("GET", "/accounts?limit=1", "", 200)
	if len(p1.data()) != 1 || p1.body["has_more"] != true || p1.str("next_after") == "" {
		t.Fatalf("accounts page 1: %s", p1.raw)
	}
	p2 := s.do("GET", "/accounts?limit=1&after="+p1.str("next_after"), "", 200)
	if len(p2.data()) != 1 || p2.data()[0]["id"] == p1.data()[0]["id"] {
		t.Fatalf("accounts page 2: %s", p2.raw)
	}
	if f := s.do("GET", "/accounts?name=ACM&status=active", "", 200).data(); len(f) != 1 || f[0]["id"] != acct {
		t.Fatalf("accounts filtered by name: %v", f)
	}
	s.do("GET", "/accounts?limit=0", "", 400, true)
	s.do("GET", "/accounts/"+acct, "", 200)
	s.do("GET", "/accounts/acct_nope", "", 404)

	// Keys: create, list, get, rotate, suspend, resume, revoke.
	k := s.do("POST", "/keys", `{"name":"svc","account_id":"`+acct+`","allowed_models":["gpt-4o-mini"],"allowed_endpoints":["chat.completions","usage"],"rpm":600,"metadata":{"team":"a"},"expires_in":"720h"}`, 201)
	keyID, secret := k.str("id"), k.str("key")
	if secret == "" || k.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create key: %s", k.raw)
	}
	opsID := s.do("POST", "/keys", `{"name":"ops","kind":"admin","role":"viewer"}`, 201).str("id")
	if k := s.do("POST", "/keys/"+opsID+"/role", `{"role":"billing"}`, 200); k.str("role") != "billing" {
		t.Fatalf("set role: %s", k.raw)
	}
	s.do("POST", "/keys/"+opsID+"/role", `{"role":"root"}`, 400, true)
	s.do("POST", "/keys/"+keyID+"/role", `{"role":"viewer"}`, 400)
	s.do("POST", "/keys/key_nope/role", `{"role":"viewer"}`, 404)
	if k := s.do("PATCH", "/keys/"+keyID, `{"cache":{"enabled":false,"ttl":"10m"}}`, 200); k.str("metadata", "cache") != "off" {
		t.Fatalf("key after PATCH: %s", k.raw)
	}
	s.do("PATCH", "/keys/"+keyID, `{"cache":{"ttl":"soon"}}`, 400)
	s.do("PATCH", "/keys/key_nope", `{"cache":{"enabled":true}}`, 404)
	s.do("PATCH", "/keys/"+keyID, `{"cache":{"enabled":true,"ttl":""}}`, 200)
	s.do("POST", "/keys", `{"name":"x","expires_in":"soon"}`, 400)
	s.do("POST", "/keys", `{"name":"x","rpm":-1}`, 400, true)
	s.do("POST", "/keys", `{"name":"x","account_id":"acct_nope"}`, 400)
	if l := s.do("GET", "/keys?account_id="+acct+"&kind=caller&limit=1", "", 200).data(); len(l) != 1 || l[0]["id"] != keyID {
		t.Fatalf("keys filtered: %v", l)
	}
	kp := s.do("GET", "/keys?limit=1", "", 200)
	s.do("GET", "/keys?limit=1&after="+kp.str("next_after"), "", 200)
	s.do("GET", "/keys?limit=5000", "", 400, true)
	s.do("GET", "/keys/"+keyID, "", 200)
	s.do("GET", "/keys/key_nope", "", 404)
	rot := s.do("POST", "/keys/"+keyID+"/rotate", `{"overlap":"1h"}`, 201)
	newID := rot.str("id")
	if rot.str("rotated_from") != keyID || rot.str("key") == "" {
		t.Fatalf("rotate: %s", rot.raw)
	}
	s.do("POST", "/keys/"+newID+"/rotate", `{"overlap":"forever"}`, 400)
	s.do("POST", "/keys/"+newID+"/suspend", `{"reason":"investigating"}`, 200)
	s.do("POST", "/keys/"+newID+"/resume", "", 200)
	s.do("POST", "/keys/"+keyID+"/revoke", "", 200)
	s.do("POST", "/keys/key_nope/suspend", `{}`, 404)
	s.do("POST", "/keys/key_nope/resume", "", 404)
	s.do("POST", "/keys/key_nope/revoke", "", 404)

	// Provider keys and the vault.
	pk := s.do("POST", "/provider-keys", `{"provider":"primary","name":"main","key":"`+providerKey+`","weight":1}`, 201)
	pkID := pk.str("id")
	if strings.Contains(string(pk.raw), providerKey) {
		t.Fatal("a provider key answer carries the key")
	}
	s.do("POST", "/provider-keys", `{"provider":"primary","name":"spare","key":"`+providerKey+`","weight":1}`, 201)
	s.do("POST", "/provider-keys", `{"provider":"nope","name":"x","key":"sk-aaaaaaaaaaaaaaaaaaaa"}`, 400)
	pl := s.do("GET", "/provider-keys?provider=primary&status=active&limit=1", "", 200)
	if len(pl.data()) != 1 || pl.body["has_more"] != true {
		t.Fatalf("provider keys page 1: %s", pl.raw)
	}
	if l := s.do("GET", "/provider-keys?limit=1&after="+pl.str("next_after"), "", 200).data(); len(l) != 1 || l[0]["id"] == pl.data()[0]["id"] {
		t.Fatalf("provider keys page 2: %v", l)
	}
	s.do("GET", "/provider-keys?after=pk_nope", "", 400)
	s.do("GET", "/provider-keys?status=gone", "", 200, true)
	s.do("POST", "/provider-keys/"+pkID+"/disable", `{"reason":"leaked"}`, 200)
	if l := s.do("GET", "/provider-keys?status=disabled", "", 200).data(); len(l) != 1 || l[0]["id"] != pkID {
		t.Fatalf("disabled provider keys: %v", l)
	}
	s.do("POST", "/provider-keys/"+pkID+"/enable", "", 200)
	s.do("POST", "/provider-keys/pk_nope/disable", `{}`, 404)
	s.do("POST", "/provider-keys/pk_nope/enable", `{}`, 404)
	s.do("POST", "/vault/rotate", "", 200)
	s.do("DELETE", "/provider-keys/"+pkID, "", 200)
	s.do("DELETE", "/provider-keys/pk_nope", "", 404)

	// Credits: top-up (idempotent), balance, ledger, multiplier, budgets.
	s.do("POST", "/accounts/"+acct+"/credits", `{"amount":"10.00","idempotency_key":"t-1"}`, 201)
	s.do("POST", "/accounts/"+acct+"/credits", `{"amount":"10.00","idempotency_key":"t-1"}`, 200)
	s.do("POST", "/accounts/"+acct+"/credits", `{"amount":"20.00","idempotency_key":"t-1"}`, 409)
	s.do("POST", "/accounts/"+acct+"/credits", `{"amount":"5.00","idempotency_key":"t-2"}`, 201)
	s.do("POST", "/accounts/"+acct+"/credits", `{"amount":"-1","idempotency_key":"t-3"}`, 400)
	s.do("POST", "/accounts/"+acct+"/credits", `{"amount":"1.00"}`, 400, true)
	s.do("POST", "/accounts/acct_nope/credits", `{"amount":"1.00","idempotency_key":"t-4"}`, 404)
	if b := s.do("GET", "/accounts/"+acct+"/credits", "", 200); b.str("balance_usd") != "15.00" {
		t.Fatalf("balance: %s", b.raw)
	}
	lp := s.do("GET", "/accounts/"+acct+"/ledger?limit=1", "", 200)
	if len(lp.data()) != 1 || lp.body["has_more"] != true {
		t.Fatalf("ledger page 1: %s", lp.raw)
	}
	if l := s.do("GET", "/accounts/"+acct+"/ledger?limit=1&after="+lp.str("next_after"), "", 200).data(); len(l) != 1 || l[0]["id"] == lp.data()[0]["id"] {
		t.Fatalf("ledger page 2 (after): %v", l)
	}
	s.do("GET", "/accounts/"+acct+"/ledger?before="+lp.str("next_after"), "", 200)
	s.do("GET", "/accounts/"+acct+"/ledger?before=x", "", 400, true)
	s.do("GET", "/accounts/"+acct+"/ledger?kind=top_up&key_id=key_nope&from=2020-01-01&to=2100-01-01T00:00:00Z&limit=1", "", 200)
	s.do("GET", "/accounts/"+acct+"/ledger?from=soon", "", 400)
	s.do("POST", "/accounts/"+acct+"/multiplier", `{"multiplier":"1.25"}`, 200)
	s.do("POST", "/accounts/"+acct+"/multiplier", `{"multiplier":"lots"}`, 400)
	s.do("GET", "/credits/verify", "", 200)
	s.do("POST", "/budgets", `{"scope":"account","scope_id":"`+acct+`","period":"daily","limit_usd":"5.00","alert_percents":[50,90]}`, 200)
	s.do("POST", "/budgets", `{"scope":"account","scope_id":"`+acct+`","period":"monthly","limit_usd":"100.00"}`, 200)
	s.do("POST", "/budgets", `{"scope":"key","scope_id":"`+newID+`","period":"daily","limit_usd":"1.00"}`, 200)
	s.do("POST", "/budgets", `{"scope":"account","scope_id":"`+acct+`","period":"daily","limit_usd":"lots"}`, 400)
	s.do("POST", "/budgets", `{"scope":"team","scope_id":"x","period":"daily","limit_usd":"1.00"}`, 400, true)
	bp := s.do("GET", "/budgets?limit=2", "", 200)
	if len(bp.data()) != 2 || bp.body["has_more"] != true {
		t.Fatalf("budgets page 1: %s", bp.raw)
	}
	if l := s.do("GET", "/budgets?limit=2&after="+url.QueryEscape(bp.str("next_after")), "", 200).data(); len(l) != 1 || l[0]["scope"] != "key" {
		t.Fatalf("budgets page 2: %v", l)
	}
	if l := s.do("GET", "/budgets?scope=account&scope_id="+acct+"&period=monthly", "", 200).data(); len(l) != 1 || l[0]["limit_usd"] != "100.00" {
		t.Fatalf("budgets filtered: %v", l)
	}
	s.do("GET", "/budgets?after=nonsense", "", 400)
	s.do("DELETE", "/budgets?scope=account&scope_id="+acct+"&period=monthly", "", 200)
	s.do("DELETE", "/budgets?scope=account&scope_id="+acct+"&period=monthly", "", 404)

	// Traffic, then the usage report (JSON and CSV).
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`
	if st, body, _ := call(t, "POST", g.base+"/chat/completions", g.key, chat); st != 200 {
		t.Fatalf("chat: %d %v", st, body)
	}
	g.usage() // flush
	rep := s.do("GET", "/usage/report?group_by=model,provider,day&account_id="+keys.DefaultAccountID, "", 200)
	if len(rep.data()) == 0 {
		t.Fatalf("usage report is empty: %s", rep.raw)
	}
	s.do("GET", "/usage/report?group_by=key,hour&from=2020-01-01&to=2020-01-02&model=gpt-4o-mini", "", 200)
	s.do("GET", "/usage/report?group_by=model&limit=1", "", 200)
	s.do("GET", "/usage/report?group_by=model&limit=1&after=1", "", 200)
	csv := s.do("GET", "/usage/report?group_by=model&format=csv", "", 200)
	if !strings.HasPrefix(csv.header.Get("Content-Type"), "text/csv") || !bytes.Contains(csv.raw, []byte("gpt-4o-mini")) {
		t.Fatalf("csv report: %s %s", csv.header.Get("Content-Type"), csv.raw)
	}
	s.do("GET", "/usage/report?group_by=colour", "", 400, true)
	s.do("GET", "/usage/report?from=2024-05-01&to=2024-04-01", "", 400)

	// The request log and body capture.
	capPath := "/accounts/" + keys.DefaultAccountID + "/capture"
	if c := s.do("GET", capPath, "", 200); c.body["enabled"] != false || c.str("retention") != "1w" {
		t.Fatalf("capture by default: %s", c.raw)
	}
	s.do("PUT", capPath, `{"enabled":true,"retention":"2w","max_bytes":65536}`, 200)
	s.do("PUT", capPath, `{"enabled":true,"retention":"soon"}`, 400)
	s.do("PUT", capPath, `{"enabled":true,"max_bytes":0}`, 400, true)
	s.do("PUT", capPath, `{"retention":"1d"}`, 400, true)
	s.do("PUT", "/accounts/acct_nope/capture", `{"enabled":false}`, 404)
	s.do("GET", "/accounts/acct_nope/capture", "", 404)

	// Browser origins (CORS) per account.
	corsPath := "/accounts/" + keys.DefaultAccountID + "/cors"
	if c := s.do("GET", corsPath, "", 200); len(c.body["origins"].([]any)) != 0 {
		t.Fatalf("cors by default: %s", c.raw)
	}
	s.do("PUT", corsPath, `{"origins":["https://app.example.com","http://localhost:5173"]}`, 200)
	s.do("PUT", corsPath, `{"origins":["https://*.example.com"]}`, 400)
	s.do("PUT", corsPath, `{}`, 400, true)
	s.do("PUT", "/accounts/acct_nope/cors", `{"origins":[]}`, 404)
	s.do("GET", "/accounts/acct_nope/cors", "", 404)

	// Trusted issuers of the token exchange.
	issDoc := issuerJSON("https://issuer.example")
	iss := s.do("POST", "/issuers", issDoc, 201)
	issID := iss.str("id")
	s.do("POST", "/issuers", issDoc, 409)
	s.do("POST", "/issuers", `{"issuer":"https://x.example","audiences":[],"rules":[]}`, 400)
	s.do("POST", "/issuers", `{"issuer":"https://x.example"}`, 400, true)
	if l := s.do("GET", "/issuers", "", 200); len(l.data()) != 1 {
		t.Fatalf("issuers: %s", l.raw)
	}
	s.do("GET", "/issuers/"+issID, "", 200)
	s.do("GET", "/issuers/iss_nope", "", 404)
	s.do("PUT", "/issuers/"+issID, issuerJSON("https://issuer2.example"), 200)
	s.do("PUT", "/issuers/iss_nope", issDoc, 404)
	s.do("PATCH", "/issuers/"+issID, `{"clock_skew":"1m"}`, 200)
	s.do("PATCH", "/issuers/"+issID, `{"clock_skew":"1h"}`, 400)
	s.do("DELETE", "/issuers/"+issID, "", 200)
	s.do("DELETE", "/issuers/"+issID, "", 404)
	if st, body, _ := call(t, "POST", g.base+"/chat/completions", g.key, chat); st != 200 {
		t.Fatalf("chat: %d %v", st, body)
	}
	g.usage()
	if err := g.app.Captures.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rl := s.do("GET", "/requests?limit=1", "", 200)
	if len(rl.data()) != 1 || rl.body["has_more"] != true || rl.data()[0]["captured"] != true {
		t.Fatalf("request log page 1: %s", rl.raw)
	}
	if l := s.do("GET", "/requests?limit=1&after="+rl.str("next_after"), "", 200).data(); len(l) != 1 || l[0]["request_id"] == rl.data()[0]["request_id"] {
		t.Fatalf("request log page 2: %v", l)
	}
	s.do("GET", "/requests?before="+rl.str("next_after"), "", 200)
	s.do("GET", "/requests?account="+keys.DefaultAccountID+"&model=gpt-4o-mini&provider=primary&status=2xx&from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", "", 200)
	s.do("GET", "/requests?status=fine", "", 400)
	s.do("GET", "/requests?from=yesterday", "", 400, true)
	s.do("GET", "/requests?after=nonsense", "", 400)
	if one := s.do("GET", "/requests/"+rl.data()[0]["request_id"].(string), "", 200); one.str("capture", "request_body") != chat {
		t.Fatalf("request with its capture: %s", one.raw)
	}
	s.do("GET", "/requests/req_nope", "", 404)

	// Deployments.
	deps := s.do("GET", "/deployments", "", 200).data()
	if len(deps) != 2 {
		t.Fatalf("deployments: %v", deps)
	}
	dp := s.do("GET", "/deployments?limit=1", "", 200)
	if dp.body["has_more"] != true {
		t.Fatalf("deployments page 1: %s", dp.raw)
	}
	if l := s.do("GET", "/deployments?after="+url.QueryEscape(dp.str("next_after")), "", 200).data(); len(l) != 1 || l[0]["id"] == dp.data()[0]["id"] {
		t.Fatalf("deployments page 2: %v", l)
	}
	if l := s.do("GET", "/deployments?provider=primary&model=gpt-4o&breaker=closed", "", 200).data(); len(l) != 1 || l[0]["model"] != "mock-large" {
		t.Fatalf("deployments filtered: %v", l)
	}
	s.do("GET", "/deployments?breaker=melted", "", 200, true)

	// The audit log: pages, filters, verification.
	ap := s.do("GET", "/audit?limit=2", "", 200)
	s.do("GET", "/audit?from=2020-01-01&to=2100-01-01&limit=1", "", 200)
	if len(ap.data()) != 2 || ap.body["has_more"] != true {
		t.Fatalf("audit page 1: %s", ap.raw)
	}
	a2 := s.do("GET", "/audit?limit=2&after="+ap.str("next_after"), "", 200).data()
	if len(a2) != 2 || a2[0]["seq"].(float64) >= ap.data()[1]["seq"].(float64) {
		t.Fatalf("audit page 2: %v", a2)
	}
	s.do("GET", "/audit?before="+ap.str("next_after")+"&limit=1", "", 200)
	if l := s.do("GET", "/audit?kind=key.&subject="+newID+"&since=2020-01-01T00:00:00Z", "", 200).data(); len(l) == 0 {
		t.Fatal("no audit events for the rotated key")
	}
	s.do("GET", "/audit?account_id="+acct, "", 200)
	s.do("GET", "/audit?limit=0", "", 400, true)
	s.do("GET", "/audit?since=yesterday", "", 400, true)
	if v := s.do("GET", "/audit/verify", "", 200); v.body["ok"] != true {
		t.Fatalf("audit verify: %s", v.raw)
	}
	head := s.do("GET", "/audit/head", "", 200)
	if me := s.do("GET", "/me", "", 200); me.body["role"] != "owner" {
		t.Fatalf("GET /me of the session's admin key: %s", me.raw)
	}
	if v := s.do("GET", "/audit/verify?head="+url.QueryEscape(string(head.raw)), "", 200); v.body["ok"] != true || v.body["head_checked"] != true {
		t.Fatalf("audit verify against its head: %s", v.raw)
	}
	s.do("GET", "/audit/verify?head=nonsense", "", 400, true)
	if ex := s.do("GET", "/audit/export?since=1&limit=2", "", 200); strings.Count(string(ex.raw), "\n") != 2 || ex.header.Get("X-Xroute-Next-Since") != "3" {
		t.Fatalf("audit export: %s (next since %q)", ex.raw, ex.header.Get("X-Xroute-Next-Since"))
	}
	s.do("GET", "/audit/export?since=x", "", 400, true)
	s.do("POST", "/cache/purge", `{"all":true}`, 400) // no model caches here: cache_off
	s.do("GET", "/cache/models", "", 400)
	s.do("GET", "/cache/models/gpt-4o-mini", "", 400)
	s.do("PUT", "/cache/models/gpt-4o-mini", `{"enabled":true}`, 400)
	s.do("DELETE", "/cache/models/gpt-4o-mini", "", 400)

	// Who may call: no key, a caller key, a revoked admin key.
	s.doKey("", "GET", "/keys", "", 401, false)
	s.doKey(g.key, "GET", "/keys", "", 403, false)
	s.doKey(g.key, "POST", "/accounts", `{"name":"x"}`, 403, false)
	s.doKey("xra-not-a-real-key-000000000000000000", "GET", "/deployments", "", 401, false)
	s.doKey(secret, "GET", "/accounts/"+acct, "", 401, false) // revoked caller key

	var missed []string
	for op := range documented(s.doc) {
		method, path, _ := strings.Cut(op, " ")
		if !s.seen[method+" "+strings.TrimPrefix(path, adminPrefix)] {
			missed = append(missed, op)
		}
	}
	sort.Strings(missed)
	if len(missed) > 0 {
		t.Errorf("operations the session did not exercise: %v", missed)
	}
	t.Log(fmt.Sprintf("%d admin calls validated against openapi.json", s.calls))
}
