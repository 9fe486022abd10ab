package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
)

// Issue 20: the response cache.

// cacheGateway is the harness with the response cache on for gpt-4o-mini
// (pol) and list prices, counting the calls that reach the upstream.
type cacheGateway struct {
	*gateway
	upstream atomic.Int64
	lastPath atomic.Value // the path of the last call that reached the upstream
}

func newCacheGateway(t *testing.T, pol config.ModelCache, mutate ...func(*config.Config)) *cacheGateway {
	t.Helper()
	cg := &cacheGateway{}
	pol.Enabled = true
	cg.gateway = newGateway(t, gwOptions{
		wrapPrimary: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					cg.upstream.Add(1)
					cg.lastPath.Store(r.URL.Path)
				}
				h.ServeHTTP(w, r)
			})
		},
		mutate: func(c *config.Config) {
			listPriced(c)
			c.Models[0].Cache = &pol
			for _, m := range mutate {
				m(c)
			}
		},
	})
	if _, _, err := cg.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 1e12, "cache-test", "test"); err != nil {
		t.Fatal(err)
	}
	return cg
}

// otherAccount is a caller key of a second account with credits.
func (cg *cacheGateway) otherAccount(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	acct, err := cg.app.Keys.CreateAccount(ctx, "other-"+strings.ReplaceAll(t.Name(), "/", "-"), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cg.app.Ledger.TopUp(ctx, acct.ID, 1e12, "cache-test-other", "test"); err != nil {
		t.Fatal(err)
	}
	k, _, err := cg.app.Keys.Create(ctx, keys.CreateParams{Name: "other", AccountID: acct.ID})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// post sends body to path with key (and header pairs), as the path's own
// clients do.
func (cg *cacheGateway) post(t *testing.T, key, path, body string, hdr ...string) rawResponse {
	t.Helper()
	r := sendModel(t, cg.srv.URL, key, path, body, hdr...)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", path, r.StatusCode, r.body)
	}
	return r
}

func cacheResult(r rawResponse) string { return r.Header.Get("x-xroute-cache") }

const cachedChat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":12}`

// chatText is a chat.completion's text.
func chatText(body string) string { return gjson.Get(body, "choices.0.message.content").String() }

func TestCacheSecondIdenticalRequestHits(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	first := cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	if cacheResult(first) != "miss" || first.Header.Get("Age") != "" {
		t.Fatalf("first request: cache %q, Age %q", cacheResult(first), first.Header.Get("Age"))
	}
	// The same question, keys in another order, with a user and stream
	// false: the same entry.
	same := `{"max_tokens":12,"user":"someone","stream":false,"messages":[{"content":"What is the capital of France?","role":"user"}],"model":"gpt-4o-mini"}`
	second := cg.post(t, cg.key, "/v1/chat/completions", same)
	if cacheResult(second) != "hit" || second.Header.Get("Age") == "" {
		t.Fatalf("second request: cache %q, Age %q", cacheResult(second), second.Header.Get("Age"))
	}
	if n := cg.upstream.Load(); n != 1 {
		t.Fatalf("upstream called %d times, want 1", n)
	}
	if chatText(first.body) == "" || chatText(first.body) != chatText(second.body) {
		t.Fatalf("hit answered %q, first answer was %q", chatText(second.body), chatText(first.body))
	}
	if gjson.Get(second.body, "usage.completion_tokens").Int() != gjson.Get(first.body, "usage.completion_tokens").Int() {
		t.Fatalf("hit usage %s, first %s", gjson.Get(second.body, "usage"), gjson.Get(first.body, "usage"))
	}
	// A different question is a miss.
	other := strings.Replace(cachedChat, "France", "Spain", 1)
	if r := cg.post(t, cg.key, "/v1/chat/completions", other); cacheResult(r) != "miss" {
		t.Fatalf("another question: cache %q", cacheResult(r))
	}
}

func TestCacheBillingOfAHit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fraction float64
	}{{"free by default", 0}, {"a tenth of the price", 0.1}} {
		t.Run(tc.name, func(t *testing.T) {
			cg := newCacheGateway(t, config.ModelCache{}, func(c *config.Config) { c.Cache.PriceFraction = tc.fraction })
			miss := cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
			hit := cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
			mr := cg.usageFor(miss.Header.Get("x-request-id"))
			hr := cg.usageFor(hit.Header.Get("x-request-id"))
			if mr.CostNano <= 0 {
				t.Fatalf("the miss cost %d", mr.CostNano)
			}
			if hr.PromptTokens != mr.PromptTokens || hr.CompletionTokens != mr.CompletionTokens {
				t.Fatalf("hit recorded %d+%d tokens, the miss %d+%d", hr.PromptTokens, hr.CompletionTokens, mr.PromptTokens, mr.CompletionTokens)
			}
			if want := int64(float64(mr.CostNano) * tc.fraction); hr.CostNano != want {
				t.Fatalf("hit cost %d, want %d (%.1f of %d)", hr.CostNano, want, tc.fraction, mr.CostNano)
			}
			if !hr.CacheHit || mr.CacheHit {
				t.Fatalf("cache_hit: the miss %v, the hit %v", mr.CacheHit, hr.CacheHit)
			}
			if hr.Status != http.StatusOK || hr.Provider != mr.Provider {
				t.Fatalf("hit record: status %d provider %q", hr.Status, hr.Provider)
			}
			// Nothing stays held once both are settled.
			if _, reserved := balance(t, cg.gateway); reserved != 0 {
				t.Fatalf("reserved %d after both requests", reserved)
			}
		})
	}
}

