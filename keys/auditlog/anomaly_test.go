package auditlog

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys/internal/shardmap"
)

func anomDefaults() config.Anomaly {
	return config.Anomaly{Enabled: true, SpikeFactor: 10, Warmup: 24 * time.Hour, AuthFailures: 20,
		NewIP: true, OffHours: false, Action: "log"}
}

// anomProfile is one key's normal behaviour in the synthetic traffic.
type anomProfile struct {
	id, account string
	ips         []string // an entry ending in "::" is an IPv6 /64 with rotating host parts
	rate        int      // mean requests per minute
	tokens      int      // mean tokens per request
}

var anomProfiles = []anomProfile{
	{"key_a", "acct_1", []string{"203.0.113.10", "203.0.113.11"}, 8, 400},
	{"key_b", "acct_1", []string{"198.51.100.20"}, 20, 1200},
	{"key_c", "acct_2", []string{"192.0.2.30", "192.0.2.31", "2001:db8:5:6::"}, 4, 3000},
}

// anomSim feeds a detector with steady traffic: weekdays 09:00-17:00 UTC,
// each key at its rate ±50% a minute, tokens ±50% a request, from its few
// addresses, with a rare stray 401.
type anomSim struct {
	t      *testing.T
	d      *Detector
	rng    *rand.Rand
	alerts []Alert
}

func newAnomSim(t *testing.T, cfg config.Anomaly) *anomSim {
	clk := testutil.NewClock()
	return &anomSim{t: t, d: NewDetector(cfg, clk.Now), rng: rand.New(rand.NewPCG(1, 2))}
}

func (s *anomSim) observe(o Observation) {
	s.alerts = append(s.alerts, s.d.Observe(o)...)
}

func (s *anomSim) ip(p anomProfile) string {
	ip := p.ips[s.rng.IntN(len(p.ips))]
	if ip[len(ip)-1] == ':' {
		ip += fmt.Sprintf("%x:%x", s.rng.Uint32N(1<<16), s.rng.Uint32N(1<<16))
	}
	return ip
}

// minute simulates one minute of steady traffic starting at m.
func (s *anomSim) minute(m time.Time) {
	if wd := m.Weekday(); wd == time.Saturday || wd == time.Sunday || m.Hour() < 9 || m.Hour() >= 17 {
		return
	}
	for _, p := range anomProfiles {
		n := p.rate/2 + s.rng.IntN(p.rate+1)
		for i := range n {
			o := Observation{KeyID: p.id, AccountID: p.account, IP: s.ip(p),
				At: m.Add(time.Duration(i) * time.Minute / time.Duration(n)), Status: 200,
				Tokens: p.tokens/2 + s.rng.IntN(p.tokens+1)}
			if s.rng.IntN(2000) == 0 {
				o.Status, o.Tokens = 401, 0
			}
			s.observe(o)
		}
	}
}

// run simulates steady traffic for every minute in [from, to).
func (s *anomSim) run(from, to time.Time) {
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		s.minute(m)
	}
}

// take returns and clears the alerts so far.
func (s *anomSim) take() []Alert {
	a := s.alerts
	s.alerts = nil
	return a
}

var (
	anomWeek1 = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC) // Monday
	anomWeek2 = anomWeek1.AddDate(0, 0, 7)
)

func anomAt(day, hour, minute, second int) time.Time {
	return anomWeek2.Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour +
		time.Duration(minute)*time.Minute + time.Duration(second)*time.Second)
}

func anomCount(alerts []Alert) map[string]int {
	m := map[string]int{}
	for _, a := range alerts {
		m[a.KeyID+"/"+a.Kind]++
	}
	return m
}

// anomCheckDedup fails when one key has two alerts of one kind within the
// dedup window.
func anomCheckDedup(t *testing.T, alerts []Alert) {
	t.Helper()
	last := map[string]time.Time{}
	for _, a := range alerts {
		k := a.KeyID + "/" + a.Kind
		if prev, ok := last[k]; ok && a.At.Sub(prev) < anomDedup {
			t.Errorf("%s fired at %v and again at %v", k, prev, a.At)
		}
		last[k] = a.At
	}
}

func TestAnomalySteadyWeekIsQuiet(t *testing.T) {
	for _, offHours := range []bool{false, true} {
		t.Run(fmt.Sprintf("off_hours=%v", offHours), func(t *testing.T) {
			cfg := anomDefaults()
			cfg.OffHours = offHours
			s := newAnomSim(t, cfg)
			s.run(anomWeek1, anomWeek2.Add(48*time.Hour)) // a week, then Monday and Tuesday
			if a := s.take(); len(a) != 0 {
				t.Fatalf("%d alerts on steady traffic, first %+v", len(a), a[0])
			}
			if n := s.d.Len(); n != len(anomProfiles) {
				t.Fatalf("tracking %d keys", n)
			}
		})
	}
}

