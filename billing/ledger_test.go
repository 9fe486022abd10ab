package billing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

var ledgerNow = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return ledgerNow }

// ledgerStore opens a real SQLite store in a temp dir with the accounts.
func ledgerStore(t testing.TB, accounts ...string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, id := range accounts {
		if err := db.CreateAccount(ctx, keys.Account{ID: id, Name: id, CreatedAt: ledgerNow}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func usd(t testing.TB, s string) Nano {
	t.Helper()
	n, err := ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wantBalance(t *testing.T, l *Ledger, id string, balance, reserved Nano) {
	t.Helper()
	b, r, a, err := l.Balance(context.Background(), id)
	if err != nil || b != balance || r != reserved || a != balance-reserved {
		t.Fatalf("Balance(%s) = %s, %s, %s, %v; want %s, %s", id, b, r, a, err, balance, reserved)
	}
}

func TestParseUSD(t *testing.T) {
	cases := []struct {
		in   string
		want Nano
		err  bool
	}{
		{"10", 10 * NanoPerUSD, false},
		{"10.00", 10 * NanoPerUSD, false},
		{" 0.5 ", NanoPerUSD / 2, false},
		{"0.000000001", 1, false},
		{"-2.25", -2_250_000_000, false},
		{"+3", 3 * NanoPerUSD, false},
		{"1000000000", MaxAmount, false},
		{"1000000000.000000001", 0, true},
		{"0.0000000001", 0, true},
		{"1e3", 0, true},
		{"$5", 0, true},
		{"1,000", 0, true},
		{"", 0, true},
		{".5", 0, true},
		{"5.", 0, true},
		{"-", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, c := range cases {
		got, err := ParseUSD(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d, err %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestNanoString(t *testing.T) {
	cases := []struct {
		n    Nano
		want string
	}{
		{0, "0.00"}, {10 * NanoPerUSD, "10.00"}, {NanoPerUSD / 2, "0.50"}, {1234, "0.000001234"},
		{-1_500_000_000, "-1.50"}, {123_456_789_012, "123.456789012"},
		{math.MinInt64, "-9223372036.854775808"}, {math.MaxInt64, "9223372036.854775807"},
	}
	for _, c := range cases {
		if got := c.n.String(); got != c.want {
			t.Errorf("Nano(%d).String() = %q, want %q", int64(c.n), got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		n := Nano(rng.Int64N(int64(2*MaxAmount)) - int64(MaxAmount))
		if back, err := ParseUSD(n.String()); err != nil || back != n {
			t.Fatalf("round trip of %d: %q -> %d, %v", int64(n), n.String(), back, err)
		}
	}
}

func TestMultipliers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		err  bool
	}{{"1", 10000, false}, {"1.25", 12500, false}, {"0.5x", 5000, false}, {"0.0001", 1, false}, {"1000", MaxMultiplierBP, false},
		{"0", 0, true}, {"0.00001", 0, true}, {"1000.0001", 0, true}, {"-1", 0, true}, {"abc", 0, true}} {
		got, err := ParseMultiplier(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseMultiplier(%q) = %d, %v", c.in, got, err)
		}
		if err == nil {
			if back, _ := ParseMultiplier(FormatMultiplier(got)); back != got {
				t.Errorf("FormatMultiplier(%d) = %q does not parse back", got, FormatMultiplier(got))
			}
		}
	}
	for _, c := range []struct {
		cost Nano
		bp   int
		want Nano
	}{
		{1000, 12500, 1250}, {1, 12500, 2}, {3, 3333, 1}, {0, 12500, 0}, {1000, 0, 1000},
		{-1000, 12500, -1250}, {math.MaxInt64, MaxMultiplierBP, math.MaxInt64},
	} {
		if got := ApplyMultiplier(c.cost, c.bp); got != c.want {
			t.Errorf("ApplyMultiplier(%d, %d) = %d, want %d", c.cost, c.bp, got, c.want)
		}
	}
}

func TestTopUpIsIdempotent(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(ledgerStore(t, "acct_a"), fixedClock)
	first, replayed, err := l.TopUp(ctx, "acct_a", usd(t, "10.00"), "inv-1", "cli")
	if err != nil || replayed || first.ID == 0 || first.Kind != KindTopUp || first.Actor != "cli" || !first.CreatedAt.Equal(ledgerNow) {
		t.Fatalf("TopUp = %+v, %v, %v", first, replayed, err)
	}
	again, replayed, err := l.TopUp(ctx, "acct_a", usd(t, "10.00"), "inv-1", "cli")
	if err != nil || !replayed || again.ID != first.ID {
		t.Fatalf("replay = %+v, %v, %v", again, replayed, err)
	}
	if _, _, err := l.TopUp(ctx, "acct_a", usd(t, "11.00"), "inv-1", "cli"); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("same key, other amount: %v", err)
	}
	wantBalance(t, l, "acct_a", usd(t, "10"), 0)
	if _, _, err := l.Adjust(ctx, "acct_a", usd(t, "-2.5"), "fix-1", "admin:key_x", "double charge"); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "acct_a", usd(t, "7.5"), 0)
	if _, _, err := l.TopUp(ctx, "nobody", 1, "k", "cli"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	entries, err := l.Entries(ctx, "acct_a", 10, 0)
	if err != nil || len(entries) != 2 || entries[0].Kind != KindAdjustment || entries[0].Reference != "double charge" || entries[1].ID != first.ID {
		t.Fatalf("Entries = %+v, %v", entries, err)
	}
	if mm, err := l.Verify(ctx); err != nil || len(mm) != 0 {
		t.Fatalf("Verify = %+v, %v", mm, err)
	}
}

func TestPostRejectsBadPostings(t *testing.T) {
	l := NewLedger(ledgerStore(t, "acct_a"), fixedClock)
	for _, c := range []struct {
		name string
		p    Posting
	}{
		{"negative top-up", Posting{AccountID: "acct_a", Kind: KindTopUp, Amount: -1, IdempotencyKey: "k"}},
		{"zero top-up", Posting{AccountID: "acct_a", Kind: KindTopUp, Amount: 0, IdempotencyKey: "k"}},
		{"zero adjustment", Posting{AccountID: "acct_a", Kind: KindAdjustment, Amount: 0, IdempotencyKey: "k"}},
		{"positive expiry", Posting{AccountID: "acct_a", Kind: KindExpiry, Amount: 1, IdempotencyKey: "k"}},
		{"usage", Posting{AccountID: "acct_a", Kind: KindUsage, Amount: -1, IdempotencyKey: "k"}},
		{"no key", Posting{AccountID: "acct_a", Kind: KindTopUp, Amount: 1}},
		{"usage key", Posting{AccountID: "acct_a", Kind: KindTopUp, Amount: 1, IdempotencyKey: "usage:req_1"}},
		{"too large", Posting{AccountID: "acct_a", Kind: KindTopUp, Amount: MaxAmount + 1, IdempotencyKey: "k"}},
		{"no account", Posting{Kind: KindTopUp, Amount: 1, IdempotencyKey: "k"}},
	} {
		if _, _, err := l.Post(context.Background(), c.p); !errors.Is(err, ErrInvalidPosting) {
			t.Errorf("%s: %v, want ErrInvalidPosting", c.name, err)
		}
	}
}

func TestReserveSettleRelease(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	l := NewLedger(db, fixedClock)
	if _, _, err := l.TopUp(ctx, "acct_a", 100, "t1", "cli"); err != nil {
		t.Fatal(err)
	}
	r1, err := l.Reserve(ctx, "acct_a", 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, "acct_a", 41); !errors.Is(err, ErrInsufficientCredits) {
		t.Fatalf("over-reserve: %v", err)
	}
	wantBalance(t, l, "acct_a", 100, 60)
	r1.Release()
	r1.Release()   // no-op
	r1.Settle(999) // no-op after Release
	wantBalance(t, l, "acct_a", 100, 0)

	r2, err := l.Reserve(ctx, "acct_a", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_a", RequestID: "req_1", Amount: 30, At: ledgerNow}}); err != nil {
		t.Fatal(err)
	}
	r2.Settle(30)
	r2.Release() // no-op after Settle
	wantBalance(t, l, "acct_a", 70, 0)

	// A top-up while requests are in flight is available at once.
	r3, err := l.Reserve(ctx, "acct_a", 70)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.TopUp(ctx, "acct_a", 5, "t2", "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, "acct_a", 5); err != nil {
		t.Fatalf("top-up not available: %v", err)
	}
	r3.Release()

	if _, err := l.Reserve(ctx, "nobody", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if _, err := l.Reserve(ctx, "acct_a", -1); !errors.Is(err, ErrInvalidPosting) {
		t.Fatalf("negative reservation: %v", err)
	}
	var nilRes *Reservation
	nilRes.Release() // safe
	nilRes.Settle(1)
}

// TestConcurrentReservationsNeverOverspend: 200 requests at once against a
// balance that covers 50 of them, through the real store.
func TestConcurrentReservationsNeverOverspend(t *testing.T) {
	const requests, covered = 200, 50
	const hold = Nano(20_000_000) // $0.02 held per request
	cases := []struct {
		name string
		cost func(rng *rand.Rand) Nano // what a request turns out to cost (<= hold)
	}{
		{"cost equals hold", func(*rand.Rand) Nano { return hold }},
		{"cost below hold", func(rng *rand.Rand) Nano { return Nano(rng.Int64N(int64(hold) + 1)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := ledgerStore(t, "acct_a")
			l := NewLedger(db, fixedClock)
			topUp := hold * covered
			if _, _, err := l.TopUp(ctx, "acct_a", topUp, "seed", "test"); err != nil {
				t.Fatal(err)
			}
			var (
				start           = make(chan struct{})
				wg              sync.WaitGroup
				settled, costs  atomic.Int64
				refused, broken atomic.Int64
			)
			for i := range requests {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 7))
					<-start
					r, err := l.Reserve(ctx, "acct_a", hold)
					if errors.Is(err, ErrInsufficientCredits) {
						refused.Add(1)
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					defer r.Release()
					if _, _, avail, _ := l.Balance(ctx, "acct_a"); avail < 0 {
						broken.Add(1)
					}
					cost := c.cost(rng)
					if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_a", RequestID: fmt.Sprintf("req_%d", i), Amount: int64(cost), At: ledgerNow}}); err != nil {
						t.Error(err)
						return
					}
					r.Settle(cost)
					settled.Add(1)
					costs.Add(int64(cost))
				}()
			}
			close(start)
			wg.Wait()
			if broken.Load() != 0 {
				t.Fatalf("available went below zero %d times", broken.Load())
			}
			if settled.Load()+refused.Load() != requests || settled.Load() < covered {
				t.Fatalf("settled %d, refused %d", settled.Load(), refused.Load())
			}
			if c.name == "cost equals hold" && settled.Load() != covered {
				t.Fatalf("settled %d, want exactly %d", settled.Load(), covered)
			}
			want := topUp - Nano(costs.Load())
			if want < 0 {
				t.Fatalf("spent %d of %d", costs.Load(), topUp)
			}
			wantBalance(t, l, "acct_a", want, 0)
			stored, err := db.AccountCredit(ctx, "acct_a")
			if err != nil || Nano(stored.Balance) != want {
				t.Fatalf("stored balance %d, %v; want %d", stored.Balance, err, want)
			}
			if mm, err := l.Verify(ctx); err != nil || len(mm) != 0 {
				t.Fatalf("Verify = %+v, %v", mm, err)
			}
			entries, err := l.Entries(ctx, "acct_a", 1000, 0)
			if err != nil || int64(len(entries)) != settled.Load()+1 {
				t.Fatalf("%d entries, %v; want %d usage + 1 top-up", len(entries), err, settled.Load())
			}
		})
	}
}

func TestMemoryHoldsCreditSkipsWhatTheLoadSaw(t *testing.T) {
	ctx := context.Background()
	loads := 0
	h := NewMemoryHolds(func(context.Context, string) (Nano, int64, error) {
		loads++
		return 100, 5, nil
	})
	h.Credit("a", 3, 1000) // not loaded: the store has it, the load will see it
	if b, _, err := h.Balance(ctx, "a"); err != nil || b != 100 {
		t.Fatalf("balance %d, %v", b, err)
	}
	h.Credit("a", 5, 10) // included in the load
	h.Credit("a", 7, 10) // committed after the load
	h.Credit("a", 6, 10) // committed after the load, reported late
	if b, _, _ := h.Balance(ctx, "a"); b != 120 {
		t.Fatalf("balance %d, want 120", b)
	}
	// Invalidate reloads only once no hold is in flight.
	ref, err := h.Hold(ctx, "a", "", 50)
	if err != nil {
		t.Fatal(err)
	}
	h.Invalidate("a")
	if b, r, _ := h.Balance(ctx, "a"); b != 120 || r != 50 || loads != 1 {
		t.Fatalf("balance %d reserved %d loads %d while a hold is in flight", b, r, loads)
	}
	h.Release("a", ref, 50)
	if b, r, _ := h.Balance(ctx, "a"); b != 100 || r != 0 || loads != 2 {
		t.Fatalf("after release: balance %d reserved %d loads %d", b, r, loads)
	}
}

func TestInvalidateSeesOtherReplicas(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	l1, l2 := NewLedger(db, fixedClock), NewLedger(db, fixedClock)
	if _, _, err := l1.TopUp(ctx, "acct_a", 10, "t1", "cli"); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l1, "acct_a", 10, 0)
	if _, _, err := l2.TopUp(ctx, "acct_a", 5, "t2", "cli"); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l1, "acct_a", 10, 0) // not seen yet
	l1.Invalidate("acct_a")
	wantBalance(t, l1, "acct_a", 15, 0)
}

func TestLedgerMultiplier(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(ledgerStore(t, "acct_a"), fixedClock)
	if bp, err := l.Multiplier(ctx, "acct_a"); err != nil || bp != OneX {
		t.Fatalf("default multiplier %d, %v", bp, err)
	}
	if err := l.SetMultiplier(ctx, "acct_a", 12500); err != nil {
		t.Fatal(err)
	}
	if bp, err := l.Multiplier(ctx, "acct_a"); err != nil || bp != 12500 {
		t.Fatalf("multiplier %d, %v", bp, err)
	}
	if err := l.SetMultiplier(ctx, "acct_a", 0); !errors.Is(err, ErrInvalidPosting) {
		t.Fatalf("zero multiplier: %v", err)
	}
	if err := l.SetMultiplier(ctx, "nobody", OneX); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
}

func TestVerifyReportsOrphanDebits(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	l := NewLedger(db, fixedClock)
	if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_gone", RequestID: "r", Amount: 3, At: ledgerNow}}); err != nil {
		t.Fatal(err)
	}
	mm, err := l.Verify(ctx)
	if err != nil || len(mm) != 1 || mm[0] != (Mismatch{AccountID: "acct_gone", Computed: -3, AccountMissing: true}) {
		t.Fatalf("Verify = %+v, %v", mm, err)
	}
}

// TestMultiplierTTL: a multiplier changed by another replica (here:
// straight in the store) is seen once the cached one is older than the
// TTL, even if no invalidation arrives.
func TestMultiplierTTL(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	for _, c := range []struct {
		name string
		ttl  time.Duration
		want int // after the change and 2 s
	}{{"no TTL keeps the cached value", 0, 10000}, {"TTL re-reads", time.Second, 15000}} {
		t.Run(c.name, func(t *testing.T) {
			if err := db.SetAccountMultiplier(ctx, "acct_a", 10000); err != nil {
				t.Fatal(err)
			}
			l := NewLedger(db, clock, WithMultiplierTTL(c.ttl))
			if bp, err := l.Multiplier(ctx, "acct_a"); err != nil || bp != 10000 {
				t.Fatalf("Multiplier = %d, %v", bp, err)
			}
			if err := db.SetAccountMultiplier(ctx, "acct_a", 15000); err != nil { // another replica
				t.Fatal(err)
			}
			now = now.Add(2 * time.Second)
			if bp, err := l.Multiplier(ctx, "acct_a"); err != nil || bp != c.want {
				t.Fatalf("Multiplier after the change = %d, %v; want %d", bp, err, c.want)
			}
		})
	}
}