func TestCacheAccountScopeIsolation(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	other := cg.otherAccount(t)
	a := cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	b := cg.post(t, other, "/v1/chat/completions", cachedChat)
	if cacheResult(a) != "miss" || cacheResult(b) != "miss" {
		t.Fatalf("two accounts, same prompt: %q then %q; the second must not hit the first's entry", cacheResult(a), cacheResult(b))
	}
	if n := cg.upstream.Load(); n != 2 {
		t.Fatalf("upstream called %d times, want 2", n)
	}
	// Each account hits its own.
	for _, k := range []string{cg.key, other} {
		if r := cg.post(t, k, "/v1/chat/completions", cachedChat); cacheResult(r) != "hit" {
			t.Fatalf("an account's own entry: %q", cacheResult(r))
		}
	}
}

func TestCacheGlobalScopeSharesAcrossAccounts(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{Scope: "global"})
	other := cg.otherAccount(t)
	cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	if r := cg.post(t, other, "/v1/chat/completions", cachedChat); cacheResult(r) != "hit" {
		t.Fatalf("global scope, another account: %q", cacheResult(r))
	}
}

// A revoked key's account keeps its entries to itself: another key of the
// same account hits them, a key of another account does not.
func TestCacheRevokedKeysAccountHitsOnlyItsOwn(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	ctx := context.Background()
	other := cg.otherAccount(t)
	cg.post(t, other, "/v1/chat/completions", cachedChat) // the other account's entry
	first, k1, err := cg.app.Keys.Create(ctx, keys.CreateParams{Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	cg.post(t, first, "/v1/chat/completions", strings.Replace(cachedChat, "France", "Italy", 1))
	if err := cg.app.Keys.Revoke(ctx, k1.ID, "test"); err != nil {
		t.Fatal(err)
	}
	second, _, err := cg.app.Keys.Create(ctx, keys.CreateParams{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if r := cg.post(t, second, "/v1/chat/completions", strings.Replace(cachedChat, "France", "Italy", 1)); cacheResult(r) != "hit" {
		t.Fatalf("the account's own entry after its key was revoked: %q", cacheResult(r))
	}
	if r := cg.post(t, second, "/v1/chat/completions", cachedChat); cacheResult(r) != "miss" {
		t.Fatalf("another account's entry: %q", cacheResult(r))
	}
}

func TestCacheBypassRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		pol     config.ModelCache
		body    string
		hdr     []string
		want    []string // x-xroute-cache of two identical requests
		upCalls int64
	}{
		{"n>1 never cached", config.ModelCache{}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"n":2}`, nil, []string{"bypass", "bypass"}, 2},
		{"temperature>0 without opt-in", config.ModelCache{}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.7}`, nil, []string{"bypass", "bypass"}, 2},
		{"temperature>0 with opt-in", config.ModelCache{Sampled: true}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.7}`, nil, []string{"miss", "hit"}, 1},
		{"temperature 0", config.ModelCache{}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0}`, nil, []string{"miss", "hit"}, 1},
		{"logprobs", config.ModelCache{}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"logprobs":true}`, nil, []string{"bypass", "bypass"}, 2},
		{"no-store", config.ModelCache{}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, []string{"Cache-Control", "no-store"}, []string{"bypass", "bypass"}, 2},
		{"no-cache refreshes", config.ModelCache{}, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, []string{"Cache-Control", "no-cache"}, []string{"miss", "miss"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := newCacheGateway(t, tc.pol)
			for i, want := range tc.want {
				if r := cg.post(t, cg.key, "/v1/chat/completions", tc.body, tc.hdr...); cacheResult(r) != want {
					t.Fatalf("request %d: cache %q, want %q", i+1, cacheResult(r), want)
				}
			}
			if n := cg.upstream.Load(); n != tc.upCalls {
				t.Fatalf("upstream called %d times, want %d", n, tc.upCalls)
			}
		})
	}
	t.Run("no-cache stores the fresh answer", func(t *testing.T) {
		cg := newCacheGateway(t, config.ModelCache{})
		cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
		fresh := cg.post(t, cg.key, "/v1/chat/completions", cachedChat, "Cache-Control", "no-cache")
		hit := cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
		if cacheResult(fresh) != "miss" || cacheResult(hit) != "hit" || chatText(hit.body) != chatText(fresh.body) {
			t.Fatalf("refresh %q then %q (%q vs %q)", cacheResult(fresh), cacheResult(hit), chatText(hit.body), chatText(fresh.body))
		}
	})
	t.Run("a model without cache has no header", func(t *testing.T) {
		cg := newCacheGateway(t, config.ModelCache{})
		r := cg.post(t, cg.key, "/v1/chat/completions", strings.Replace(cachedChat, "gpt-4o-mini", "gpt-4o", 1))
		if h := cacheResult(r); h != "" {
			t.Fatalf("uncached model: x-xroute-cache %q", h)
		}
	})
	t.Run("a key with metadata cache off bypasses", func(t *testing.T) {
		cg := newCacheGateway(t, config.ModelCache{})
		k, _, err := cg.app.Keys.Create(context.Background(), keys.CreateParams{Name: "nocache", Metadata: map[string]string{"cache": "off"}})
		if err != nil {
			t.Fatal(err)
		}
		if r := cg.post(t, k, "/v1/chat/completions", cachedChat); cacheResult(r) != "bypass" {
			t.Fatalf("key with cache off: %q", cacheResult(r))
		}
	})
}

// Stream replay in every ingress format: an answer cached from a stream is
// replayed as a well-formed stream in the caller's format, and served as a
// body too; the text is the first answer's.
func TestCacheStreamReplayEachIngress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, stream, plain string
		done                      string // the stream's last event
		streamText                func(sse string) string
		plainText                 func(body string) string
	}{
		{
			name: "chat", path: "/v1/chat/completions",
			stream: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a story"}]}`,
			plain:  `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Tell me a story"}]}`,
			done:   "data: [DONE]",
			streamText: func(sse string) string {
				var b strings.Builder
				for _, d := range sseData(sse) {
					b.WriteString(gjson.Get(d, "choices.0.delta.content").String())
				}
				return b.String()
			},
			plainText: chatText,
		},
		{
			name: "responses", path: "/v1/responses",
			stream: `{"model":"gpt-4o-mini","stream":true,"store":false,"input":"Tell me a story"}`,
			plain:  `{"model":"gpt-4o-mini","store":false,"input":"Tell me a story"}`,
			done:   "event: response.completed",
			streamText: func(sse string) string {
				var b strings.Builder
				for _, d := range sseData(sse) {
					if gjson.Get(d, "type").String() == "response.output_text.delta" {
						b.WriteString(gjson.Get(d, "delta").String())
					}
				}
				return b.String()
			},
			plainText: func(body string) string { return gjson.Get(body, "output.0.content.0.text").String() },
		},
		{
			name: "messages", path: "/v1/messages",
			stream: `{"model":"gpt-4o-mini","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Tell me a story"}]}`,
			plain:  `{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Tell me a story"}]}`,
			done:   "event: message_stop",
			streamText: func(sse string) string {
				var b strings.Builder
				for _, d := range sseData(sse) {
					b.WriteString(gjson.Get(d, "delta.text").String())
				}
				return b.String()
			},
			plainText: func(body string) string { return gjson.Get(body, "content.0.text").String() },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := newCacheGateway(t, config.ModelCache{})
			first := cg.post(t, cg.key, tc.path, tc.stream)
			replay := cg.post(t, cg.key, tc.path, tc.stream)
			plain := cg.post(t, cg.key, tc.path, tc.plain)
			if cacheResult(first) != "miss" || cacheResult(replay) != "hit" || cacheResult(plain) != "hit" {
				t.Fatalf("stream %q, replay %q, plain %q", cacheResult(first), cacheResult(replay), cacheResult(plain))
			}
			if n := cg.upstream.Load(); n != 1 {
				t.Fatalf("upstream called %d times, want 1", n)
			}
			want := tc.streamText(first.body)
			if want == "" {
				t.Fatalf("first stream carried no text: %s", first.body)
			}
			if got := tc.streamText(replay.body); got != want {
				t.Fatalf("replayed text %q, want %q", got, want)
			}
			if !strings.Contains(replay.body, tc.done) || !strings.HasPrefix(replay.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("replay is not a complete stream: %s", replay.body)
			}
			if got := tc.plainText(plain.body); got != want {
				t.Fatalf("non-streamed hit %q, want %q: %s", got, want, plain.body)
			}
		})
	}
}