func TestAnomalyEachRuleFiresOnce(t *testing.T) {
	s := newAnomSim(t, anomDefaults())
	s.run(anomWeek1, anomWeek2.Add(24*time.Hour)) // through Monday of week 2
	if a := s.take(); len(a) != 0 {
		t.Fatalf("alerts during the steady week: %+v", a)
	}
	day := anomWeek2.Add(24 * time.Hour) // Tuesday
	for m := day; m.Before(day.Add(24 * time.Hour)); m = m.Add(time.Minute) {
		s.minute(m)
		switch m {
		case anomAt(1, 10, 5, 0): // key_a from an address it never used
			for _, ip := range []string{"198.51.100.99", "198.51.100.99", "198.51.100.100"} {
				s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: ip, At: m.Add(30 * time.Second), Status: 200, Tokens: 400})
			}
		case anomAt(1, 10, 8, 0): // within the dedup window a further new address stays quiet
			s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: "198.51.100.101", At: m.Add(30 * time.Second), Status: 200, Tokens: 400})
		case anomAt(1, 11, 0, 0): // key_b: a 20x burst
			for i := range 20 * 20 {
				s.observe(Observation{KeyID: "key_b", AccountID: "acct_1", IP: "198.51.100.20",
					At: m.Add(time.Duration(i) * 100 * time.Millisecond), Status: 200, Tokens: 1200})
			}
		case anomAt(1, 12, 0, 0): // key_c: 25 401s within a minute
			for i := range 25 {
				s.observe(Observation{KeyID: "key_c", AccountID: "acct_2", IP: "192.0.2.30",
					At: m.Add(time.Duration(i) * 2 * time.Second), Status: 401})
			}
		case anomAt(1, 14, 0, 0): // key_a: usual request count, 50x the tokens
			for i := range 8 {
				s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: "203.0.113.10",
					At: m.Add(time.Duration(i) * time.Second), Status: 200, Tokens: 20_000})
			}
		}
	}
	alerts := s.take()
	anomCheckDedup(t, alerts)
	got := anomCount(alerts)
	want := map[string]int{
		"key_a/new_ip":        1,
		"key_b/rate_spike":    1,
		"key_b/token_spike":   1,
		"key_c/auth_failures": 1,
		"key_a/token_spike":   1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts %v, want %v\n%+v", got, want, alerts)
	}
	for _, a := range alerts {
		if a.AccountID == "" || a.Detail == "" || a.At.Before(day) {
			t.Errorf("incomplete alert %+v", a)
		}
		if a.Kind == AlertNewIP && a.At != anomAt(1, 10, 5, 30) {
			t.Errorf("new_ip at %v", a.At)
		}
	}
}

func TestAnomalyOffHours(t *testing.T) {
	cfg := anomDefaults()
	cfg.OffHours = true
	s := newAnomSim(t, cfg)
	s.run(anomWeek1, anomWeek2.Add(48*time.Hour)) // through Tuesday of week 2
	if a := s.take(); len(a) != 0 {
		t.Fatalf("alerts during the steady week: %+v", a)
	}
	// Wednesday 03:00, from a known address.
	for _, m := range []int{0, 5, 7} {
		s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: "203.0.113.10", At: anomAt(2, 3, m, 0), Status: 200, Tokens: 400})
	}
	s.run(anomAt(2, 0, 0, 0).Add(9*time.Hour), anomAt(3, 0, 0, 0)) // and a normal Wednesday
	got := anomCount(s.take())
	if fmt.Sprint(got) != fmt.Sprint(map[string]int{"key_a/off_hours": 1}) {
		t.Fatalf("alerts %v", got)
	}
}

func TestAnomalyNothingBeforeWarmup(t *testing.T) {
	cfg := anomDefaults()
	cfg.OffHours = true
	s := newAnomSim(t, cfg)
	s.run(anomWeek1.Add(9*time.Hour), anomWeek1.Add(11*time.Hour)) // two hours of history
	burst := anomWeek1.Add(11*time.Hour + 30*time.Minute)
	for i := range 400 {
		s.observe(Observation{KeyID: "key_b", AccountID: "acct_1", IP: "198.51.100.20", At: burst.Add(time.Duration(i) * 100 * time.Millisecond), Status: 200, Tokens: 1200})
	}
	s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: "198.51.100.99", At: burst, Status: 200, Tokens: 400})
	s.observe(Observation{KeyID: "key_c", AccountID: "acct_2", IP: "192.0.2.30", At: anomWeek1.Add(27 * time.Hour), Status: 200, Tokens: 400}) // Tuesday 03:00
	if a := s.take(); len(a) != 0 {
		t.Fatalf("alerts before warmup: %+v", a)
	}
	// Once warm, an address learned during warmup stays quiet; a new one
	// does not.
	after := anomWeek1.Add(34 * time.Hour) // Tuesday 10:00
	s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: "198.51.100.99", At: after, Status: 200, Tokens: 400})
	s.observe(Observation{KeyID: "key_a", AccountID: "acct_1", IP: "198.51.100.77", At: after, Status: 200, Tokens: 400})
	if got := anomCount(s.take()); fmt.Sprint(got) != fmt.Sprint(map[string]int{"key_a/new_ip": 1}) {
		t.Fatalf("after warmup: %v", got)
	}
}

