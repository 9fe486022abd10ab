package router

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xroute/xroute/providers"
)

// prober is a scripted provider that can probe its key.
type prober struct {
	scripted
	probeErr error
	// hold, when set, makes Probe wait for it (the test looks at the pool
	// meanwhile); probed is told each probe started.
	hold   chan struct{}
	probed chan struct{}
	probes atomic.Int64
}

func (p *prober) Probe(ctx context.Context, model string) error {
	p.probes.Add(1)
	if p.probed != nil {
		p.probed <- struct{}{}
	}
	if p.hold != nil {
		<-p.hold
	}
	return p.probeErr
}

// rejections records OnRejected calls.
type rejections struct {
	mu   sync.Mutex
	list []string
}

func (rj *rejections) hook(provider, id, reason string) {
	rj.mu.Lock()
	rj.list = append(rj.list, provider+"/"+id+": "+reason)
	rj.mu.Unlock()
}

func (rj *rejections) get() []string {
	rj.mu.Lock()
	defer rj.mu.Unlock()
	return append([]string(nil), rj.list...)
}

var (
	keyRefused   = &providers.Error{Provider: "a", Status: 401, Code: "invalid_api_key", Message: "Incorrect API key provided"}
	modelRefused = &providers.Error{Provider: "a", Status: 403, Type: "permission_error", Message: "Your organization may not use this model"}
)

// pooled is a router whose provider "a" has the given pool keys.
func pooled(t *testing.T, keys ...*prober) (*Router, *Model, *rejections) {
	t.Helper()
	r, m := newRouter(t, 1000, map[string]providers.Provider{"a": &scripted{}}, "a")
	t.Cleanup(r.Close)
	rj := &rejections{}
	r.onRejected = rj.hook
	var creds []Credential
	for i, k := range keys {
		creds = append(creds, Credential{ID: "pk_" + strconv.Itoa(i), Weight: 1, Adapter: k})
	}
	if err := r.SetCredentials("a", creds); err != nil {
		t.Fatal(err)
	}
	return r, m, rj
}

// as is a request context of caller key, request n.
func as(key string, n int) context.Context {
	return WithCaller(context.Background(), Caller{KeyID: key, RequestID: key + "-req-" + strconv.Itoa(n)})
}

// TestHoleOneCallerDisablesPoolKeys: an upstream 401/403 disabled the pool
// key whoever caused it — five requests for a model the upstream forbids
// disabled all three pool keys. Now a 403 about the request counts for
// nothing, and one caller's refusals never take a key out of the pool.
func TestHoleOneCallerDisablesPoolKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		// probe: what the key's probe says (a key the upstream refuses
		// for this caller's requests only is accepted by the probe).
		probe error
	}{
		{"403 for a model the upstream forbids", modelRefused, nil},
		{"401 for one caller's requests only", keyRefused, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := []*prober{{scripted: scripted{err: tc.err}, probeErr: tc.probe}, {scripted: scripted{err: tc.err}, probeErr: tc.probe}, {scripted: scripted{err: tc.err}, probeErr: tc.probe}}
			r, m, rj := pooled(t, ks...)
			for i := 0; i < 30; i++ {
				r.Chat(as("key_mallory", i), m, req)
				if got := r.Credentials("a"); len(got) != 3 {
					t.Fatalf("after request %d of one caller the pool is %v", i+1, got)
				}
			}
			r.probes.Wait()
			if got := r.Credentials("a"); len(got) != 3 {
				t.Fatalf("pool after one caller's traffic: %v", got)
			}
			if got := rj.get(); len(got) != 0 {
				t.Fatalf("keys disabled by one caller: %v", got)
			}
		})
	}
}

// TestPoolKeyRefusedByManyCallersIsProbedThenDisabled: a key refused in
// requests of two callers leaves the pool while it is probed, and for good
// when its probe is refused too, with the evidence in the reason.
func TestPoolKeyRefusedByManyCallersIsProbedThenDisabled(t *testing.T) {
	bad := &prober{scripted: scripted{err: keyRefused}, probeErr: keyRefused, hold: make(chan struct{}), probed: make(chan struct{}, 1)}
	good := &prober{}
	r, m, rj := pooled(t, bad, good)
	// Only bad's refusals count: send the refused requests to it directly.
	for i := 0; i < 3; i++ {
		r.checkRejected(as("key_"+strconv.Itoa(i%2), i), m.Deployments[0], "pk_0", keyRefused)
	}
	<-bad.probed
	if got := r.Credentials("a"); len(got) != 1 || got[0] != "pk_1" {
		t.Fatalf("pool while the key is probed: %v", got)
	}
	close(bad.hold)
	r.probes.Wait()
	if got := r.Credentials("a"); len(got) != 1 || got[0] != "pk_1" {
		t.Fatalf("pool after the probe was refused: %v", got)
	}
	if got := rj.get(); len(got) != 1 || !strings.HasPrefix(got[0], "a/pk_0: ") || !strings.Contains(got[0], "3 requests of 2 callers, and by a probe") {
		t.Fatalf("OnRejected: %v", got)
	}
}