// sseData are the data fields of an SSE body's events.
func sseData(sse string) []string {
	var out []string
	for _, line := range strings.Split(sse, "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok && d != "[DONE]" {
			out = append(out, d)
		}
	}
	return out
}

// Concurrent identical misses collapse into one upstream call.
func TestCacheConcurrentMissesCollapse(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = cacheResult(cg.post(t, cg.key, "/v1/chat/completions", cachedChat))
		}()
	}
	wg.Wait()
	if n := cg.upstream.Load(); n != 1 {
		t.Fatalf("8 identical concurrent requests called the upstream %d times (%v)", n, results)
	}
}

func TestCachePurge(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	admin := cg.adminKey(t)
	other := cg.otherAccount(t)
	for _, tc := range []struct {
		name, body string
		mine, his  string // after the purge
	}{
		{"by account", `{"account_id":"` + keys.DefaultAccountID + `"}`, "miss", "hit"},
		{"by model", `{"model":"gpt-4o-mini"}`, "miss", "miss"},
		{"all", `{"all":true}`, "miss", "miss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
			cg.post(t, other, "/v1/chat/completions", cachedChat)
			st, out, _ := call(t, http.MethodPost, cg.srv.URL+"/admin/v1/cache/purge", admin, tc.body)
			if st != http.StatusOK {
				t.Fatalf("purge: %d %v", st, out)
			}
			if r := cg.post(t, cg.key, "/v1/chat/completions", cachedChat); cacheResult(r) != tc.mine {
				t.Fatalf("default account after purge: %q, want %q", cacheResult(r), tc.mine)
			}
			if r := cg.post(t, other, "/v1/chat/completions", cachedChat); cacheResult(r) != tc.his {
				t.Fatalf("other account after purge: %q, want %q", cacheResult(r), tc.his)
			}
		})
	}
	st, out, _ := call(t, http.MethodPost, cg.srv.URL+"/admin/v1/cache/purge", admin, `{}`)
	if st != http.StatusBadRequest || errCode(out) != "purge_target" {
		t.Fatalf("purge of nothing named: %d %v", st, out)
	}
	if st, _, _ := call(t, http.MethodPost, cg.srv.URL+"/admin/v1/cache/purge", cg.key, `{"all":true}`); st != http.StatusForbidden && st != http.StatusUnauthorized {
		t.Fatalf("a caller key purged the cache: %d", st)
	}
}

