package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// cacher is a fake upstream with a prompt cache: its first call writes
// 800 prompt tokens to the cache, later calls read them.
type cacher struct {
	*fake
	warm atomic.Bool
}

// MinCacheTokens makes the cacher an upstream that caches at breakpoints,
// as Anthropic does.
func (c *cacher) MinCacheTokens(string) int { return 1024 }

func (c *cacher) usage() providers.Usage {
	u := providers.Usage{PromptTokens: 1000, CompletionTokens: 10}
	if c.warm.Swap(true) {
		u.CachedTokens = 800
	} else {
		u.CacheWriteTokens = 800
	}
	return u
}

func (c *cacher) Chat(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	if err := c.call(ctx, call); err != nil {
		return nil, err
	}
	return &providers.ChatResponse{Body: []byte(`{}`), Usage: c.usage()}, nil
}

func (c *cacher) ChatStream(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	if err := c.call(ctx, call); err != nil {
		return nil, err
	}
	u := c.usage()
	return &usageStream{u: &u}, nil
}

type usageStream struct {
	u *providers.Usage
	n int
}

func (s *usageStream) Recv() (providers.Chunk, error) {
	s.n++
	switch s.n {
	case 1:
		return providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"hi"}}]}`)}, nil
	case 2:
		return providers.Chunk{Data: []byte(`{"usage":{}}`), UsageOnly: true, Usage: s.u}, nil
	}
	return providers.Chunk{}, io.EOF
}

func (s *usageStream) Close() error { return nil }

// cachingFleet is three deployments of "m" with caching upstreams, under
// the latency strategy with no statistics: every order is a tie, shuffled
// per request, so only affinity keeps a session in one place.
func cachingFleet(t *testing.T, routing config.Routing) (*Router, *Model, map[string]*cacher) {
	t.Helper()
	clock := newClock()
	cs := map[string]*cacher{}
	more := map[string]providers.Provider{}
	names := []string{"a", "b", "c"}
	for _, n := range names {
		cs[n] = &cacher{fake: &fake{}}
		more[n] = cs[n]
	}
	if routing.DefaultStrategy == "" {
		routing.DefaultStrategy = "latency"
	}
	r, m := fleet{names: names, fakes: map[string]*fake{}, routing: routing, clock: clock}.buildWith(t, more)
	return r, m, cs
}

func served(t *testing.T, r *Router, m *Model, ctx context.Context, req *providers.ChatRequest) string {
	t.Helper()
	_, res, err := r.Chat(ctx, m, req)
	if err != nil {
		t.Fatal(err)
	}
	return res.Deployment.Provider
}

const sessionBody = `{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi"}]}`

func TestAffinityKeepsASessionWhereItsCacheIsWarm(t *testing.T) {
	for _, tc := range []struct {
		name     string
		affinity bool
	}{{"on", true}, {"off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			rt := config.Routing{}
			if !tc.affinity {
				rt.Models = map[string]config.ModelRouting{"m": {Affinity: ptr(false)}}
			}
			r, m, _ := cachingFleet(t, rt)
			ctx := WithCaller(context.Background(), Caller{Account: "acc"})
			seen := map[string]int{}
			for range 30 {
				seen[served(t, r, m, ctx, chatReq(sessionBody))]++
			}
			st := r.AffinityStats()
			if tc.affinity {
				if len(seen) != 1 || st.Misses != 1 || st.Hits != 29 || st.Repins != 0 {
					t.Fatalf("served %v, stats %+v: want one deployment, 1 miss, 29 hits", seen, st)
				}
				return
			}
			if len(seen) < 2 || st != (AffinityStats{}) {
				t.Fatalf("affinity off: served %v, stats %+v: want the ties spread and nothing counted", seen, st)
			}
		})
	}
}

func TestAffinityStreamPinsFromItsUsage(t *testing.T) {
	r, m, _ := cachingFleet(t, config.Routing{})
	ctx := WithCaller(context.Background(), Caller{Account: "acc", Session: "s1"})
	seen := map[string]int{}
	for range 10 {
		req := chatReq(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		s, res, err := r.ChatStream(ctx, m, req)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := s.Recv(); err != nil {
				break
			}
		}
		s.Close()
		seen[res.Deployment.Provider]++
	}
	if st := r.AffinityStats(); len(seen) != 1 || st.Hits != 9 {
		t.Fatalf("served %v, stats %+v", seen, st)
	}
}

