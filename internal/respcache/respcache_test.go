package respcache_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/providers"
)

type countingMetrics struct{ evicted, redis, lookups atomic.Int64 }

func (m *countingMetrics) Evicted()               { m.evicted.Add(1) }
func (m *countingMetrics) RedisError()            { m.redis.Add(1) }
func (m *countingMetrics) Lookup(d time.Duration) { m.lookups.Add(1) }

func newCache(t *testing.T, cfg respcache.Config) *respcache.Cache {
	t.Helper()
	c, err := respcache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func entry(text string) *respcache.Entry {
	return &respcache.Entry{Completion: providers.Completion{Content: &text, FinishReason: "stop"}, Prompt: 10, Output: 3, Stored: time.Now()}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"key order", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, `{"messages":[{"content":"x","role":"user"}],"model":"m"}`, true},
		{"stream, stream_options and user do not count", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"user":"u1"}`, `{"model":"m","user":"u2"}`, true},
		{"space", `{ "model" : "m" }`, `{"model":"m"}`, true},
		{"model name as given", `{"model":"m"}`, `{"model":"M"}`, false},
		{"sampling parameters count", `{"model":"m","max_tokens":5}`, `{"model":"m","max_tokens":6}`, false},
		{"numbers keep their text", `{"model":"m","temperature":0}`, `{"model":"m","temperature":0.0}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := respcache.Canonical([]byte(tc.a))
			if err != nil {
				t.Fatal(err)
			}
			b, err := respcache.Canonical([]byte(tc.b))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(a, b) != tc.same {
				t.Fatalf("%s vs %s: same=%v", a, b, !tc.same)
			}
		})
	}
	if _, err := respcache.Canonical([]byte(`[1]`)); err == nil {
		t.Fatal("a body that is not an object was canonicalised")
	}
}

func TestKeyScopesAndFormats(t *testing.T) {
	c := newCache(t, respcache.Config{})
	body := []byte(`{"model":"m","messages":[]}`)
	k := func(scope, format string) string {
		key, err := c.Key(scope, "m", format, body)
		if err != nil {
			t.Fatal(err)
		}
		return key.Shared
	}
	if k("acct-a", "chat") == k("acct-b", "chat") {
		t.Fatal("two accounts share a key")
	}
	if k("acct-a", "chat") == k("acct-a", "messages") {
		t.Fatal("two ingress formats share a key")
	}
	if k("acct-a", "chat") != k("acct-a", "chat") {
		t.Fatal("the same request has two keys")
	}
	if strings.Contains(k("acct-a", "chat"), "acct-a") {
		t.Fatal("the account id is in the Redis key")
	}
}