func TestCacheMetrics(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	cg.post(t, cg.key, "/v1/chat/completions", cachedChat)
	cg.post(t, cg.key, "/v1/chat/completions", cachedChat, "Cache-Control", "no-store")
	s := cg.scrape()
	for _, r := range []string{"hit", "miss", "bypass"} {
		if v := s.value("xroute_cache_requests_total", "result", r); v != 1 {
			t.Errorf("xroute_cache_requests_total{result=%q} = %v, want 1", r, v)
		}
	}
	if v := s.value("xroute_cache_bytes"); v <= 0 {
		t.Errorf("xroute_cache_bytes = %v", v)
	}
}

func TestCacheEmbeddings(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{})
	const body = `{"model":"gpt-4o-mini","input":["cache me","and me"]}`
	first := cg.post(t, cg.key, "/v1/embeddings", body)
	second := cg.post(t, cg.key, "/v1/embeddings", body)
	if cacheResult(first) != "miss" || cacheResult(second) != "hit" {
		t.Fatalf("embeddings: %q then %q", cacheResult(first), cacheResult(second))
	}
	if first.body != second.body {
		t.Fatalf("the hit's vectors differ:\n%s\n%s", first.body, second.body)
	}
	if n := cg.upstream.Load(); n != 1 {
		t.Fatalf("upstream called %d times, want 1", n)
	}
	if r := cg.usageFor(second.Header.Get("x-request-id")); !r.CacheHit || r.PromptTokens == 0 || r.CostNano != 0 {
		t.Fatalf("the hit's record: %+v", r)
	}
	// Base64 is another request (its body differs), answered from its own entry.
	b64 := `{"model":"gpt-4o-mini","input":["cache me","and me"],"encoding_format":"base64"}`
	if r := cg.post(t, cg.key, "/v1/embeddings", b64); cacheResult(r) != "miss" || !strings.Contains(r.body, `"embedding":"`) {
		t.Fatalf("base64: %q %s", cacheResult(r), r.body)
	}
}
