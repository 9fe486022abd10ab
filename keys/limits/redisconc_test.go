package limits

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xroute/xroute/internal/testutil"
)

// patience is how long a test waits for something that must happen. It
// bounds nothing about speed (benchmarks measure that): it only keeps a
// broken test from hanging, so it is generous for a CPU-starved machine.
const patience = 30 * time.Second

// noLeaks fails t if it leaves goroutines behind. Call it first, so that
// its check runs after every other cleanup (clients and limiters closed).
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		waitRedisPools()
		goleak.VerifyNone(t, ignore)
	})
}

// waitRedisPools waits (up to patience) for the background goroutines of
// closed go-redis clients to end. They outlive Close by design: a dial in
// flight runs out its retries (pool.(*ConnPool).dialConn, started by
// queuedNewConn, 100 ms apart), and the dial prober a pool starts after
// PoolSize failed dials (pool.(*ConnPool).tryDial) sleeps 1 s between
// probes before it sees the pool closed. Waiting, rather than ignoring
// them, still catches a client a test forgot to close.
func waitRedisPools() {
	buf := make([]byte, 1<<20)
	testutil.Wait(patience, func() bool {
		n := runtime.Stack(buf, true)
		return !bytes.Contains(buf[:n], []byte("github.com/redis/go-redis/v9/internal/pool.(*ConnPool)."))
	})
}