func TestAffinityNeverCrossesAccounts(t *testing.T) {
	r, m, _ := cachingFleet(t, config.Routing{})
	a := WithCaller(context.Background(), Caller{Account: "acc-a", Session: "same"})
	b := WithCaller(context.Background(), Caller{Account: "acc-b", Session: "same"})
	served(t, r, m, a, chatReq(sessionBody))
	served(t, r, m, b, chatReq(sessionBody))
	if st := r.AffinityStats(); st.Misses != 2 || st.Hits != 0 {
		t.Fatalf("stats %+v: each account's first request must miss", st)
	}
	ka := sessionKey(callerFrom(a), "m", chatReq(sessionBody))
	kb := sessionKey(callerFrom(b), "m", chatReq(sessionBody))
	if ka == kb {
		t.Fatal("two accounts share a session key")
	}
	// Prefix-hashed sessions (no id at all) are per account too.
	pa := sessionKey(Caller{Account: "acc-a"}, "m", chatReq(sessionBody))
	pb := sessionKey(Caller{Account: "acc-b"}, "m", chatReq(sessionBody))
	if pa == pb {
		t.Fatal("two accounts share a prefix-hashed session key")
	}
}

func TestSessionKeyPrecedence(t *testing.T) {
	withKey := chatReq(`{"model":"m","prompt_cache_key":"pck","messages":[{"role":"user","content":"hi"}]}`)
	if withKey.CacheKey != "pck" {
		t.Fatalf("prompt_cache_key read as %q", withKey.CacheKey)
	}
	plain := chatReq(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	key := func(c Caller, req *providers.ChatRequest) string { return sessionKey(c, "m", req) }
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"x-session-id wins over prompt_cache_key", key(Caller{Session: "s"}, withKey), key(Caller{Session: "s"}, plain), true},
		{"prompt_cache_key wins over the agent's header", key(Caller{AgentSession: "cc"}, withKey), key(Caller{AgentSession: "other"}, withKey), true},
		{"the agent's header wins over the prefix", key(Caller{AgentSession: "cc"}, plain),
			key(Caller{AgentSession: "cc"}, chatReq(`{"model":"m","messages":[{"role":"user","content":"other"}]}`)), true},
		{"a header value never meets a prompt_cache_key", key(Caller{Session: "pck"}, plain), key(Caller{}, withKey), false},
		{"later turns keep the prefix session", key(Caller{}, chatReq(sessionBody)),
			key(Caller{}, chatReq(`{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi"},{"role":"assistant","content":"yo"},{"role":"user","content":"more"}]}`)), true},
		{"another first message is another session", key(Caller{}, chatReq(sessionBody)),
			key(Caller{}, chatReq(`{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"bye"}]}`)), false},
		{"other tools are another session", key(Caller{}, plain),
			key(Caller{}, chatReq(`{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}`)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.a == tc.b) != tc.same {
				t.Fatalf("same key = %v, want %v", tc.a == tc.b, tc.same)
			}
		})
	}
	if sessionKey(Caller{}, "m", plain) == sessionKey(Caller{}, "m2", plain) {
		t.Fatal("two models share a session")
	}
}

func TestAskedTTL(t *testing.T) {
	for _, tc := range []struct {
		native, body string
		want         time.Duration
	}{
		{`{"system":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}`, `{}`, 0},
		{`{"system":[{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"y","cache_control":{"type":"ephemeral","ttl": "5m"}}]}]}`, `{}`, time.Hour},
		{``, `{"prompt_cache_retention":"24h"}`, 24 * time.Hour},
	} {
		req := &providers.ChatRequest{Native: []byte(tc.native), Body: []byte(tc.body)}
		if got := askedTTL(req); got != tc.want {
			t.Errorf("%s %s: ttl %v, want %v", tc.native, tc.body, got, tc.want)
		}
	}
}

