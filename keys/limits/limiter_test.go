package limits

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	"github.com/xroute/xroute/keys/internal/shardmap"
)

func TestGCRABurstThenRefill(t *testing.T) {
	clk := testutil.NewClock()
	l := NewLimiter(clk.Now)
	r := PerMinute(600)
	for i := range 600 {
		d := l.Allow("k", r, 1)
		if !d.Allowed || d.Remaining != 599-i || d.Limit != 600 {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.Allow("k", r, 1)
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != 100*time.Millisecond || d.ResetAfter != time.Minute || d.Impossible {
		t.Fatalf("601st request: %+v", d)
	}
	clk.Advance(99 * time.Millisecond)
	if d := l.Allow("k", r, 1); d.Allowed || d.RetryAfter != time.Millisecond {
		t.Fatalf("after 99ms: %+v", d)
	}
	clk.Advance(time.Millisecond)
	if d := l.Allow("k", r, 1); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 100ms: %+v", d)
	}
	clk.Advance(time.Minute)
	if d := l.Allow("k", r, 1); !d.Allowed || d.Remaining != 599 || d.ResetAfter != 100*time.Millisecond {
		t.Fatalf("after a full period: %+v", d)
	}
	if d := l.Allow("other", r, 1); !d.Allowed || d.Remaining != 599 {
		t.Fatalf("keys are independent: %+v", d)
	}
}

func TestGCRAExactBurstForAwkwardLimits(t *testing.T) {
	for _, r := range []Rate{PerMinute(1), PerMinute(7), PerMinute(999_983), PerMinute(3_000_000), {Limit: 5, Period: time.Second}, {Limit: 100, Period: 24 * time.Hour}} {
		t.Run(fmt.Sprintf("%d/%s", r.Limit, r.Period), func(t *testing.T) {
			l := NewLimiter(testutil.NewClock().Now)
			if d := l.Allow("k", r, r.Limit); !d.Allowed || d.Remaining != 0 {
				t.Fatalf("a full burst must fit: %+v", d)
			}
			if d := l.Allow("k", r, 1); d.Allowed || d.RetryAfter <= 0 {
				t.Fatalf("one more unit must not: %+v", d)
			}
			l2 := NewLimiter(testutil.NewClock().Now)
			for i := range min(r.Limit, 10_000) {
				if d := l2.Allow("k", r, 1); !d.Allowed || d.Remaining != r.Limit-1-i {
					t.Fatalf("unit %d: %+v", i, d)
				}
			}
		})
	}
}

func TestGCRATokenCostsAndImpossible(t *testing.T) {
	clk := testutil.NewClock()
	l := NewLimiter(clk.Now)
	r := PerMinute(10_000) // 6ms per token
	if d := l.Allow("k", r, 6000); !d.Allowed || d.Remaining != 4000 || d.ResetAfter != 36*time.Second {
		t.Fatalf("first: %+v", d)
	}
	d := l.Allow("k", r, 6000)
	if d.Allowed || d.RetryAfter != 12*time.Second || d.Remaining != 4000 {
		t.Fatalf("second must wait until 2000 more tokens are back: %+v", d)
	}
	d = l.Allow("k", r, 10_001)
	if d.Allowed || !d.Impossible || d.RetryAfter != -1 || d.Remaining != 4000 {
		t.Fatalf("cost above the limit: %+v", d)
	}
	if d := l.Peek("k", r); d.Remaining != 4000 {
		t.Fatalf("denied calls must not spend: %+v", d)
	}
	if d := l.Allow("fresh", r, 10_001); !d.Impossible || l.Peek("fresh", r).Remaining != 10_000 {
		t.Fatalf("impossible on a fresh key: %+v", d)
	}
	clk.Advance(12 * time.Second)
	if d := l.Allow("k", r, 6000); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after RetryAfter: %+v", d)
	}
}

func TestGCRAPeek(t *testing.T) {
	clk := testutil.NewClock()
	l := NewLimiter(clk.Now)
	r := PerMinute(60)
	if d := l.Peek("k", r); !d.Allowed || d.Remaining != 60 || d.ResetAfter != 0 || d.Limit != 60 {
		t.Fatalf("fresh: %+v", d)
	}
	l.Allow("k", r, 60)
	for range 3 {
		if d := l.Peek("k", r); d.Allowed || d.Remaining != 0 || d.ResetAfter != time.Minute || d.RetryAfter != time.Second {
			t.Fatalf("empty bucket: %+v", d)
		}
	}
	clk.Advance(2 * time.Second)
	if d := l.Peek("k", r); !d.Allowed || d.Remaining != 2 || d.ResetAfter != 58*time.Second {
		t.Fatalf("after 2s: %+v", d)
	}
	if l.Len() != 1 {
		t.Fatalf("Peek must not add keys: %d", l.Len())
	}
	l.Peek("never", r)
	if l.Len() != 1 {
		t.Fatalf("Peek must not add keys: %d", l.Len())
	}
}

