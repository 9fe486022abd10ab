package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/loadtest/mock"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":8}`

func TestVaultProviderKeysServeAndBadOnesAreDisabled(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{noProviderKey: true})
	admin := g.adminKey(t)
	base := g.srv.URL + "/admin/v1"

	// No key anywhere: the upstream refuses the gateway.
	if st, body, _ := call(t, "POST", g.base+"/chat/completions", g.key, chatBody); st != 502 || errCode(body) != "upstream_auth_failed" {
		t.Fatalf("without a provider key: %d %v", st, body)
	}
	st, good, _ := call(t, "POST", base+"/provider-keys", admin, `{"provider":"primary","name":"main","key":"`+providerKey+`","weight":1}`)
	if st != 201 || good["hint"] == "" || strings.Contains(good["hint"].(string), providerKey[3:12]) {
		t.Fatalf("add provider key: %d %v", st, good)
	}
	if st, _, _ := call(t, "POST", g.base+"/chat/completions", g.key, chatBody); st != 200 {
		t.Fatalf("with a vault key: %d", st)
	}
	// A wrong key with a heavy weight: the provider answers it with 401;
	// once refused in key_failure_threshold requests (of two callers) and
	// by its probe, it leaves the pool, is disabled and audited, and
	// requests keep working.
	st, bad, _ := call(t, "POST", base+"/provider-keys", admin, `{"provider":"primary","name":"typo","key":"sk-wrong-key-0000000000000000","weight":1000}`)
	if st != 201 {
		t.Fatalf("add bad key: %d %v", st, bad)
	}
	other, _, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	i := 0
	if !testutil.Wait(testutil.Timeout, func() bool {
		call(t, "POST", g.base+"/chat/completions", []string{g.key, other}[i%2], chatBody)
		i++
		_, list, _ := call(t, "GET", base+"/provider-keys?provider=primary", admin, "")
		for _, d := range list["data"].([]any) {
			m := d.(map[string]any)
			statuses[m["name"].(string)] = m["status"].(string)
			if _, has := m["key"]; has {
				t.Fatal("a provider key listing must not carry the key")
			}
		}
		return statuses["typo"] == "disabled"
	}) {
		t.Fatalf("the bad key was never disabled: %v", statuses)
	}
	if statuses["main"] != "active" {
		t.Fatalf("statuses after the 401s: %v", statuses)
	}
	for i := 0; i < 5; i++ {
		if st, _, _ := call(t, "POST", g.base+"/chat/completions", g.key, chatBody); st != 200 {
			t.Fatalf("after the bad key left: %d", st)
		}
	}
	_, audit, _ := call(t, "GET", base+"/audit?kind=provider_key.", admin, "")
	kinds := map[string]int{}
	for _, d := range audit["data"].([]any) {
		kinds[d.(map[string]any)["kind"].(string)]++
	}
	if kinds["provider_key.added"] != 2 || kinds["provider_key.disabled"] != 1 {
		t.Fatalf("audit: %v", kinds)
	}
	// Vault rotation re-encrypts online; the pool keeps working.
	st, rot, _ := call(t, "POST", base+"/vault/rotate", admin, "")
	if st != 200 || rot["active_term"].(float64) != 2 {
		t.Fatalf("vault rotate: %d %v", st, rot)
	}
	if st, _, _ := call(t, "POST", g.base+"/chat/completions", g.key, chatBody); st != 200 {
		t.Fatalf("after vault rotation: %d", st)
	}
	_, list, _ := call(t, "GET", base+"/provider-keys?provider=primary", admin, "")
	for _, d := range list["data"].([]any) {
		if d.(map[string]any)["term"].(float64) != 2 {
			t.Fatalf("key not re-encrypted under term 2: %v", d)
		}
	}
	if st, v, _ := call(t, "GET", base+"/audit/verify", admin, ""); st != 200 || v["ok"] != true {
		t.Fatalf("audit verify: %d %v", st, v)
	}
	if st, body, _ := call(t, "POST", base+"/provider-keys", admin, `{"provider":"nope","name":"x","key":"sk-aaaaaaaaaaaaaaaaaaaa"}`); st != 400 || body["error"].(map[string]any)["param"] != "provider" {
		t.Fatalf("unknown provider: %d %v", st, body)
	}
}

func TestRateLimitsAndHeaders(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	ctx := context.Background()
	rpm2, _, _ := g.app.Keys.Create(ctx, keys.CreateParams{Name: "rpm", RPM: 2})
	tpm, _, _ := g.app.Keys.Create(ctx, keys.CreateParams{Name: "tpm", TPM: 100})

	for i := 0; i < 2; i++ {
		st, _, h := call(t, "POST", g.base+"/chat/completions", rpm2, chatBody)
		if st != 200 || h.Get("x-ratelimit-limit-requests") != "2" || h.Get("x-ratelimit-remaining-requests") != strconv.Itoa(1-i) || h.Get("x-ratelimit-reset-requests") == "" {
			t.Fatalf("request %d: %d %v", i, st, h)
		}
	}
	st, body, h := call(t, "POST", g.base+"/chat/completions", rpm2, chatBody)
	if st != 429 || errCode(body) != "rate_limit_exceeded" || h.Get("Retry-After") == "" || h.Get("x-ratelimit-remaining-requests") != "0" {
		t.Fatalf("third request: %d %v %v", st, body, h)
	}
	// The reset header parses as a Go duration, as go-openai expects.
	if _, err := time.ParseDuration(h.Get("x-ratelimit-reset-requests")); err != nil {
		t.Fatalf("reset header %q: %v", h.Get("x-ratelimit-reset-requests"), err)
	}

	big := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5000}`
	st, body, h = call(t, "POST", g.base+"/chat/completions", tpm, big)
	if st != 429 || errCode(body) != "tokens_exceed_limit" || h.Get("x-should-retry") != "false" {
		t.Fatalf("impossible TPM: %d %v %v", st, body, h)
	}
	// A small request fits; the reservation is corrected by real usage.
	st, _, h = call(t, "POST", g.base+"/chat/completions", tpm, chatBody)
	if st != 200 || h.Get("x-ratelimit-limit-tokens") != "100" {
		t.Fatalf("small request under TPM: %d %v", st, h)
	}
	if g.primary.Stats().Chat != 3 {
		t.Fatalf("refused requests must not reach the upstream; it saw %d", g.primary.Stats().Chat)
	}
}