func TestAffinityRepinsWhenTheBreakerOpens(t *testing.T) {
	r, m, cs := cachingFleet(t, config.Routing{})
	ctx := WithCaller(context.Background(), Caller{Account: "acc", Session: "s"})
	first := served(t, r, m, ctx, chatReq(sessionBody))
	// The warm deployment fails from now on: its breaker opens (5
	// consecutive failures) and the session goes on elsewhere, re-pinned.
	cs[first].fail = fail(&providers.Error{Provider: first, Status: http.StatusServiceUnavailable, Message: "down"})
	var landed []string
	for range 8 {
		landed = append(landed, served(t, r, m, ctx, chatReq(sessionBody)))
	}
	for _, p := range landed {
		if p == first {
			t.Fatalf("served by the failing deployment: %v", landed)
		}
	}
	if landed[len(landed)-1] != landed[len(landed)-2] {
		t.Fatalf("not re-pinned: %v", landed)
	}
	st := r.AffinityStats()
	if st.Repins < 1 || st.Hits < 6 {
		t.Fatalf("stats %+v: want a re-pin, then hits", st)
	}
	// One success, one failure that failed over: the re-pinned session
	// does not go back to it.
	if n := cs[first].calls.Load(); n != 2 {
		t.Fatalf("the failing deployment got %d calls, want 2", n)
	}
}

func TestCallerProviderOrderWinsOverThePin(t *testing.T) {
	r, m, _ := cachingFleet(t, config.Routing{})
	ctx := WithCaller(context.Background(), Caller{Account: "acc", Session: "s"})
	first := served(t, r, m, ctx, chatReq(sessionBody))
	other := "a"
	if first == "a" {
		other = "b"
	}
	body := `{"model":"m","provider":{"order":["` + other + `"]},"messages":[{"role":"user","content":"hi"}]}`
	if got := served(t, r, m, ctx, chatReq(body)); got != other {
		t.Fatalf("provider.order named %s, served by %s", other, got)
	}
	if st := r.AffinityStats(); st.Repins != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Without the order, the session stays where it landed.
	if got := served(t, r, m, ctx, chatReq(sessionBody)); got != other {
		t.Fatalf("served by %s after the re-pin to %s", got, other)
	}
}

func TestAffinityPrefersThePinnedPoolKey(t *testing.T) {
	r, m, _ := cachingFleet(t, config.Routing{DefaultStrategy: "priority"})
	keys := map[string]*cacher{}
	var creds []Credential
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		keys[id] = &cacher{fake: &fake{}}
		creds = append(creds, Credential{ID: id, Weight: 1, Adapter: keys[id]})
	}
	if err := r.SetCredentials("a", creds); err != nil {
		t.Fatal(err)
	}
	ctx := WithCaller(context.Background(), Caller{Account: "acc", Session: "s"})
	for range 20 {
		served(t, r, m, ctx, chatReq(sessionBody))
	}
	used := 0
	for _, k := range keys {
		if k.calls.Load() > 0 {
			used++
		}
	}
	if used != 1 {
		t.Fatalf("the session used %d pool keys, want 1", used)
	}
	// The key leaves the pool: the session goes on with another, pinned.
	var rest []Credential
	for _, c := range creds {
		if keys[c.ID].calls.Load() == 0 {
			rest = append(rest, c)
		}
	}
	if err := r.SetCredentials("a", rest); err != nil {
		t.Fatal(err)
	}
	served(t, r, m, ctx, chatReq(sessionBody))
	if st := r.AffinityStats(); st.Repins != 1 {
		t.Fatalf("stats %+v: want one re-pin to another key", st)
	}
}

func TestCostPricesTheWarmCache(t *testing.T) {
	price := func(s string) catalog.Price { p, _ := catalog.ParsePrice(s); return p }
	warm := &Deployment{name: "warm/m", Info: &catalog.Model{Input: price("3.00"), CachedInput: price("0.30"), CacheWriteInput: price("3.75"), Output: price("15")}}
	cold := &Deployment{name: "cold/m", Info: &catalog.Model{Input: price("2.50"), CachedInput: price("0.25"), CacheWriteInput: price("3.10"), Output: price("15")}}
	for _, tc := range []struct {
		name   string
		cached int
		want   string
	}{
		{"no warm cache: the nominally cheaper", 0, "cold/m"},
		{"a long warm prefix: the warm one", 9000, "warm/m"},
		{"a short warm prefix: still the cheaper", 50, "cold/m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &Query{PromptTokens: 10000, CompletionTokens: 100, Warm: warm, CacheTokens: tc.cached}
			ds := []*Deployment{warm, cold}
			for i := range ds {
				ds[i].weight = 1
			}
			cost{}.Order(q, ds)
			if ds[0].name != tc.want {
				t.Fatalf("first %s, want %s", ds[0].name, tc.want)
			}
		})
	}
}

