package billing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type alertLog struct {
	mu     sync.Mutex
	alerts []Alert
}

func (a *alertLog) add(al Alert) {
	a.mu.Lock()
	a.alerts = append(a.alerts, al)
	a.mu.Unlock()
}

// take returns "scope/id/period:percent[:blocked]" for each alert since
// the last take.
func (a *alertLog) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, al := range a.alerts {
		s := fmt.Sprintf("%s/%s/%s:%d", al.Budget.Scope, al.Budget.ScopeID, al.Budget.Period, al.Percent)
		if al.Blocked {
			s += ":blocked"
		}
		out = append(out, s)
	}
	a.alerts = nil
	return out
}

func wantAlerts(t *testing.T, log *alertLog, want ...string) {
	t.Helper()
	got := log.take()
	slices.Sort(got) // alerts of concurrent calls may arrive in any order
	want = slices.Sorted(slices.Values(want))
	if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("alerts = %v, want %v", got, want)
	}
}

func TestPeriodBounds(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	at := time.Date(2026, 3, 1, 0, 30, 0, 0, paris) // still Feb 28 in UTC
	if got, want := Daily.Start(at), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Daily.Start = %v, want %v", got, want)
	}
	if got, want := Daily.End(at), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Daily.End = %v, want %v", got, want)
	}
	if got, want := Monthly.Start(at), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Monthly.Start = %v, want %v", got, want)
	}
	if got, want := Monthly.End(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Monthly.End = %v, want %v", got, want)
	}
}

func TestBudgetValidation(t *testing.T) {
	t.Parallel()
	ok := Budget{Scope: ScopeAccount, ScopeID: "a", Period: Daily, Limit: 1}
	for _, c := range []struct {
		name string
		edit func(*Budget)
	}{
		{"scope", func(b *Budget) { b.Scope = "team" }},
		{"id", func(b *Budget) { b.ScopeID = "" }},
		{"period", func(b *Budget) { b.Period = "weekly" }},
		{"negative limit", func(b *Budget) { b.Limit = -1 }},
		{"percent 0", func(b *Budget) { b.AlertPercents = []int{0} }},
		{"percent 1001", func(b *Budget) { b.AlertPercents = []int{1001} }},
		{"too many", func(b *Budget) { b.AlertPercents = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17} }},
	} {
		b := ok
		c.edit(&b)
		if _, err := b.normalize(); err == nil {
			t.Errorf("%s: accepted %+v", c.name, b)
		}
	}
	n, err := Budget{Scope: ScopeKey, ScopeID: "k", Period: Monthly, AlertPercents: []int{80, 50, 80}}.normalize()
	if err != nil || !reflect.DeepEqual(n.AlertPercents, []int{50, 80}) {
		t.Fatalf("normalize = %+v, %v", n, err)
	}
	if n, _ := ok.normalize(); !reflect.DeepEqual(n.AlertPercents, DefaultAlertPercents()) {
		t.Fatalf("default percents = %v", n.AlertPercents)
	}
}

