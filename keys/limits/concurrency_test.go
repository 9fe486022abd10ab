package limits

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestConcurrencyAcquireRelease(t *testing.T) {
	c := NewConcurrency()
	var releases []func()
	for i := range 3 {
		rel, ok := c.Acquire("k", 3)
		if !ok {
			t.Fatalf("acquire %d refused", i)
		}
		releases = append(releases, rel)
	}
	if rel, ok := c.Acquire("k", 3); ok {
		t.Fatal("4th acquire allowed")
	} else {
		rel() // harmless
	}
	if c.InFlight("k") != 3 || c.InFlight("other") != 0 {
		t.Fatalf("InFlight = %d", c.InFlight("k"))
	}
	if _, ok := c.Acquire("other", 3); !ok {
		t.Fatal("keys are independent")
	}
	releases[0]()
	releases[0]() // idempotent
	releases[0]()
	if c.InFlight("k") != 2 {
		t.Fatalf("idempotent release: InFlight = %d", c.InFlight("k"))
	}
	rel, ok := c.Acquire("k", 3)
	if !ok {
		t.Fatal("a released slot must be reusable")
	}
	releases[0]() // a late double release must not free the new holder's slot
	if c.InFlight("k") != 3 {
		t.Fatalf("InFlight = %d", c.InFlight("k"))
	}
	rel()
	releases[1]()
	releases[2]()
	if c.InFlight("k") != 0 {
		t.Fatalf("InFlight = %d", c.InFlight("k"))
	}

	// TryAcquire/Release, and unlimited max.
	for range 5 {
		if !c.TryAcquire("u", 0) {
			t.Fatal("max 0 is unlimited")
		}
	}
	if !c.TryAcquire("t", 1) || c.TryAcquire("t", 1) {
		t.Fatal("TryAcquire")
	}
	c.Release("t")
	c.Release("t") // nothing in flight: no-op
	if c.InFlight("t") != 0 || c.InFlight("u") != 5 {
		t.Fatal("Release")
	}
	for range 5 {
		c.Release("u")
	}
	c.Release("other")
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].M)
	}
	if n != 0 {
		t.Fatalf("%d entries left with nothing in flight", n)
	}
}

func TestConcurrencyCapHoldsUnderContention(t *testing.T) {
	c := NewConcurrency()
	const limit = 4
	var inside, peak atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				rel, ok := c.Acquire("k", limit)
				if !ok {
					continue
				}
				n := inside.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				inside.Add(-1)
				rel()
				rel()
			}
		}()
	}
	wg.Wait()
	if peak.Load() > limit || c.InFlight("k") != 0 {
		t.Fatalf("peak %d (limit %d), %d still in flight", peak.Load(), limit, c.InFlight("k"))
	}
}

func TestConcurrencyAllocations(t *testing.T) {
	c := NewConcurrency()
	c.TryAcquire("warm", 0) // keep the shard's map grown
	if n := testing.AllocsPerRun(1000, func() {
		if c.TryAcquire("k", 10) {
			c.Release("k")
		}
	}); n != 0 {
		t.Fatalf("TryAcquire+Release: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		rel, _ := c.Acquire("k", 10)
		rel()
	}); n > 1 {
		t.Fatalf("Acquire: %v allocations", n)
	}
}

func BenchmarkConcurrencyAcquire(b *testing.B) {
	c := NewConcurrency()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rel, _ := c.Acquire("key_0123456789abcdef", 0)
			rel()
		}
	})
}

func BenchmarkConcurrencyTryAcquire(b *testing.B) {
	c := NewConcurrency()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.TryAcquire("key_0123456789abcdef", 0)
			c.Release("key_0123456789abcdef")
		}
	})
}

// ---------------------------------------------------------------------------
