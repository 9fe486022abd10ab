package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
)

// A hit counts against RPM but, unless cache.count_tpm, 0 tokens against
// TPM: a key whose TPM admits about two answers a minute gets many hits
// (and with count_tpm it does not), and its RPM still stops it.
func TestCacheHitLimits(t *testing.T) {
	t.Parallel()
	limited := func(cg *cacheGateway) string {
		k, _, err := cg.app.Keys.Create(context.Background(), keys.CreateParams{Name: "limited", TPM: 80, RPM: 6})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	status := func(cg *cacheGateway, k string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, cg.srv.URL+"/v1/chat/completions", strings.NewReader(cachedChat))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("x-xroute-cache")
	}
	t.Run("hits count 0 tokens, RPM still counts", func(t *testing.T) {
		cg := newCacheGateway(t, config.ModelCache{})
		k := limited(cg)
		for i := 0; i < 6; i++ {
			if st, res := status(cg, k); st != http.StatusOK || (i == 0) != (res == "miss") {
				t.Fatalf("request %d: %d %q", i+1, st, res)
			}
		}
		if st, _ := status(cg, k); st != http.StatusTooManyRequests {
			t.Fatalf("the 7th request in a minute with RPM 6: %d", st)
		}
	})
	t.Run("count_tpm counts a hit's tokens", func(t *testing.T) {
		cg := newCacheGateway(t, config.ModelCache{}, func(c *config.Config) { c.Cache.CountTPM = true })
		k := limited(cg)
		refused := false
		for i := 0; i < 6 && !refused; i++ {
			st, _ := status(cg, k)
			refused = st == http.StatusTooManyRequests
		}
		if !refused {
			t.Fatal("with count_tpm, six hits of ~27 tokens passed a TPM of 80")
		}
	})
}

// TestCacheSavingsInReports: a hit records what it would have cost at
// full price minus what it was billed, and the usage report sums hits,
// the hit ratio and the money saved per account and model.
func TestCacheSavingsInReports(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{}, func(c *config.Config) { c.Cache.PriceFraction = 0.25 })
	miss := cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	var hits []rawResponse
	for range 2 {
		hits = append(hits, cg.post(t, cg.key, "/v1/chat/completions", cachedChat))
	}
	other := cg.otherAccount(t)
	cg.post(t, other, "/v1/chat/completions", cachedChat) // the other account's own miss
	cg.usage()                                            // every record written before the report

	full := cg.usageFor(miss.Header.Get("x-request-id")).CostNano
	if full <= 0 {
		t.Fatalf("the miss cost %d", full)
	}
	if r := cg.usageFor(miss.Header.Get("x-request-id")); r.ResponseCacheSavedNano != 0 {
		t.Fatalf("the miss saved %d, want 0", r.ResponseCacheSavedNano)
	}
	billed := int64(float64(full) * 0.25)
	for _, h := range hits {
		r := cg.usageFor(h.Header.Get("x-request-id"))
		if r.CostNano != billed || r.ResponseCacheSavedNano != full-billed {
			t.Fatalf("hit billed %d saved %d, want %d and %d (full price %d)", r.CostNano, r.ResponseCacheSavedNano, billed, full-billed, full)
		}
	}

	admin := cg.adminKey(t)
	status, rep, _ := call(t, "GET", cg.srv.URL+"/admin/v1/usage/report?group_by=account,model", admin, "")
	if status != http.StatusOK {
		t.Fatalf("report: %d %v", status, rep)
	}
	rows, _ := rep["data"].([]any)
	got := map[string]map[string]any{}
	for _, r := range rows {
		m := r.(map[string]any)
		got[m["account_id"].(string)+"/"+m["model"].(string)] = m
	}
	mine := got[keys.DefaultAccountID+"/gpt-4o-mini"]
	if mine == nil || len(got) != 2 {
		t.Fatalf("report rows %v", rows)
	}
	want := map[string]any{"requests": 3.0, "cache_hits": 2.0, "response_cache_hit_ratio": 0.6667,
		"response_cache_saved_nano": float64(2 * (full - billed)), "cost_nano": float64(full + 2*billed)}
	for k, v := range want {
		if mine[k] != v {
			t.Errorf("%s = %v, want %v (row %v)", k, mine[k], v, mine)
		}
	}
	for k, r := range got {
		if k != keys.DefaultAccountID+"/gpt-4o-mini" && (r["cache_hits"] != 0.0 || r["response_cache_hit_ratio"] != 0.0 || r["response_cache_saved_nano"] != 0.0) {
			t.Errorf("the other account's row %v shows savings", r)
		}
	}
}