func TestConcurrencyCap(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{Latency: 300 * time.Millisecond}})
	one, _, _ := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "one", MaxConcurrent: 1})
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i], _, _ = call(t, "POST", g.base+"/chat/completions", one, chatBody)
		}(i)
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[200] < 1 || counts[429] < 1 || counts[200]+counts[429] != 4 {
		t.Fatalf("statuses %v", statuses)
	}
}

func TestFailedAuthIsThrottledPerIP(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) { c.Auth.FailedAuthBurst = 5 }})
	var last int
	var hdr http.Header
	for i := 0; i < 12; i++ {
		last, _, hdr = call(t, "GET", g.base+"/models", keys.Generate(), "")
	}
	if last != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("after a burst of bad keys: %d %v", last, hdr)
	}
}

// TestHoleBruteForceResetBySuccess: one successful authentication reset
// the address's failure count: 267 guesses with a valid key interleaved,
// none blocked. Failures now add up whatever succeeds in between; the
// valid key is served throughout.
func TestHoleBruteForceResetBySuccess(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	blocked := 0
	for i := 0; i < 267; i++ {
		if st, _, _ := call(t, "GET", g.base+"/models", keys.Generate(), ""); st == http.StatusTooManyRequests {
			blocked++
		}
		if st, body, _ := call(t, "GET", g.base+"/models", g.key, ""); st != http.StatusOK {
			t.Fatalf("the valid key, after guess %d: %d %v", i+1, st, body)
		}
	}
	if blocked < 267-10 {
		t.Fatalf("%d of 267 guesses blocked (burst 10)", blocked)
	}
}