// testRedis returns a client of the Redis named by XROUTE_TEST_REDIS_URL and
// a key prefix unique to this test, whose keys are deleted at the end. The
// test is skipped when the variable is unset.
func testRedis(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	url := os.Getenv("XROUTE_TEST_REDIS_URL")
	if url == "" {
		t.Skip("integration test: set XROUTE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run it; .ci/run does")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("XROUTE_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	prefix := fmt.Sprintf("xroute:test:conc:%s:%d:", strings.ReplaceAll(t.Name(), "/", "."), time.Now().UnixNano())
	t.Cleanup(func() {
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
		}
	})
	return rdb, prefix
}

// deadRedis returns a client of an address where nothing listens. A dial
// is tried once (DialerRetries), so it fails at once instead of retrying
// in the background after the call has given up.
func deadRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newTestConc returns a RedisConcurrency (a "replica") closed at the end.
// It waits up to patience for each Redis call: on a loaded machine the
// 200 ms default is missed, and a decision then taken locally (a fallback)
// is not what these tests check.
func newTestConc(t *testing.T, rdb redis.UniversalClient, prefix string, opts ...RedisConcurrencyOption) *RedisConcurrency {
	t.Helper()
	opts = append([]RedisConcurrencyOption{WithRedisTimeout(patience)}, opts...)
	c := NewRedisConcurrency(rdb, prefix, zap.NewNop(), opts...)
	t.Cleanup(c.Close)
	return c
}

func leaseCount(t *testing.T, rdb redis.UniversalClient, prefix, key string) int64 {
	t.Helper()
	n, err := rdb.ZCard(context.Background(), prefix+key).Result()
	if err != nil {
		t.Fatalf("ZCARD: %v", err)
	}
	return n
}

// TestRedisConcurrencyStepsAcrossReplicas: two replicas share one cap; a
// slot released by one is free for the other.
func TestRedisConcurrencyStepsAcrossReplicas(t *testing.T) {
	noLeaks(t)
	rdb, prefix := testRedis(t)
	replicas := []*RedisConcurrency{newTestConc(t, rdb, prefix), newTestConc(t, rdb, prefix)}
	const a, b = 0, 1
	steps := []struct {
		name    string
		replica int
		release bool
		want    bool  // TryAcquire's answer
		leases  int64 // in Redis afterwards
	}{
		{"A takes 1", a, false, true, 1},
		{"A takes 2", a, false, true, 2},
		{"B takes 3", b, false, true, 3},
		{"A takes 4", a, false, true, 4},
		{"B takes 5", b, false, true, 5},
		{"A is refused at the cap", a, false, false, 5},
		{"B is refused at the cap", b, false, false, 5},
		{"A releases one", a, true, false, 4},
		{"B takes the slot A freed", b, false, true, 5},
		{"A is still refused", a, false, false, 5},
		{"A releases one more", a, true, false, 4},
		{"A takes it back", a, false, true, 5},
	}
	for _, st := range steps {
		c := replicas[st.replica]
		if st.release {
			c.Release("k")
		} else if got := c.TryAcquire("k", 5); got != st.want {
			t.Fatalf("%s: TryAcquire = %v, want %v", st.name, got, st.want)
		}
		if n := leaseCount(t, rdb, prefix, "k"); n != st.leases {
			t.Fatalf("%s: %d leases in Redis, want %d", st.name, n, st.leases)
		}
	}
	for _, c := range replicas {
		for range 5 {
			c.Release("k") // more releases than held: the extra ones do nothing
		}
		if f := c.Fallbacks(); f != 0 {
			t.Errorf("fallbacks = %d with Redis up", f)
		}
	}
	if n := leaseCount(t, rdb, prefix, "k"); n != 0 {
		t.Errorf("%d leases left after every release", n)
	}
}

// TestRedisConcurrencyCapHoldsUnderContention: 50 goroutines spread over two
// replicas never hold more than the cap between them.
func TestRedisConcurrencyCapHoldsUnderContention(t *testing.T) {
	noLeaks(t)
	rdb, prefix := testRedis(t)
	replicas := []*RedisConcurrency{newTestConc(t, rdb, prefix), newTestConc(t, rdb, prefix)}
	const limit, workers, attempts = 5, 50, 20
	var (
		held, peak atomic.Int64
		admitted   [2]atomic.Int64
		wg         sync.WaitGroup
		start      = make(chan struct{})
	)
	for w := range workers {
		c := replicas[w%2]
		wg.Go(func() {
			<-start
			for range attempts {
				if !c.TryAcquire("k", limit) {
					continue
				}
				// Counted after the acquire and uncounted before the
				// release, so held never exceeds what Redis grants.
				n := held.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Millisecond)
				held.Add(-1)
				c.Release("k")
				admitted[w%2].Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("peak %d in flight; admitted %d on A, %d on B", peak.Load(), admitted[0].Load(), admitted[1].Load())
	if p := peak.Load(); p > limit {
		t.Fatalf("peak %d requests in flight across replicas, cap %d", p, limit)
	}
	if admitted[0].Load() == 0 || admitted[1].Load() == 0 {
		t.Errorf("a replica admitted nothing: A %d, B %d", admitted[0].Load(), admitted[1].Load())
	}
	if n := leaseCount(t, rdb, prefix, "k"); n != 0 {
		t.Errorf("%d leases left after every release", n)
	}
	for i, c := range replicas {
		if f := c.Fallbacks(); f != 0 {
			t.Errorf("replica %d: fallbacks = %d with Redis up", i, f)
		}
	}
}

// TestRedisConcurrencyLeaseLifetime: a dead replica's leases expire, a live
// replica's are kept alive by its refresher. Under load the holder's five
// leases are taken (and last refreshed) at different times, so the test
// waits for each to come back rather than for one moment, and asserts no
// upper bound on how long anything takes.
func TestRedisConcurrencyLeaseLifetime(t *testing.T) {
	// takeAll has holder take the key's 5 slots and checks other is refused.
	takeAll := func(t *testing.T, holder, other *RedisConcurrency) {
		t.Helper()
		for i := range 5 {
			if !holder.TryAcquire("k", 5) {
				t.Fatalf("acquire %d refused", i+1)
			}
		}
		if other.TryAcquire("k", 5) {
			t.Fatal("other replica admitted beyond the cap")
		}
	}
	// reclaim has c take n slots of "k" as they come free, waiting up to
	// patience for the last.
	reclaim := func(t *testing.T, c *RedisConcurrency, n int, what string) {
		t.Helper()
		got := 0
		if !testutil.Wait(patience, func() bool {
			for got < n && c.TryAcquire("k", 5) {
				got++
			}
			return got == n
		}) {
			t.Fatalf("%s: %d of %d slots came back within %v", what, got, n, patience)
		}
	}

	t.Run("dead replica's slots come back", func(t *testing.T) {
		noLeaks(t)
		rdb, prefix := testRedis(t)
		holder := newTestConc(t, rdb, prefix, WithLeaseTTL(300*time.Millisecond))
		other := newTestConc(t, rdb, prefix)
		takeAll(t, holder, other)
		holder.Close() // as if SIGKILLed: nothing released, nothing refreshed
		reclaim(t, other, 5, "after the holder died")
		if other.TryAcquire("k", 5) {
			t.Fatal("admitted beyond the cap after reclaiming")
		}
		if f := other.Fallbacks(); f != 0 {
			t.Errorf("fallbacks = %d with Redis up", f)
		}
	})

	t.Run("refresher keeps long requests' slots", func(t *testing.T) {
		noLeaks(t)
		rdb, prefix := testRedis(t)
		// The refresher renews every ttl/3 and gives each renewal ttl/3:
		// a lease lapses only if it fails for a whole ttl, which a ttl
		// of 1 s makes unlikely however loaded the machine.
		const ttl = time.Second
		holder := newTestConc(t, rdb, prefix, WithLeaseTTL(ttl))
		other := newTestConc(t, rdb, prefix)
		takeAll(t, holder, other)
		// Every lease was taken before start, so without renewal all had
		// expired by start+ttl; past that, they live by the refresher.
		start := time.Now()
		for time.Since(start) < ttl+ttl/2 {
			time.Sleep(20 * time.Millisecond)
			if other.TryAcquire("k", 5) {
				t.Fatalf("other replica got a live replica's slot %v after its leases were taken (lease TTL %v)", time.Since(start).Round(time.Millisecond), ttl)
			}
		}
		for range 5 {
			holder.Release("k")
		}
		// A release that failed is retried by the next refresh, hence a
		// wait rather than one attempt.
		reclaim(t, other, 1, "after the holder released")
		if f := other.Fallbacks() + holder.Fallbacks(); f != 0 {
			t.Errorf("fallbacks = %d with Redis up", f)
		}
	})
}

// TestRedisConcurrencyRedisDown: with Redis unreachable the cap is enforced
// by the replica alone, every decision is counted as a fallback, and the
// warning is logged once, not per request.
func TestRedisConcurrencyRedisDown(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprintf("cap %d", limit), func(t *testing.T) {
			noLeaks(t)
			core, logs := observer.New(zapcore.WarnLevel)
			c := NewRedisConcurrency(deadRedis(t), "t:", zap.New(core))
			t.Cleanup(c.Close)
			for i := range limit {
				if !c.TryAcquire("k", limit) {
					t.Fatalf("acquire %d refused below the cap", i+1)
				}
			}
			if c.TryAcquire("k", limit) {
				t.Fatal("admitted beyond the cap")
			}
			c.Release("k")
			if !c.TryAcquire("k", limit) {
				t.Fatal("released slot not free")
			}
			for range limit {
				c.Release("k")
			}
			if n := c.local.InFlight("k"); n != 0 {
				t.Errorf("%d local leases after every release", n)
			}
			if f, want := c.Fallbacks(), int64(limit+2); f != want {
				t.Errorf("fallbacks = %d, want %d", f, want)
			}
			if n := logs.Len(); n != 1 {
				t.Errorf("%d warnings logged, want 1: %v", n, logs.All())
			}
		})
	}
}

// TestRedisConcurrencyOutageThenRecovery: leases taken locally during an
// outage are released locally after Redis returns; the Redis leases the
// replica held through the outage count against its local cap.
func TestRedisConcurrencyOutageThenRecovery(t *testing.T) {
	noLeaks(t)
	rdb, prefix := testRedis(t)
	c := newTestConc(t, rdb, prefix)
	for range 2 {
		if !c.TryAcquire("k", 3) {
			t.Fatal("refused below the cap")
		}
	}
	c.health.skipUntil.Store(time.Now().Add(time.Hour).UnixNano()) // Redis "fails"
	if !c.TryAcquire("k", 3) {
		t.Fatal("third slot refused during the outage")
	}
	if c.TryAcquire("k", 3) {
		t.Fatal("fourth slot admitted: the Redis leases held must count locally")
	}
	if f := c.Fallbacks(); f != 2 {
		t.Errorf("fallbacks = %d, want 2", f)
	}
	c.health.skipUntil.Store(0) // Redis is back

	c.Release("k")
	if n := c.local.InFlight("k"); n != 0 {
		t.Errorf("local lease not released locally: %d in flight", n)
	}
	if n := leaseCount(t, rdb, prefix, "k"); n != 2 {
		t.Errorf("%d leases in Redis, want the 2 still held", n)
	}
	c.Release("k")
	c.Release("k")
	if n := leaseCount(t, rdb, prefix, "k"); n != 0 {
		t.Errorf("%d leases in Redis after every release", n)
	}
}

// TestRedisConcurrencyOrphansRemoved: a lease released while Redis was
// skipped is removed by the next refresh, not left to expire.
func TestRedisConcurrencyOrphansRemoved(t *testing.T) {
	noLeaks(t)
	rdb, prefix := testRedis(t)
	c := newTestConc(t, rdb, prefix)
	if !c.TryAcquire("k", 1) {
		t.Fatal("refused")
	}
	c.health.skipUntil.Store(time.Now().Add(time.Hour).UnixNano())
	c.Release("k")
	if n := leaseCount(t, rdb, prefix, "k"); n != 1 {
		t.Fatalf("%d leases in Redis during the outage, want 1", n)
	}
	if err := c.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := leaseCount(t, rdb, prefix, "k"); n != 0 {
		t.Errorf("%d leases in Redis after the refresh, want 0", n)
	}
}

// TestRedisConcurrencyUnlimited: limit <= 0 admits everything, counts it
// locally and never asks Redis (here: unreachable, yet no fallback).
func TestRedisConcurrencyUnlimited(t *testing.T) {
	for _, limit := range []int{0, -1} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			noLeaks(t)
			c := NewRedisConcurrency(deadRedis(t), "t:", zap.NewNop())
			t.Cleanup(c.Close)
			for i := range 100 {
				if !c.TryAcquire("k", limit) {
					t.Fatalf("acquire %d refused", i+1)
				}
			}
			if n := c.local.InFlight("k"); n != 100 {
				t.Errorf("%d counted, want 100", n)
			}
			for range 100 {
				c.Release("k")
			}
			if n := c.local.InFlight("k"); n != 0 {
				t.Errorf("%d counted after every release", n)
			}
			if f := c.Fallbacks(); f != 0 {
				t.Errorf("fallbacks = %d: Redis was asked", f)
			}
		})
	}
}