func TestAnomalyAuthFailuresNeedNoHistory(t *testing.T) {
	s := newAnomSim(t, anomDefaults())
	start := anomWeek1.Add(10 * time.Hour)
	fail := func(at time.Time) {
		s.observe(Observation{KeyID: "key_x", AccountID: "acct_9", IP: "192.0.2.99", At: at, Status: 403})
	}
	for i := range 19 {
		fail(start.Add(time.Duration(i) * time.Second))
	}
	if a := s.take(); len(a) != 0 {
		t.Fatalf("19 failures: %+v", a)
	}
	fail(start.Add(30 * time.Second))
	if got := anomCount(s.take()); got["key_x/auth_failures"] != 1 {
		t.Fatalf("20 failures within a minute: %v", got)
	}
	// The window slides across minute boundaries: 10 late in one minute
	// and 11 early in the next are 21 within a minute.
	s = newAnomSim(t, anomDefaults())
	for i := range 10 {
		fail(start.Add(50*time.Second + time.Duration(i)*time.Second))
	}
	for i := range 11 {
		fail(start.Add(60*time.Second + time.Duration(i)*100*time.Millisecond))
	}
	if got := anomCount(s.take()); got["key_x/auth_failures"] != 1 {
		t.Fatalf("20 failures across a minute boundary: %v", got)
	}
	// 15 a minute, every minute, never reach 20 within a minute.
	s = newAnomSim(t, anomDefaults())
	for m := range 60 {
		for i := range 15 {
			fail(start.Add(time.Duration(m)*time.Minute + time.Duration(i)*4*time.Second))
		}
	}
	if a := s.take(); len(a) != 0 {
		t.Fatalf("15 a minute: %d alerts, first %+v", len(a), a[0])
	}
}

func TestAnomalyDedupWindow(t *testing.T) {
	s := newAnomSim(t, anomDefaults())
	start := anomWeek1.Add(10 * time.Hour)
	burst := func(minute int) {
		for i := range 25 {
			s.observe(Observation{KeyID: "key_x", IP: "192.0.2.99", Status: 401,
				At: start.Add(time.Duration(minute)*time.Minute + time.Duration(i)*time.Second)})
		}
	}
	var fired []int
	for _, m := range []int{0, 3, 9, 11, 12, 20, 30} {
		burst(m)
		if len(s.take()) > 0 {
			fired = append(fired, m)
		}
	}
	if fmt.Sprint(fired) != "[0 11 30]" {
		t.Fatalf("auth_failures fired in minutes %v, want [0 11 30]", fired)
	}

	// A sustained 20x spike alerts once per window at most.
	s = newAnomSim(t, anomDefaults())
	s.run(anomWeek1, anomWeek2)
	from := anomWeek2.Add(10 * time.Hour)
	for m := range 30 {
		for i := range 400 {
			s.observe(Observation{KeyID: "key_b", AccountID: "acct_1", IP: "198.51.100.20", Status: 200, Tokens: 1200,
				At: from.Add(time.Duration(m)*time.Minute + time.Duration(i)*100*time.Millisecond)})
		}
	}
	alerts := s.take()
	anomCheckDedup(t, alerts)
	if got := anomCount(alerts); got["key_b/rate_spike"] < 1 || got["key_b/rate_spike"] > 3 || len(got) != 2 {
		t.Fatalf("sustained spike: %v", got)
	}
}

func TestAnomalyRoamingKeysAndIPv6(t *testing.T) {
	s := newAnomSim(t, anomDefaults())
	start := anomWeek1.Add(9 * time.Hour)
	for i := range 20 { // serverless egress: a new address every few minutes
		s.observe(Observation{KeyID: "roam", IP: "198.18.0." + strconv.Itoa(i), At: start.Add(time.Duration(i) * 3 * time.Minute), Status: 200})
		s.observe(Observation{KeyID: "pinned", IP: "2001:db8:7:8::" + strconv.Itoa(i), At: start.Add(time.Duration(i) * 3 * time.Minute), Status: 200})
	}
	later := start.Add(48 * time.Hour)
	s.observe(Observation{KeyID: "roam", IP: "198.18.1.1", At: later, Status: 200})
	s.observe(Observation{KeyID: "pinned", IP: "2001:db8:7:8:aaaa:bbbb:cccc:dddd", At: later, Status: 200})
	if a := s.take(); len(a) != 0 {
		t.Fatalf("alerts: %+v", a)
	}
	s.observe(Observation{KeyID: "pinned", IP: "2001:db8:7:9::1", At: later.Add(time.Minute), Status: 200})
	if got := anomCount(s.take()); got["pinned/new_ip"] != 1 {
		t.Fatalf("a new /64 must alert: %v", got)
	}
}