// TestHoleNeighbourLockout: 11 bad keys from one address made that
// address's valid admin key get 429 (everyone behind a shared NAT locked
// out). Keys that verify are served; the unknown ones keep getting 429.
func TestHoleNeighbourLockout(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	for i := 0; i < 11; i++ {
		call(t, "GET", g.base+"/models", keys.Generate(), "")
	}
	if st, body, _ := call(t, "GET", g.srv.URL+"/admin/v1/keys", admin, ""); st != http.StatusOK {
		t.Fatalf("the admin key from a blocked address: %d %v", st, body)
	}
	if st, body, _ := call(t, "GET", g.base+"/models", g.key, ""); st != http.StatusOK {
		t.Fatalf("a caller key from a blocked address: %d %v", st, body)
	}
	if st, body, h := call(t, "GET", g.base+"/models", keys.Generate(), ""); st != http.StatusTooManyRequests || errCode(body) != "too_many_auth_failures" || h.Get("Retry-After") == "" {
		t.Fatalf("an unknown key from a blocked address: %d %v", st, body)
	}
}

// TestHoleGuessingBurstRaisesNoAnomaly: a burst of unknown keys from one
// address was only throttled; it is an anomaly (audited and sent like the
// others), naming the address since no key is involved.
func TestHoleGuessingBurstRaisesNoAnomaly(t *testing.T) {
	t.Parallel()
	got := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		got <- m
	}))
	defer hook.Close()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Auth.FailedAuthBurst = 5
		c.Anomaly.Action = "webhook"
		c.Anomaly.Webhook = hook.URL
	}})
	for i := 0; i < 8; i++ {
		call(t, "GET", g.base+"/models", keys.Generate(), "")
	}
	select {
	case m := <-got:
		if m["kind"] != auditlog.AlertAuthGuessing || m["ip"] != "127.0.0.1" || m["key_id"] != "" {
			t.Fatalf("webhook payload %v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no anomaly for a burst of guesses")
	}
	select {
	case m := <-got:
		t.Fatalf("a second alert for the same burst: %v", m)
	default:
	}
	events, err := g.app.Audit.List(context.Background(), auditlog.Filter{Subject: "ip:127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != "anomaly."+auditlog.AlertAuthGuessing {
		t.Fatalf("audit: %+v", events)
	}
}

func TestAnomalySuspendsKey(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Anomaly.AuthFailures = 5
		c.Anomaly.Action = "suspend"
		c.Auth.FailedAuthBurst = 1000
	}})
	ctx := context.Background()
	plain, k, _ := g.app.Keys.Create(ctx, keys.CreateParams{Name: "office", AllowedCIDRs: []string{"10.0.0.0/8"}})
	for i := 0; i < 6; i++ { // used from outside its allowlist, again and again
		call(t, "GET", g.base+"/models", plain, "")
	}
	testutil.Eventually(t, "the key to be suspended after a burst of 403s", func() bool {
		got, _ := g.app.Keys.Get(ctx, k.ID)
		return got.SuspendedAt != nil
	})
	if got, _ := g.app.Keys.Get(ctx, k.ID); !strings.Contains(got.SuspendReason, "auth_failures") {
		t.Fatalf("suspend reason %q", got.SuspendReason)
	}
	// The audit events are written just after the suspension: wait for them.
	kinds := map[string]bool{}
	if !testutil.Wait(testutil.Timeout, func() bool {
		events, err := g.app.Audit.List(ctx, auditlog.Filter{Subject: k.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			kinds[e.Kind] = true
		}
		return kinds["anomaly.auth_failures"] && kinds["key.suspended"] && kinds["key.created"]
	}) {
		t.Fatalf("audit trail: %v", kinds)
	}
}

func TestAnomalyWebhook(t *testing.T) {
	t.Parallel()
	got := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		got <- m
	}))
	defer hook.Close()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Anomaly.AuthFailures = 3
		c.Anomaly.Action = "webhook"
		c.Anomaly.Webhook = hook.URL
	}})
	plain, k, _ := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "office", AllowedCIDRs: []string{"10.0.0.0/8"}})
	for i := 0; i < 4; i++ {
		call(t, "GET", g.base+"/models", plain, "")
	}
	select {
	case m := <-got:
		if m["kind"] != "auth_failures" || m["key_id"] != k.ID {
			t.Fatalf("webhook payload %v", m)
		}
		if s, _ := json.Marshal(m); strings.Contains(string(s), plain) {
			t.Fatal("webhook payload carries the key")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook call")
	}
	if k2, _ := g.app.Keys.Get(context.Background(), k.ID); k2.SuspendedAt != nil {
		t.Fatal("webhook action must not suspend")
	}
}