// TestRedisConcurrencyCloseIsIdempotent: Close twice is harmless and stops
// the refresher (noLeaks checks, once go-redis's own dial goroutines have
// ended: see waitRedisPools).
func TestRedisConcurrencyCloseIsIdempotent(t *testing.T) {
	noLeaks(t)
	c := NewRedisConcurrency(deadRedis(t), "t:", zap.NewNop(), WithLeaseTTL(3*time.Millisecond))
	c.TryAcquire("k", 1)
	time.Sleep(10 * time.Millisecond) // let the refresher run against the dead Redis
	c.Close()
	c.Close()
}

func BenchmarkRedisConcurrency(b *testing.B) {
	url := os.Getenv("XROUTE_TEST_REDIS_URL")
	if url == "" {
		b.Skip("set XROUTE_TEST_REDIS_URL to benchmark against Redis")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	prefix := fmt.Sprintf("xroute:bench:conc:%d:", time.Now().UnixNano())
	c := NewRedisConcurrency(rdb, prefix, zap.NewNop())
	defer c.Close()
	defer rdb.Del(context.Background(), prefix+"k")

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !c.TryAcquire("k", 1<<20) {
				b.Fatal("refused")
			}
			c.Release("k")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !c.TryAcquire("k", 1<<20) {
					b.Error("refused")
					return
				}
				c.Release("k")
			}
		})
	})
	if f := c.Fallbacks(); f != 0 {
		b.Fatalf("fallbacks = %d", f)
	}
}