func TestAnomalyMemoryBounds(t *testing.T) {
	clk := testutil.NewClock()
	d := NewDetector(anomDefaults(), clk.Now)
	d.perShard = 4
	for i := range 10_000 {
		d.Observe(Observation{KeyID: "key_" + strconv.Itoa(i), IP: "192.0.2.1", At: clk.Now(), Status: 200})
		clk.Advance(time.Second)
	}
	if n := d.Len(); n > 4*shardmap.Count {
		t.Fatalf("tracking %d keys, cap %d", n, 4*shardmap.Count)
	}

	d = NewDetector(anomDefaults(), clk.Now)
	for i := range 2000 {
		d.Observe(Observation{KeyID: "k", IP: fmt.Sprintf("10.0.%d.%d", i>>8, i&255), At: clk.Now(), Status: 200})
		clk.Advance(time.Second)
	}
	for i := range d.shards {
		for _, k := range d.shards[i].M {
			if len(k.ips) > anomMaxIPs {
				t.Fatalf("%d addresses kept", len(k.ips))
			}
		}
	}
	d.Observe(Observation{KeyID: "k2", At: clk.Now(), Status: 200})
	clk.Advance(7 * 24 * time.Hour)
	d.Observe(Observation{KeyID: "k2", At: clk.Now(), Status: 200})
	clk.Advance(2 * 24 * time.Hour)
	if n := d.Sweep(); n != 1 || d.Len() != 1 {
		t.Fatalf("Sweep removed %d, %d left", n, d.Len())
	}
}

func TestAnomalyDisabled(t *testing.T) {
	cfg := anomDefaults()
	cfg.Enabled = false
	d := NewDetector(cfg, testutil.NewClock().Now)
	for range 100 {
		if a := d.Observe(Observation{KeyID: "k", Status: 401}); a != nil {
			t.Fatal(a)
		}
	}
	if d.Len() != 0 {
		t.Fatal("a disabled detector must keep nothing")
	}
}

func TestAnomalyObserveDoesNotAllocate(t *testing.T) {
	clk := testutil.NewClock()
	d := NewDetector(anomDefaults(), clk.Now)
	o := Observation{KeyID: "key_a", AccountID: "acct", IP: "203.0.113.1", At: clk.Now(), Status: 200, Tokens: 100}
	d.Observe(o)
	if n := testing.AllocsPerRun(1000, func() { d.Observe(o) }); n != 0 {
		t.Fatalf("%v allocations per Observe", n)
	}
}

func BenchmarkAnomalyObserve(b *testing.B) {
	d := NewDetector(anomDefaults(), time.Now)
	ids := make([]string, 256)
	for i := range ids {
		ids[i] = "key_" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			d.Observe(Observation{KeyID: ids[i&255], AccountID: "acct", IP: "203.0.113.1", Status: 200, Tokens: 500})
			i++
		}
	})
}

func TestAnomalySpikeFloor(t *testing.T) {
	// A key at 1 request a minute: 11 in a minute is not a spike (below the
	// absolute floor of 30), 40 is.
	s := newAnomSim(t, anomDefaults())
	start := anomWeek1.Add(9 * time.Hour)
	for m := range 26 * 60 {
		s.observe(Observation{KeyID: "slow", IP: "192.0.2.5", At: start.Add(time.Duration(m) * time.Minute), Status: 200, Tokens: 100})
	}
	burst := func(at time.Time, n int) {
		for i := range n {
			s.observe(Observation{KeyID: "slow", IP: "192.0.2.5", At: at.Add(time.Duration(i) * time.Second), Status: 200, Tokens: 100})
		}
	}
	burst(start.Add(26*time.Hour+30*time.Second), 11)
	if a := s.take(); len(a) != 0 {
		t.Fatalf("1 -> 11 requests a minute: %+v", a)
	}
	burst(start.Add(26*time.Hour+2*time.Minute), 40)
	if got := anomCount(s.take()); fmt.Sprint(got) != fmt.Sprint(map[string]int{"slow/rate_spike": 1}) {
		t.Fatalf("1 -> 40 requests a minute: %v", got)
	}
}