// TestPoolKeyComesBackWhenItsProbePasses: a key taken out on refusals of
// several callers returns when its probe is accepted, or cannot tell.
func TestPoolKeyComesBackWhenItsProbePasses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		probe error
	}{
		{"probe accepted", nil},
		{"probe timed out", &providers.Error{Provider: "a", Status: 504}},
		{"probe 403", modelRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &prober{probeErr: tc.probe, hold: make(chan struct{}), probed: make(chan struct{}, 1)}
			r, m, rj := pooled(t, k, &prober{})
			for i := 0; i < 3; i++ {
				r.checkRejected(as("key_"+strconv.Itoa(i), i), m.Deployments[0], "pk_0", keyRefused)
			}
			<-k.probed
			if got := r.Credentials("a"); len(got) != 1 {
				t.Fatalf("pool while probing: %v", got)
			}
			close(k.hold)
			r.probes.Wait()
			if got := r.Credentials("a"); len(got) != 2 {
				t.Fatalf("pool after the probe: %v", got)
			}
			if got := rj.get(); len(got) != 0 {
				t.Fatalf("OnRejected: %v", got)
			}
		})
	}
}

// TestLastPoolKeyIsNeverDisabled: the provider's only key stays, even
// refused by many callers and by its probe.
func TestLastPoolKeyIsNeverDisabled(t *testing.T) {
	k := &prober{scripted: scripted{err: keyRefused}, probeErr: keyRefused}
	r, m, rj := pooled(t, k)
	for i := 0; i < 10; i++ {
		r.Chat(as("key_"+strconv.Itoa(i), i), m, req)
	}
	r.probes.Wait()
	if got := r.Credentials("a"); len(got) != 1 {
		t.Fatalf("pool: %v", got)
	}
	if got := rj.get(); len(got) != 0 || k.probes.Load() == 0 {
		t.Fatalf("OnRejected %v after %d probes", got, k.probes.Load())
	}
}

// TestKeyRefusalsCountDistinctRequests: a request counts once however
// many attempts it made, and refusals older than the window are
// forgotten.
func TestKeyRefusalsCountDistinctRequests(t *testing.T) {
	g := newKeyGuard(3, 2, 60_000_000_000)
	for i := 0; i < 5; i++ {
		if v := g.refused("pk", "key_a", "req-1", int64(i)); v.probe || v.requests != 1 {
			t.Fatalf("retry %d of one request: %+v", i, v)
		}
	}
	g.refused("pk", "key_b", "req-2", 10)
	if v := g.refused("pk", "key_a", "req-3", 120_000_000_000); v.probe || v.requests != 1 {
		t.Fatalf("after the window: %+v", v)
	}
	g.refused("pk", "key_a", "req-4", 120_000_000_001)
	if v := g.refused("pk", "key_a", "req-5", 120_000_000_002); !v.probe || v.takeOut || v.callers != 1 {
		t.Fatalf("three requests of one caller: %+v", v)
	}
	if v := g.refused("pk", "key_b", "req-6", 120_000_000_003); v.probe {
		t.Fatalf("a second probe while one runs: %+v", v)
	}
}

// TestRefusedPoolKeyCostsAnAttemptNotTheAnswer: a pool key the upstream
// refuses (a key revoked upstream, not yet out of the pool) used to end
// the request with a 401 for whoever drew it, and a 401 never failed
// over. The same deployment is now tried again with another pool key;
// when every key is refused, the next deployment serves.
func TestRefusedPoolKeyCostsAnAttemptNotTheAnswer(t *testing.T) {
	t.Run("another key of the pool", func(t *testing.T) {
		bad, good := &prober{scripted: scripted{err: keyRefused}}, &prober{}
		r, m, _ := pooled(t, bad, good)
		for i := 0; i < 20; i++ {
			_, res, err := r.Chat(as("key_alice", i), m, req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if res.Attempts > 2 || res.Deployment.Provider != "a" {
				t.Fatalf("request %d: %d attempts on %s", i, res.Attempts, res.Deployment.Provider)
			}
		}
		if bad.calls.Load() == 0 || good.calls.Load() != 20 {
			t.Fatalf("calls: bad key %d, good key %d (want some, 20)", bad.calls.Load(), good.calls.Load())
		}
	})
	t.Run("every key refused: the next deployment", func(t *testing.T) {
		ka, kb := &prober{scripted: scripted{err: keyRefused}}, &prober{scripted: scripted{err: keyRefused}}
		b := &scripted{}
		r, m := newRouter(t, 1000, map[string]providers.Provider{"a": &scripted{}, "b": b}, "a", "b")
		t.Cleanup(r.Close)
		if err := r.SetCredentials("a", []Credential{{ID: "pk_0", Weight: 1, Adapter: ka}, {ID: "pk_1", Weight: 1, Adapter: kb}}); err != nil {
			t.Fatal(err)
		}
		_, res, err := r.Chat(as("key_alice", 0), m, req)
		if err != nil || res.Deployment.Provider != "b" || res.Attempts != 3 {
			t.Fatalf("went to %v in %d attempts: %v", res.Deployment, res.Attempts, err)
		}
		if ka.calls.Load() != 1 || kb.calls.Load() != 1 {
			t.Fatalf("each refused key tried once: %d, %d", ka.calls.Load(), kb.calls.Load())
		}
	})
	t.Run("a key refused without a pool: the next deployment", func(t *testing.T) {
		a, b := &scripted{err: keyRefused}, &scripted{}
		r, m := newRouter(t, 1000, map[string]providers.Provider{"a": a, "b": b}, "a", "b")
		_, res, err := r.Chat(context.Background(), m, req)
		if err != nil || res.Deployment.Provider != "b" || res.Attempts != 2 {
			t.Fatalf("went to %v in %d attempts: %v", res.Deployment, res.Attempts, err)
		}
	})
}