func TestGCRAAdjust(t *testing.T) {
	clk := testutil.NewClock()
	l := NewLimiter(clk.Now)
	r := PerMinute(10_000)

	// Refund: estimated 6000, used 1000.
	l.Allow("k", r, 6000)
	l.Adjust("k", r, -5000)
	if d := l.Peek("k", r); d.Remaining != 9000 {
		t.Fatalf("after refund: %+v", d)
	}
	// A refund never moves the TAT before now (no credit beyond a full
	// bucket).
	l.Adjust("k", r, -9000)
	l.Adjust("k", r, -9000)
	if d := l.Peek("k", r); d.Remaining != 10_000 || l.Len() != 0 {
		t.Fatalf("after over-refund: %+v, %d entries", d, l.Len())
	}
	if d := l.Allow("k", r, 10_000); !d.Allowed {
		t.Fatalf("a refund must not create extra burst: %+v", d)
	}
	if d := l.Allow("k", r, 1); d.Allowed {
		t.Fatalf("a refund must not create extra burst: %+v", d)
	}

	// Charge: the usage beyond the estimate is taken without denying and
	// becomes debt.
	clk.Advance(time.Minute)
	l.Allow("c", r, 5000)
	l.Adjust("c", r, 8000) // 13000 spent: 3000 in debt
	d := l.Peek("c", r)
	if d.Allowed || d.Remaining != 0 || d.ResetAfter != 78*time.Second || d.RetryAfter != 18*time.Second+6*time.Millisecond {
		t.Fatalf("after charge: %+v", d)
	}
	// A charge on an unknown key.
	l.Adjust("new", r, 500)
	if d := l.Peek("new", r); d.Remaining != 9500 {
		t.Fatalf("charge on a fresh key: %+v", d)
	}
	// The debt is capped at one period beyond a full bucket.
	l.Adjust("c", r, 1<<40)
	if d := l.Peek("c", r); d.ResetAfter != 2*time.Minute {
		t.Fatalf("debt cap: %+v", d)
	}
	l.Adjust("c", r, -1<<40)
	if d := l.Peek("c", r); d.Remaining != 10_000 {
		t.Fatalf("huge refund: %+v", d)
	}
}

func TestGCRAUnlimited(t *testing.T) {
	l := NewLimiter(testutil.NewClock().Now)
	for _, r := range []Rate{{}, {Limit: 10}, {Period: time.Minute}, PerMinute(-1)} {
		for range 100 {
			if d := l.Allow("k", r, 1000); !d.Allowed || d.Limit != 0 {
				t.Fatalf("%+v: %+v", r, d)
			}
		}
		l.Adjust("k", r, 5)
		if d := l.Peek("k", r); !d.Allowed {
			t.Fatalf("%+v: %+v", r, d)
		}
	}
	if l.Len() != 0 {
		t.Fatalf("unlimited rates must not store keys: %d", l.Len())
	}
}

func TestGCRASweepAndCap(t *testing.T) {
	clk := testutil.NewClock()
	l := NewLimiter(clk.Now)
	for i := range 1000 {
		l.Allow("k"+strconv.Itoa(i), PerMinute(60), 1) // each full again after 1s
	}
	l.Allow("busy", PerMinute(1), 1) // full again after 1 minute
	if n := l.Len(); n != 1001 {
		t.Fatalf("Len = %d", n)
	}
	clk.Advance(2 * time.Second)
	if n := l.Sweep(); n != 1000 || l.Len() != 1 {
		t.Fatalf("Sweep removed %d, %d left", n, l.Len())
	}
	if d := l.Allow("busy", PerMinute(1), 1); d.Allowed {
		t.Fatalf("Sweep must keep live entries: %+v", d)
	}

	// The hard cap holds without any Sweep, even when nothing has expired.
	l = NewLimiter(clk.Now)
	l.perShard = 8
	for i := range 100_000 {
		l.Allow("flood"+strconv.Itoa(i), PerMinute(1), 1)
	}
	if n := l.Len(); n > 8*shardmap.Count {
		t.Fatalf("cap exceeded: %d entries", n)
	}
}

func TestGCRAConcurrentAllowIsExact(t *testing.T) {
	l := NewLimiter(testutil.NewClock().Now) // frozen clock: no refill
	r := PerMinute(1000)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if l.Allow("k", r, 1).Allowed {
					allowed.Add(1)
				}
				l.Peek("k", r)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 1000 {
		t.Fatalf("allowed %d of 4000, want exactly 1000", allowed.Load())
	}
}

func TestGCRAAllowDoesNotAllocate(t *testing.T) {
	l := NewLimiter(testutil.NewClock().Now)
	r := PerMinute(1 << 30)
	l.Allow("key_0123456789abcdef", r, 1000) // the entry stays through the loop
	if n := testing.AllocsPerRun(1000, func() {
		l.Allow("key_0123456789abcdef", r, 1)
		l.Peek("key_0123456789abcdef", r)
		l.Adjust("key_0123456789abcdef", r, -1)
	}); n != 0 {
		t.Fatalf("%v allocations per Allow+Peek+Adjust", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := NewLimiter(time.Now)
	r := PerMinute(1 << 30)
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "key_" + strconv.Itoa(i) + "_0123456789"
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(97))
		for pb.Next() {
			l.Allow(ids[i&1023], r, 1)
			i++
		}
	})
}

func BenchmarkAllowOneKey(b *testing.B) {
	l := NewLimiter(time.Now)
	r := PerMinute(1 << 30)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("key_0123456789abcdef", r, 1)
		}
	})
}

// ---------------------------------------------------------------------------