// budgetScopes creates what the tests' budgets limit: the account acct_a
// and its key key_1 (a budget on nothing is refused).
func budgetScopes(t testing.TB, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.AccountByID(ctx, "acct_a"); errors.Is(err, store.ErrNotFound) {
		if err := db.CreateAccount(ctx, keys.Account{ID: "acct_a", Name: "a", CreatedAt: ledgerNow}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateKey(ctx, keys.Record{ID: "key_1", AccountID: "acct_a", Name: "k", Hash: "hash_key_1", Hint: "x", CreatedAt: ledgerNow}); err != nil {
		t.Fatal(err)
	}
}

func newBudgets(t *testing.T, db *store.DB, clock *testClock) (*Budgets, *alertLog) {
	t.Helper()
	log := &alertLog{}
	return NewBudgets(db, clock.Now, log.add), log
}

func TestBudgetLimitsAndAlerts(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	budgetScopes(t, db)
	clock := &testClock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
	b, log := newBudgets(t, db, clock)
	if _, err := b.Set(ctx, Budget{Scope: ScopeAccount, ScopeID: "acct_a", Period: Daily, Limit: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Set(ctx, Budget{Scope: ScopeKey, ScopeID: "key_1", Period: Monthly, Limit: 800, AlertPercents: []int{10}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "acct_a", "key_1", 100); err != nil {
		t.Fatalf("full budget refused: %v", err)
	}
	steps := []struct {
		add  Nano
		want []string
	}{
		{40, nil},
		{10, []string{"account/acct_a/daily:50"}},
		{30, []string{"account/acct_a/daily:80", "key/key_1/monthly:10"}},
	}
	for _, s := range steps {
		if err := b.Add(ctx, "acct_a", "key_1", s.add); err != nil {
			t.Fatal(err)
		}
		wantAlerts(t, log, s.want...)
	}
	// 80 spent: a request that may cost 25 does not fit.
	err := b.Check(ctx, "acct_a", "key_1", 25)
	var be *BudgetError
	if !errors.Is(err, ErrBudgetExceeded) || !errors.As(err, &be) || be.Spent != 80 || be.Budget.Period != Daily ||
		!be.ResetsAt.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Check = %v", err)
	}
	wantAlerts(t, log, "account/acct_a/daily:100:blocked")
	if err := b.Check(ctx, "acct_a", "key_1", 20); err != nil {
		t.Fatalf("a request that fits was refused: %v", err)
	}
	if err := b.Add(ctx, "acct_a", "key_1", 20); err != nil {
		t.Fatal(err)
	}
	wantAlerts(t, log) // 100 % already fired this period
	if err := b.Check(ctx, "acct_a", "", 0); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("spent = limit, amount 0: %v", err)
	}
	if err := b.Check(ctx, "acct_other", "key_other", 1<<40); err != nil {
		t.Fatalf("no budget applies: %v", err)
	}

	st, err := b.Status(ctx, "acct_a", "key_1")
	if err != nil || len(st) != 2 || st[0].Spent != 100 || st[1].Spent != 100 || st[1].Budget.Scope != ScopeKey {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	// Next UTC day: the daily budget starts again (seeded from the store,
	// which has no debits for the new day); the monthly one goes on.
	clock.Set(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC))
	if err := b.Check(ctx, "acct_a", "key_1", 100); err != nil {
		t.Fatalf("new day refused: %v", err)
	}
	if err := b.Add(ctx, "acct_a", "key_1", 60); err != nil {
		t.Fatal(err)
	}
	wantAlerts(t, log, "account/acct_a/daily:50")
}

func TestBudgetSpendIsSeededFromTheStore(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	budgetScopes(t, db)
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	clock := &testClock{t: now}
	err := db.DebitUsage(ctx, []books.UsageDebit{
		{AccountID: "acct_a", RequestID: "yesterday", Amount: 500, KeyID: "key_1", At: now.Add(-10 * time.Hour)},
		{AccountID: "acct_a", RequestID: "r1", Amount: 60, KeyID: "key_1", At: now.Add(-time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	setup, _ := newBudgets(t, db, clock)
	if _, err := setup.Set(ctx, Budget{Scope: ScopeAccount, ScopeID: "acct_a", Period: Daily, Limit: 100}); err != nil {
		t.Fatal(err)
	}

	// A fresh process (another replica, or after a restart) loads the
	// definitions and seeds today's spend: 60, so 50 % counts as fired.
	b, log := newBudgets(t, db, clock)
	if err := b.Check(ctx, "acct_a", "key_1", 41); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("Check(41) with 60 of 100 spent: %v", err)
	}
	wantAlerts(t, log, "account/acct_a/daily:100:blocked")
	if err := b.Check(ctx, "acct_a", "key_1", 40); err != nil {
		t.Fatal(err)
	}
	// Add seeds nothing twice: the state already exists.
	if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_a", RequestID: "r2", Amount: 25, KeyID: "key_1", At: now}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, "acct_a", "key_1", 25); err != nil {
		t.Fatal(err)
	}
	wantAlerts(t, log, "account/acct_a/daily:80")

	// A process whose first call is Add (after the debit committed) takes
	// the stored spend, which already includes that cost.
	b2, log2 := newBudgets(t, db, clock)
	if err := b2.Add(ctx, "acct_a", "key_1", 25); err != nil {
		t.Fatal(err)
	}
	wantAlerts(t, log2)
	st, err := b2.Status(ctx, "acct_a", "")
	if err != nil || len(st) != 1 || st[0].Spent != 85 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestBudgetSetDeleteLoad(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t)
	budgetScopes(t, db)
	clock := &testClock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
	b, _ := newBudgets(t, db, clock)
	other, _ := newBudgets(t, db, clock) // another replica
	if _, err := b.Set(ctx, Budget{Scope: ScopeKey, ScopeID: "key_1", Period: Daily, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if err := other.Check(ctx, "acct_a", "key_1", 11); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("other replica, first load: %v", err)
	}
	if _, err := b.Set(ctx, Budget{Scope: ScopeKey, ScopeID: "key_1", Period: Daily, Limit: 20}); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "acct_a", "key_1", 11); err != nil {
		t.Fatalf("raised limit not applied: %v", err)
	}
	if err := other.Check(ctx, "acct_a", "key_1", 11); err == nil {
		t.Fatal("other replica saw the change without Load")
	}
	if err := other.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Check(ctx, "acct_a", "key_1", 11); err != nil {
		t.Fatalf("after Load: %v", err)
	}
	list, err := b.List(ctx, ScopeKey, "key_1")
	if err != nil || len(list) != 1 || list[0].Limit != 20 || !reflect.DeepEqual(list[0].AlertPercents, DefaultAlertPercents()) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := b.Delete(ctx, ScopeKey, "key_1", Daily); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "acct_a", "key_1", 1000); err != nil {
		t.Fatalf("deleted budget still applies: %v", err)
	}
	if err := b.Delete(ctx, ScopeKey, "key_1", Daily); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestBudgetsConcurrentUse(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t)
	budgetScopes(t, db)
	clock := &testClock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
	b, log := newBudgets(t, db, clock)
	if _, err := b.Set(ctx, Budget{Scope: ScopeAccount, ScopeID: "acct_a", Period: Monthly, Limit: 1000}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := b.Check(ctx, "acct_a", "key_1", 0); err != nil && !errors.Is(err, ErrBudgetExceeded) {
					t.Error(err)
				}
				if err := b.Add(ctx, "acct_a", "key_1", 3); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st, err := b.Status(ctx, "acct_a", "")
	if err != nil || st[0].Spent != 8*50*3 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	wantAlerts(t, log, "account/acct_a/monthly:50", "account/acct_a/monthly:80", "account/acct_a/monthly:100")
}

// TestBudgetSpendRefreshSeesOtherReplicas: two Budgets over one store
// stand for two replicas; with a refresh, each sees what the other spent
// once it is in the store, and a limit holds for the pair.
func TestBudgetSpendRefreshSeesOtherReplicas(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	budgetScopes(t, db)
	clock := &testClock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
	logA, logB := &alertLog{}, &alertLog{}
	a := NewBudgets(db, clock.Now, logA.add, WithSpendRefresh(time.Second))
	b := NewBudgets(db, clock.Now, logB.add, WithSpendRefresh(time.Second))
	if _, err := a.Set(ctx, Budget{Scope: ScopeAccount, ScopeID: "acct_a", Period: Daily, Limit: 100}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Budgets{a, b} {
		if err := x.Check(ctx, "acct_a", "", 90); err != nil {
			t.Fatal(err)
		}
	}
	// Replica A spends 90 (committed, then counted).
	if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_a", RequestID: "r1", Amount: 90, At: clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, "acct_a", "", 90); err != nil {
		t.Fatal(err)
	}
	wantAlerts(t, logA, "account/acct_a/daily:50", "account/acct_a/daily:80")
	// Replica B has not refreshed yet: it still sees 0 spent.
	if err := b.Check(ctx, "acct_a", "", 20); err != nil {
		t.Fatalf("before B's refresh: %v", err)
	}
	clock.Set(clock.Now().Add(time.Second))
	if err := b.Check(ctx, "acct_a", "", 20); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("after B's refresh, 90 of 100 spent by A, Check(20) = %v; want ErrBudgetExceeded", err)
	}
	// A's 50/80 % alerts already fired there: B does not repeat them; it
	// reports only its own refusal.
	wantAlerts(t, logB, "account/acct_a/daily:100:blocked")
	// A refresh is not a double count: A's spend stays 90 after its own
	// refresh read the 90 it had counted.
	st, err := a.Status(ctx, "acct_a", "")
	if err != nil || len(st) != 1 || st[0].Spent != 90 {
		t.Fatalf("A's status after refresh = %+v, %v", st, err)
	}
}

// TestBudgetRefreshInAddStillAlerts: a refresh that happens in Add (the
// request ran longer than the refresh interval, as LLM calls do) must not
// swallow the threshold that request crosses.
func TestBudgetRefreshInAddStillAlerts(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t, "acct_a")
	budgetScopes(t, db)
	clock := &testClock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
	alerts := &alertLog{}
	b := NewBudgets(db, clock.Now, alerts.add, WithSpendRefresh(time.Second))
	if _, err := b.Set(ctx, Budget{Scope: ScopeAccount, ScopeID: "acct_a", Period: Daily, Limit: 100, AlertPercents: []int{80}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "acct_a", "", 30); err != nil { // seeds 0
		t.Fatal(err)
	}
	// Another replica spends 60 meanwhile; this request takes 5 s and
	// costs 30, committed before its Add.
	if err := db.DebitUsage(ctx, []books.UsageDebit{
		{AccountID: "acct_a", RequestID: "elsewhere", Amount: 60, At: clock.Now()},
		{AccountID: "acct_a", RequestID: "mine", Amount: 30, At: clock.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	clock.Set(clock.Now().Add(5 * time.Second))
	if err := b.Add(ctx, "acct_a", "", 30); err != nil {
		t.Fatal(err)
	}
	wantAlerts(t, alerts, "account/acct_a/daily:80")
}

// TestHoleBudgetForUnknownKey: a budget on a key or an account that does
// not exist was stored (a row limiting nothing, a typo passing for a
// limit). It is refused with ErrUnknownScope (store.ErrNotFound), and
// nothing is stored.
func TestHoleBudgetForUnknownKey(t *testing.T) {
	ctx := context.Background()
	db := ledgerStore(t)
	budgetScopes(t, db)
	b, _ := newBudgets(t, db, &testClock{t: ledgerNow})
	for _, bd := range []Budget{
		{Scope: ScopeKey, ScopeID: "key_nope", Period: Daily, Limit: 10},
		{Scope: ScopeAccount, ScopeID: "acct_nope", Period: Monthly, Limit: 10},
	} {
		if _, err := b.Set(ctx, bd); !errors.Is(err, ErrUnknownScope) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("budget on %s %s: %v", bd.Scope, bd.ScopeID, err)
		}
	}
	if list, err := b.List(ctx, "", ""); err != nil || len(list) != 0 {
		t.Fatalf("stored: %+v %v", list, err)
	}
	if _, err := b.Set(ctx, Budget{Scope: ScopeKey, ScopeID: "key_1", Period: Daily, Limit: 10}); err != nil {
		t.Fatalf("a budget on a real key: %v", err)
	}
}