func TestPinLRUIsBoundedAndExpires(t *testing.T) {
	l := newPinLRU(2)
	l.put("a", Pin{Deployment: "x/a"}, 0, 100)
	l.put("b", Pin{Deployment: "x/b"}, 0, 100)
	l.get("a", 0) // a is now the most recent
	l.put("c", Pin{Deployment: "x/c"}, 0, 100)
	if _, ok := l.get("b", 0); ok {
		t.Fatal("the least recent entry survived the bound")
	}
	if _, ok := l.get("a", 0); !ok {
		t.Fatal("a recent entry was evicted")
	}
	if _, ok := l.get("c", 100); ok {
		t.Fatal("an expired entry was returned")
	}
	if l.len() != 1 {
		t.Fatalf("len %d after expiry", l.len())
	}
}

func TestPinLRUFreshness(t *testing.T) {
	l := newPinLRU(10)
	p := Pin{Deployment: "x/a", Credential: "k"}
	for _, tc := range []struct {
		name  string
		pin   Pin
		now   int64
		fresh bool
	}{
		{"new", p, 0, false},
		{"same pin soon after", p, 10, true},
		{"same pin, other token count", Pin{Deployment: "x/a", Credential: "k", Tokens: 9}, 20, true},
		{"past half its ttl", p, 60, false},
		{"just rewritten", p, 70, true},
		{"another key", Pin{Deployment: "x/a", Credential: "k2"}, 80, false},
	} {
		if got := l.put("s", tc.pin, tc.now, 100); got != tc.fresh {
			t.Errorf("%s: fresh %v, want %v", tc.name, got, tc.fresh)
		}
	}
}

func TestPinEncoding(t *testing.T) {
	p := Pin{Deployment: "anthropic/claude", Credential: "pk_1", Tokens: 1234}
	if got, ok := decodePin(encodePin(p)); !ok || got != p {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	for _, bad := range []string{"", "x", "a\x00b", "a\x00b\x00z", "\x00b\x001"} {
		if _, ok := decodePin(bad); ok {
			t.Errorf("decoded %q", bad)
		}
	}
}

// redisURL is the integration Redis, or skips.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("XROUTE_TEST_REDIS_URL")
	if u == "" {
		t.Skip("XROUTE_TEST_REDIS_URL not set")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestAffinitySharedThroughRedis(t *testing.T) {
	rdb := redisClient(t)
	clock := newClock()
	a := newAffinity(10, time.Minute, clock.Now, zap.NewNop(), rdb, time.Second)
	b := newAffinity(10, time.Minute, clock.Now, zap.NewNop(), rdb, time.Second)
	pfx := fmt.Sprintf("xroute:test:affinity:%d:", time.Now().UnixNano())
	a.pfx, b.pfx = pfx, pfx
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(ctx, pfx+"k") })
	a.set(ctx, "k", Pin{Deployment: "p/m", Credential: "c", Tokens: 5}, time.Minute)
	got, ok := b.get(ctx, "k")
	if !ok || got.Deployment != "p/m" || got.Credential != "c" {
		t.Fatalf("the other replica read %+v %v", got, ok)
	}
	if ttl := rdb.PTTL(ctx, pfx+"k").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("redis ttl %v", ttl)
	}
}

func TestNoSessionLookupForModelsWithoutACache(t *testing.T) {
	clock := newClock()
	r, m := fleet{names: []string{"a", "b"}, fakes: fakes(clock, "a", "b"), clock: clock}.build(t)
	if s := r.lookupSession(WithCaller(context.Background(), Caller{Session: "s"}), m, chatReq("")); s != nil {
		t.Fatal("a session was looked up for a model no deployment of which caches")
	}
}

func TestAffinityRedisOutageIsOnlyAMiss(t *testing.T) {
	// Nothing listens there: every call fails fast.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	clock := newClock()
	a := newAffinity(10, time.Minute, clock.Now, zap.NewNop(), rdb, 100*time.Millisecond)
	ctx := context.Background()
	if _, ok := a.get(ctx, "k"); ok {
		t.Fatal("a pin from nowhere")
	}
	a.set(ctx, "k", Pin{Deployment: "p/m"}, time.Minute)
	if p, ok := a.get(ctx, "k"); !ok || p.Deployment != "p/m" {
		t.Fatalf("the replica's own pin is lost in an outage: %+v %v", p, ok)
	}
	if a.redisErrors.Load() == 0 {
		t.Fatal("the Redis failure was not counted")
	}
	if !strings.HasPrefix(a.pfx, "xroute:") {
		t.Fatal(a.pfx)
	}
}