func TestPutGetTTLAndSize(t *testing.T) {
	now := time.Now()
	c := newCache(t, respcache.Config{Now: func() time.Time { return now }})
	k, _ := c.Key("a", "m", "chat", []byte(`{"model":"m"}`))
	if _, ok := c.Get(context.Background(), k); ok {
		t.Fatal("hit in an empty cache")
	}
	if err := c.Put(context.Background(), k, entry("Paris"), time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	e, ok := c.Get(context.Background(), k)
	if !ok || *e.Completion.Content != "Paris" || e.Prompt != 10 || e.Output != 3 {
		t.Fatalf("got %+v, %v", e, ok)
	}
	if c.Bytes() <= 0 {
		t.Fatalf("bytes %d", c.Bytes())
	}
	big := entry(strings.Repeat("x", 2000))
	if err := c.Put(context.Background(), k, big, time.Minute, 1000); err != respcache.ErrTooLarge {
		t.Fatalf("an entry over max_entry_bytes: %v", err)
	}
}

func TestPurgeTargets(t *testing.T) {
	c := newCache(t, respcache.Config{})
	ctx := context.Background()
	keys := map[string]respcache.Key{}
	for _, s := range []string{"a", "b"} {
		for _, m := range []string{"m1", "m2"} {
			k, _ := c.Key(s, m, "chat", []byte(`{"model":"`+m+`"}`))
			keys[s+"/"+m] = k
		}
	}
	fill := func() {
		for _, k := range keys {
			if err := c.Put(ctx, k, entry("x"), time.Minute, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		t    respcache.Target
		gone []string
	}{
		{"account", respcache.Target{Scope: "a"}, []string{"a/m1", "a/m2"}},
		{"model", respcache.Target{Model: "m2"}, []string{"a/m2", "b/m2"}},
		{"all", respcache.Target{}, []string{"a/m1", "a/m2", "b/m1", "b/m2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fill()
			if _, err := c.Purge(ctx, tc.t); err != nil {
				t.Fatal(err)
			}
			for name, k := range keys {
				_, ok := c.Get(ctx, k)
				gone := strings.Contains(strings.Join(tc.gone, " "), name)
				if ok == gone {
					t.Errorf("%s: present=%v after purging %+v", name, ok, tc.t)
				}
			}
		})
	}
}

// A Redis that does not answer: the cache serves from memory, counts the
// errors and logs the outage once, and never returns an error.
func TestRedisDownDegradesToMemory(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	core, logs := observer.New(zap.WarnLevel)
	m := &countingMetrics{}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newCache(t, respcache.Config{Redis: rdb, Log: zap.New(core), Metrics: m, Now: clock})
	ctx := context.Background()
	k, _ := c.Key("a", "m", "chat", []byte(`{"model":"m"}`))
	if _, ok := c.Get(ctx, k); ok {
		t.Fatal("hit from nowhere")
	}
	if err := c.Put(ctx, k, entry("Paris"), time.Minute, 0); err != nil {
		t.Fatalf("Put with Redis down: %v", err)
	}
	if e, ok := c.Get(ctx, k); !ok || *e.Completion.Content != "Paris" {
		t.Fatal("memory did not serve the entry with Redis down")
	}
	// The first failure leaves Redis alone for a while: one error counted,
	// no timeout added to the lookups after it.
	if n := m.redis.Load(); n != 1 {
		t.Fatalf("redis errors counted: %d, want 1", n)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if e, ok := c.Get(ctx, k); !ok || *e.Completion.Content != "Paris" {
		t.Fatal("memory did not serve the entry with Redis down")
	}
	k2, _ := c.Key("a", "m", "chat", []byte(`{"model":"other"}`))
	c.Get(ctx, k2) // a memory miss asks Redis again, which fails again
	if n := m.redis.Load(); n != 2 {
		t.Fatalf("redis errors counted after the back-off: %d, want 2", n)
	}
	if n := logs.FilterMessageSnippet("Redis unavailable").Len(); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}
	if _, err := c.Purge(ctx, respcache.Target{}); err == nil {
		t.Fatal("a purge that could not reach Redis reported success")
	}
}

// Two caches on one Redis are two replicas: what one stored, the other
// finds; a purge on one removes the shared copy.
func TestRedisSharedLayer(t *testing.T) {
	url := os.Getenv("XROUTE_TEST_REDIS_URL")
	if url == "" {
		t.Skip("XROUTE_TEST_REDIS_URL not set")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("redis: %v", err)
	}
	one := newCache(t, respcache.Config{Redis: rdb})
	two := newCache(t, respcache.Config{Redis: rdb})
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"` + t.Name() + time.Now().String() + `"}]}`)
	k1, _ := one.Key("acct", "m", "chat", body)
	k2, _ := two.Key("acct", "m", "chat", body)
	if err := one.Put(ctx, k1, entry("shared"), time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	e, ok := two.Get(ctx, k2)
	if !ok || *e.Completion.Content != "shared" {
		t.Fatal("the second replica did not find the first's entry in Redis")
	}
	other, _ := two.Key("other-acct", "m", "chat", body)
	if _, ok := two.Get(ctx, other); ok {
		t.Fatal("another account's key found the entry")
	}
	if n, err := one.Purge(ctx, respcache.Target{Scope: "acct"}); err != nil || n < 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	three := newCache(t, respcache.Config{Redis: rdb})
	if _, ok := three.Get(ctx, k1); ok {
		t.Fatal("the purged entry is still in Redis")
	}
}

func TestAcquireCollapsesMisses(t *testing.T) {
	c := newCache(t, respcache.Config{})
	ctx := context.Background()
	k, _ := c.Key("a", "m", "chat", []byte(`{"model":"m"}`))
	e, lead := c.Acquire(ctx, k)
	if e != nil || lead == nil {
		t.Fatal("the first miss did not lead")
	}
	var wg sync.WaitGroup
	got := make([]*respcache.Entry, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var f *respcache.Flight
			got[i], f = c.Acquire(ctx, k)
			f.Done()
		}()
	}
	if err := c.Put(ctx, k, entry("once"), time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	lead.Done()
	lead.Done() // twice is harmless
	wg.Wait()
	for i, e := range got {
		if e == nil || *e.Completion.Content != "once" {
			t.Fatalf("waiter %d got %+v", i, e)
		}
	}
	// A waiter whose context ends stops waiting.
	k2, _ := c.Key("a", "m", "chat", []byte(`{"model":"other"}`))
	_, lead = c.Acquire(ctx, k2)
	defer lead.Done()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if e, f := c.Acquire(cctx, k2); e != nil || f != nil {
		t.Fatal("a cancelled waiter got an entry or a flight")
	}
}

func TestCollectorAndReplayRoundTrip(t *testing.T) {
	b := providers.ChunkBuilder{ID: "x", Model: "m"}
	var col respcache.Collector
	for _, ch := range []providers.Chunk{b.Role(), b.Reasoning("think "), b.Text("Hel"), b.Text("lo"),
		b.ToolCallStart(0, "call_1", "f"), b.ToolCallArgs(0, `{"a":`), b.ToolCallArgs(0, `1}`), b.Finish("tool_calls")} {
		ch.Events = nil // as the OpenAI adapter forwards chat: decoded from the data
		col.Chunk(ch)
	}
	cp, ok := col.Completion()
	if !ok || *cp.Content != "Hello" || cp.Reasoning != "think " || len(cp.ToolCalls) != 1 ||
		cp.ToolCalls[0].Function.Arguments != `{"a":1}` || cp.FinishReason != "tool_calls" {
		t.Fatalf("collected %+v, %v", cp, ok)
	}
	e := &respcache.Entry{Completion: cp, Prompt: 5, Output: 7}
	var again respcache.Collector
	chunks := respcache.Replay(e, "y", "m", 1)
	for _, ch := range chunks {
		again.Chunk(ch)
	}
	cp2, _ := again.Completion()
	if *cp2.Content != *cp.Content || cp2.ToolCalls[0].Function.Arguments != cp.ToolCalls[0].Function.Arguments {
		t.Fatalf("replay changed the answer: %+v", cp2)
	}
	if last := chunks[len(chunks)-1]; !last.UsageOnly || last.Usage.PromptTokens != 5 || last.Usage.CompletionTokens != 7 {
		t.Fatalf("usage chunk %+v", last)
	}
	var broken respcache.Collector
	broken.Chunk(providers.Chunk{Native: true, Data: []byte(`{}`)})
	if _, ok := broken.Completion(); ok {
		t.Fatal("a native stream was collected")
	}
	var unfinished respcache.Collector
	unfinished.Chunk(b.Text("cut"))
	if _, ok := unfinished.Completion(); ok {
		t.Fatal("a stream without a finish was collected")
	}
}

// TestPurgeAnnounced: a purge is announced to the other replicas (after
// this one's memory and Redis), and the announcement, applied with
// PurgeLocal, drops exactly the purged entries from another replica's
// memory.
func TestPurgeAnnounced(t *testing.T) {
	ctx := context.Background()
	for _, target := range []respcache.Target{{}, {Model: "m1"}, {Scope: "acct_a"}, {Model: "m1", Scope: "acct_a"}} {
		t.Run(target.Model+"/"+target.Scope, func(t *testing.T) {
			var msgs []string
			a := newCache(t, respcache.Config{Announce: func(m string) { msgs = append(msgs, m) }})
			b := newCache(t, respcache.Config{})
			keys := map[string]respcache.Key{}
			for _, kc := range []struct{ scope, model string }{{"acct_a", "m1"}, {"acct_a", "m2"}, {"acct_b", "m1"}, {"acct_b", "m2"}} {
				k, err := b.Key(kc.scope, kc.model, "chat", []byte(`{"model":"`+kc.model+`"}`))
				if err != nil {
					t.Fatal(err)
				}
				keys[kc.scope+"/"+kc.model] = k
				if err := b.Put(ctx, k, entry("x"), time.Hour, 0); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Purge(ctx, target); err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 {
				t.Fatalf("announcements %q, want one", msgs)
			}
			got, ok := respcache.ParsePurge(msgs[0])
			if !ok || got != target {
				t.Fatalf("announced %+v (%v), purged %+v", got, ok, target)
			}
			b.PurgeLocal(got)
			for name, k := range keys {
				scope, model, _ := strings.Cut(name, "/")
				// A purge of model and account drops the model's entries
				// of every account (documented on Purge).
				gone := (target.Model == "" || target.Model == model) && (target.Scope == "" || target.Scope == scope || target.Model != "")
				if _, hit := b.Get(ctx, k); hit == gone {
					t.Errorf("%s: hit %v after purging %+v", name, hit, target)
				}
			}
		})
	}
	if _, ok := respcache.ParsePurge("acct:x"); ok {
		t.Fatal("another message read as a purge")
	}
}