// TestCacheKeyPolicy: a key's cache policy is set through the admin API
// at creation and update, kept with the key, and narrows the model's.
func TestCacheKeyPolicy(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	admin := cg.adminKey(t)
	u := cg.srv.URL + "/admin/v1/keys"

	st, created, _ := call(t, "POST", u, admin, `{"name":"quiet","cache":{"enabled":false}}`)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, created)
	}
	id, plain := created["id"].(string), created["key"].(string)
	if c := created["cache"].(map[string]any); c["enabled"] != false {
		t.Fatalf("created key's cache %v", c)
	}
	if m := created["metadata"].(map[string]any); m["cache"] != "off" {
		t.Fatalf("created key's metadata %v", m)
	}
	for range 2 {
		if r := cg.post(t, plain, "/v1/chat/completions", cachedChat); cacheResult(r) != "bypass" {
			t.Fatalf("a key with the cache off: %q", cacheResult(r))
		}
	}

	// Bad values are refused in the admin API's shape, naming the field.
	for _, body := range []string{`{"cache":{"ttl":"soon"}}`, `{"cache":{"ttl":"-1m"}}`, `{"cache":{"max_entry_bytes":-1}}`, `{}`} {
		if st, out, _ := call(t, "PATCH", u+"/"+id, admin, body); st != http.StatusBadRequest {
			t.Fatalf("PATCH %s: %d %v", body, st, out)
		}
	}
	if st, out, _ := call(t, "POST", u, admin, `{"name":"bad","metadata":{"cache_ttl":"forever"}}`); st != http.StatusBadRequest {
		t.Fatalf("create with a bad cache_ttl: %d %v", st, out)
	}

	// On again, with entries too small for any answer: looked up, never stored.
	st, upd, _ := call(t, "PATCH", u+"/"+id, admin, `{"cache":{"enabled":true,"ttl":"90s","max_entry_bytes":10}}`)
	if st != http.StatusOK {
		t.Fatalf("update: %d %v", st, upd)
	}
	if c := upd["cache"].(map[string]any); c["enabled"] != true || c["ttl"] != "1m30s" || c["max_entry_bytes"] != 10.0 {
		t.Fatalf("updated cache %v", c)
	}
	for range 2 {
		if r := cg.post(t, plain, "/v1/chat/completions", cachedChat); cacheResult(r) != "miss" {
			t.Fatalf("a key with a 10-byte entry bound: %q", cacheResult(r))
		}
	}
	// Back to the model's size (ttl kept): the answer is stored and hit.
	if st, upd, _ = call(t, "PATCH", u+"/"+id, admin, `{"cache":{"max_entry_bytes":0}}`); st != http.StatusOK || upd["cache"].(map[string]any)["ttl"] != "1m30s" {
		t.Fatalf("update: %d %v", st, upd)
	}
	cg.post(t, plain, "/v1/chat/completions", cachedChat)
	if r := cg.post(t, plain, "/v1/chat/completions", cachedChat); cacheResult(r) != "hit" {
		t.Fatalf("after the bound was lifted: %q", cacheResult(r))
	}
	// The key as read back carries its policy.
	if _, got, _ := call(t, "GET", u+"/"+id, admin, ""); got["cache"].(map[string]any)["enabled"] != true {
		t.Fatalf("read back %v", got["cache"])
	}
}

// TestCacheModelPolicyAdmin: a model's policy set through the admin API
// replaces its config at once, and DELETE returns to the config.
func TestCacheModelPolicyAdmin(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	admin := cg.adminKey(t)
	u := cg.srv.URL + "/admin/v1/cache/models/"

	st, got, _ := call(t, "GET", u+"gpt-4o-mini", admin, "")
	if st != http.StatusOK || got["source"] != "config" || got["enabled"] != true || got["scope"] != "account" || got["ttl"] != "1h0m0s" {
		t.Fatalf("GET: %d %v", st, got)
	}
	// Off at run time: no lookup, no header.
	if st, got, _ = call(t, "PUT", u+"gpt-4o-mini", admin, `{"enabled":false}`); st != http.StatusOK || got["source"] != "admin" || got["enabled"] != false {
		t.Fatalf("PUT off: %d %v", st, got)
	}
	for range 2 {
		if r := cg.post(t, cg.key, "/v1/chat/completions", cachedChat); cacheResult(r) != "" {
			t.Fatalf("a model turned off: x-xroute-cache %q", cacheResult(r))
		}
	}
	// On again, shared by every account: another account's identical
	// request is a hit.
	if st, got, _ = call(t, "PUT", u+"gpt-4o-mini", admin, `{"enabled":true,"scope":"global","ttl":"5m"}`); st != http.StatusOK || got["scope"] != "global" || got["ttl"] != "5m0s" {
		t.Fatalf("PUT global: %d %v", st, got)
	}
	other := cg.otherAccount(t)
	cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	if r := cg.post(t, other, "/v1/chat/completions", cachedChat); cacheResult(r) != "hit" {
		t.Fatalf("global scope set at run time: another account's request %q", cacheResult(r))
	}
	// The list shows it.
	if st, list, _ := call(t, "GET", cg.srv.URL+"/admin/v1/cache/models", admin, ""); st != http.StatusOK || !strings.Contains(fmt.Sprint(list["data"]), "scope:global") {
		t.Fatalf("list: %d %v", st, list)
	}
	// Refusals: unknown model, bad values.
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"nope", `{"enabled":true}`, http.StatusNotFound},
		{"gpt-4o-mini", `{"scope":"everyone"}`, http.StatusBadRequest},
		{"gpt-4o-mini", `{"ttl":"0s"}`, http.StatusBadRequest},
		{"gpt-4o-mini", `{"max_entry_bytes":0}`, http.StatusBadRequest},
		{"gpt-4o-mini", `{"colour":"red"}`, http.StatusBadRequest},
	} {
		if st, out, _ := call(t, "PUT", u+tc.path, admin, tc.body); st != tc.status {
			t.Fatalf("PUT %s %s: %d %v, want %d", tc.path, tc.body, st, out, tc.status)
		}
	}
	// DELETE: the config applies again (account scope: the other
	// account misses).
	if st, got, _ = call(t, "DELETE", u+"gpt-4o-mini", admin, ""); st != http.StatusOK || got["source"] != "config" || got["scope"] != "account" {
		t.Fatalf("DELETE: %d %v", st, got)
	}
	cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	if r := cg.post(t, other, "/v1/chat/completions", cachedChat); cacheResult(r) != "miss" {
		t.Fatalf("after DELETE: %q", cacheResult(r))
	}
}
