package limits

import (
	"fmt"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"
)

func TestThrottleFloodBlocksWithGrowingBackoff(t *testing.T) {
	clk := testutil.NewClock()
	a := NewAuthThrottle(10, 5*time.Minute, clk.Now)
	const ip = "203.0.113.7"
	for i := range 10 {
		if _, blocked := a.Check(ip); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		a.Failed(ip)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for i, w := range want {
		w *= time.Second
		retry, blocked := a.Check(ip)
		if !blocked || retry != w {
			t.Fatalf("block %d: retry %v blocked %v, want %v", i, retry, blocked, w)
		}
		// The attacker keeps hammering while blocked: answered without
		// verifying, so nothing is recorded.
		clk.Advance(w / 2)
		if r, b := a.Check(ip); !b || r != w/2 {
			t.Fatalf("half-way through block %d: %v %v", i, r, b)
		}
		if _, b := a.Check("203.0.113.8"); b {
			t.Fatal("another address must not be blocked")
		}
		clk.Advance(w / 2)
		if _, b := a.Check(ip); b {
			t.Fatalf("still blocked after block %d", i)
		}
		a.Failed(ip) // the next guess fails again
	}
}

// TestThrottleReportsEachBurstOnce: failures add up (a success in between
// is not the throttle's business), and the burst that starts a block is
// reported once, for one anomaly alert.
func TestThrottleReportsEachBurstOnce(t *testing.T) {
	clk := testutil.NewClock()
	a := NewAuthThrottle(5, time.Minute, clk.Now)
	const ip = "198.51.100.1"
	bursts := 0
	for i := range 4 {
		if a.Failed(ip) {
			t.Fatalf("burst reported after %d failures", i+1)
		}
	}
	// (a valid key authenticates here: the throttle is not told)
	if a.Failed(ip) {
		bursts++
	}
	if _, b := a.Check(ip); !b || bursts != 1 {
		t.Fatalf("5 failures with a success among them: blocked %v, bursts %d", b, bursts)
	}
	for range 10 {
		if a.Failed(ip) {
			bursts++
		}
	}
	if bursts != 1 {
		t.Fatalf("one burst reported %d times", bursts)
	}
}

func TestThrottleFailuresDecay(t *testing.T) {
	clk := testutil.NewClock()
	a := NewAuthThrottle(5, time.Minute, clk.Now)
	const ip = "198.51.100.1"

	// Failures older than the window are forgotten: 4 a minute never block.
	for range 30 {
		for range 4 {
			a.Failed(ip)
		}
		if _, b := a.Check(ip); b {
			t.Fatal("a slow drip must not block")
		}
		clk.Advance(time.Minute)
	}

	// An episode ends when the address stays quiet for a window after its
	// last block ended: then it gets the full burst again.
	for range 8 {
		a.Failed(ip)
	}
	r, _ := a.Check(ip)
	if r != 8*time.Second {
		t.Fatalf("retry %v", r)
	}
	clk.Advance(8*time.Second + time.Minute)
	for range 4 {
		a.Failed(ip)
	}
	if _, b := a.Check(ip); b {
		t.Fatal("a forgiven address must get its burst back")
	}
	if n := a.Sweep(); n != 0 {
		t.Fatalf("Sweep removed a live entry (%d)", n)
	}
	clk.Advance(time.Minute)
	if n := a.Sweep(); n != 1 || a.Len() != 0 {
		t.Fatalf("Sweep removed %d, %d left", n, a.Len())
	}
}

func TestThrottleGroupsAddresses(t *testing.T) {
	clk := testutil.NewClock()
	a := NewAuthThrottle(3, time.Minute, clk.Now)
	// One client owns a /64: rotating through it does not escape.
	for i := range 3 {
		a.Failed(fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if _, b := a.Check("2001:db8:1:2:ffff:ffff:ffff:ffff"); !b {
		t.Fatal("the /64 must be blocked")
	}
	if _, b := a.Check("2001:db8:1:3::1"); b {
		t.Fatal("another /64 must not be blocked")
	}
	for range 3 {
		a.Failed("::ffff:192.0.2.1")
	}
	if _, b := a.Check("192.0.2.1"); !b {
		t.Fatal("an IPv4-mapped address is its IPv4 address")
	}
	if _, b := a.Check("192.0.2.2"); b {
		t.Fatal("IPv4 addresses are not grouped")
	}
}

func TestThrottleMemoryCapUnderDistinctIPFlood(t *testing.T) {
	clk := testutil.NewClock()
	a := NewAuthThrottle(10, 5*time.Minute, clk.Now)
	const attacker = "192.0.2.66"
	for range 20 {
		a.Failed(attacker)
	}
	for i := range 100_000 {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		if _, b := a.Check(ip); b {
			t.Fatalf("%s blocked after a single failure", ip)
		}
		a.Failed(ip)
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	if n := a.Len(); n > DefaultThrottleEntries {
		t.Fatalf("%d entries, cap %d", n, DefaultThrottleEntries)
	}
	if _, b := a.Check(attacker); !b {
		t.Fatal("a flood of fresh addresses must not free a blocked one")
	}
}

func TestThrottleCheckDoesNotAllocate(t *testing.T) {
	a := NewAuthThrottle(10, time.Minute, time.Now)
	a.Failed("203.0.113.9")
	if n := testing.AllocsPerRun(1000, func() {
		a.Check("203.0.113.9")
		a.Check("2001:db8::1")
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkThrottleCheck(b *testing.B) {
	a := NewAuthThrottle(10, time.Minute, time.Now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Check("203.0.113.9")
		}
	})
}
