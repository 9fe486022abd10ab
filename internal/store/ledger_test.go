package store

import (
	"context"
	"errors"
	"github.com/xroute/xroute/billing/books"
	"reflect"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

var ledgerT0 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

func seedAccounts(t testing.TB, db *DB, accounts ...string) {
	t.Helper()
	for _, id := range accounts {
		if err := db.CreateAccount(context.Background(), keys.Account{ID: id, Name: "name-" + id, CreatedAt: ledgerT0}); err != nil {
			t.Fatal(err)
		}
	}
}

func credit(t *testing.T, db *DB, id string) books.AccountCredit {
	t.Helper()
	c, err := db.AccountCredit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPostLedgerEntryIdempotent(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a")
		if c := credit(t, db, "acct_a"); c.Balance != 0 || c.MultiplierBP != 10000 || c.LastEntryID != 0 {
			t.Fatalf("new account credit = %+v", c)
		}
		e := books.LedgerEntry{AccountID: "acct_a", Kind: books.LedgerTopUp, Amount: 10_000_000_000, IdempotencyKey: "k1", Actor: "cli", CreatedAt: ledgerT0}
		first, replayed, err := db.PostLedgerEntry(ctx, e)
		if err != nil || replayed || first.ID == 0 {
			t.Fatalf("post = %+v, %v, %v", first, replayed, err)
		}
		again, replayed, err := db.PostLedgerEntry(ctx, e)
		if err != nil || !replayed || !reflect.DeepEqual(again, first) {
			t.Fatalf("replay = %+v, %v, %v; want %+v", again, replayed, err, first)
		}
		e.Amount = 5
		if _, _, err := db.PostLedgerEntry(ctx, e); !errors.Is(err, books.ErrIdempotencyConflict) {
			t.Fatalf("different amount: %v, want ErrIdempotencyConflict", err)
		}
		e.Amount, e.Kind = 10_000_000_000, books.LedgerAdjustment
		if _, _, err := db.PostLedgerEntry(ctx, e); !errors.Is(err, books.ErrIdempotencyConflict) {
			t.Fatalf("different kind: %v, want ErrIdempotencyConflict", err)
		}
		if c := credit(t, db, "acct_a"); c.Balance != 10_000_000_000 || c.LastEntryID != first.ID {
			t.Fatalf("credit = %+v", c)
		}
		if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "nobody", Kind: books.LedgerTopUp, Amount: 1, IdempotencyKey: "k", CreatedAt: ledgerT0}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown account: %v", err)
		}
		if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "acct_a", Kind: "gift", Amount: 1, IdempotencyKey: "k2", CreatedAt: ledgerT0}); err == nil {
			t.Fatal("unknown kind accepted")
		}
		if c := credit(t, db, "acct_a"); c.Balance != 10_000_000_000 {
			t.Fatalf("failed posts moved the balance: %+v", c)
		}
	})
}

func TestLedgerIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a")
		if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "acct_a", Kind: books.LedgerTopUp, Amount: 7, IdempotencyKey: "k", CreatedAt: ledgerT0}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.exec(ctx, `UPDATE ledger_entries SET amount_nano = 1000`); err == nil {
			t.Fatal("UPDATE of a ledger entry succeeded")
		}
		if _, err := db.exec(ctx, `DELETE FROM ledger_entries`); err == nil {
			t.Fatal("DELETE of a ledger entry succeeded")
		}
	})
}

func TestApplyUsageDebits(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a", "acct_b")
		for _, id := range []string{"acct_a", "acct_b"} {
			if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: id, Kind: books.LedgerTopUp, Amount: 1000, IdempotencyKey: "seed", CreatedAt: ledgerT0}); err != nil {
				t.Fatal(err)
			}
		}
		batch := []books.UsageDebit{
			{AccountID: "acct_a", RequestID: "r1", Amount: 100, KeyID: "key_1", At: ledgerT0},
			{AccountID: "acct_a", RequestID: "r2", Amount: 0, KeyID: "key_1", At: ledgerT0},
			{AccountID: "acct_b", RequestID: "r3", Amount: 300, KeyID: "key_2", At: ledgerT0},
			{AccountID: "", RequestID: "r4", Amount: 50}, // no account: skipped
		}
		for range 2 { // the second run is a retried batch: no change
			if err := db.DebitUsage(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if a, b := credit(t, db, "acct_a").Balance, credit(t, db, "acct_b").Balance; a != 900 || b != 700 {
				t.Fatalf("balances %d, %d; want 900, 700", a, b)
			}
		}
		entries, err := db.ListLedgerEntries(ctx, "acct_a", 0, 0)
		if err != nil || len(entries) != 3 {
			t.Fatalf("entries = %+v, %v", entries, err)
		}
		if e := entries[1]; e.Kind != books.LedgerUsage || e.Amount != -100 || e.RequestID != "r1" || e.KeyID != "key_1" || e.IdempotencyKey != "usage:r1" || !e.CreatedAt.Equal(ledgerT0) {
			t.Fatalf("usage entry = %+v", e)
		}

		// Inside a transaction that rolls back, nothing is debited.
		tx, err := db.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.ApplyUsageDebits(ctx, tx, []books.UsageDebit{{AccountID: "acct_a", RequestID: "r9", Amount: 1, At: ledgerT0}}); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		if a := credit(t, db, "acct_a").Balance; a != 900 {
			t.Fatalf("rolled-back debit moved the balance to %d", a)
		}

		for _, bad := range []books.UsageDebit{{AccountID: "acct_a", RequestID: "", Amount: 1}, {AccountID: "acct_a", RequestID: "rx", Amount: -1}} {
			if err := db.DebitUsage(ctx, []books.UsageDebit{bad}); err == nil {
				t.Fatalf("debit %+v accepted", bad)
			}
		}
		if mm, err := db.VerifyBalances(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("verify = %+v, %v", mm, err)
		}
	})
}

func TestVerifyBalancesFindsDrift(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a", "acct_b")
		if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "acct_a", Kind: books.LedgerTopUp, Amount: 500, IdempotencyKey: "k", CreatedAt: ledgerT0}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.exec(ctx, `UPDATE accounts SET balance_nano = 999 WHERE id = 'acct_b'`); err != nil {
			t.Fatal(err)
		}
		if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_gone", RequestID: "r1", Amount: 5, At: ledgerT0}}); err != nil {
			t.Fatal(err)
		}
		mm, err := db.VerifyBalances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []books.BalanceMismatch{
			{AccountID: "acct_b", Cached: 999, Computed: 0},
			{AccountID: "acct_gone", Cached: 0, Computed: -5, AccountMissing: true},
		}
		if !reflect.DeepEqual(mm, want) {
			t.Fatalf("verify = %+v, want %+v", mm, want)
		}
	})
}

func TestListLedgerEntriesPages(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a")
		var debits []books.UsageDebit
		for i := range 7 {
			debits = append(debits, books.UsageDebit{AccountID: "acct_a", RequestID: string(rune('a' + i)), Amount: int64(i), At: ledgerT0})
		}
		if err := db.DebitUsage(ctx, debits); err != nil {
			t.Fatal(err)
		}
		var seen []int64
		before := int64(0)
		for {
			page, err := db.ListLedgerEntries(ctx, "acct_a", 3, before)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				seen = append(seen, -e.Amount)
			}
			before = page[len(page)-1].ID
		}
		if want := []int64{6, 5, 4, 3, 2, 1, 0}; !reflect.DeepEqual(seen, want) {
			t.Fatalf("pages gave %v, want %v", seen, want)
		}
	})
}

func TestUsageSpend(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a")
		day := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
		err := db.DebitUsage(ctx, []books.UsageDebit{
			{AccountID: "acct_a", RequestID: "old", Amount: 1000, KeyID: "k1", At: day.Add(-time.Millisecond)},
			{AccountID: "acct_a", RequestID: "r1", Amount: 10, KeyID: "k1", At: day},
			{AccountID: "acct_a", RequestID: "r2", Amount: 20, KeyID: "k2", At: day.Add(time.Hour)},
		})
		if err != nil {
			t.Fatal(err)
		}
		// A top-up does not count as spend.
		if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "acct_a", Kind: books.LedgerTopUp, Amount: 5000, IdempotencyKey: "t", CreatedAt: day.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			scope, id string
			want      int64
		}{{books.BudgetScopeAccount, "acct_a", 30}, {books.BudgetScopeKey, "k1", 10}, {books.BudgetScopeKey, "k2", 20}, {books.BudgetScopeKey, "k3", 0}} {
			got, err := db.UsageSpend(ctx, c.scope, c.id, day)
			if err != nil || got != c.want {
				t.Errorf("UsageSpend(%s %s) = %d, %v; want %d", c.scope, c.id, got, err, c.want)
			}
		}
		if _, err := db.UsageSpend(ctx, "team", "x", day); err == nil {
			t.Fatal("unknown scope accepted")
		}
	})
}

func TestBudgetsCRUD(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		b := books.Budget{Scope: books.BudgetScopeAccount, ScopeID: "acct_a", Period: books.BudgetDaily, LimitNano: 5_000_000_000, AlertPercents: []int{50, 80, 100}, CreatedAt: ledgerT0, UpdatedAt: ledgerT0}
		if err := db.PutBudget(ctx, b); err != nil {
			t.Fatal(err)
		}
		later := ledgerT0.Add(time.Hour)
		b2 := b
		b2.LimitNano, b2.AlertPercents, b2.CreatedAt, b2.UpdatedAt = 7, []int{90}, later, later
		if err := db.PutBudget(ctx, b2); err != nil {
			t.Fatal(err)
		}
		k := books.Budget{Scope: books.BudgetScopeKey, ScopeID: "key_1", Period: books.BudgetMonthly, LimitNano: 1, CreatedAt: ledgerT0, UpdatedAt: ledgerT0}
		if err := db.PutBudget(ctx, k); err != nil {
			t.Fatal(err)
		}
		all, err := db.ListBudgets(ctx, books.BudgetFilter{})
		if err != nil || len(all) != 2 {
			t.Fatalf("list = %+v, %v", all, err)
		}
		got := all[0]
		if got.LimitNano != 7 || !reflect.DeepEqual(got.AlertPercents, []int{90}) || !got.CreatedAt.Equal(ledgerT0) || !got.UpdatedAt.Equal(later) {
			t.Fatalf("updated budget = %+v", got)
		}
		if len(all[1].AlertPercents) != 0 {
			t.Fatalf("nil percents stored as %v", all[1].AlertPercents)
		}
		keys, err := db.ListBudgets(ctx, books.BudgetFilter{Scope: books.BudgetScopeKey, ScopeID: "key_1"})
		if err != nil || len(keys) != 1 || keys[0].Period != books.BudgetMonthly {
			t.Fatalf("filtered list = %+v, %v", keys, err)
		}
		if err := db.PutBudget(ctx, books.Budget{Scope: "team", ScopeID: "x", Period: books.BudgetDaily, CreatedAt: ledgerT0, UpdatedAt: ledgerT0}); err == nil {
			t.Fatal("unknown scope accepted")
		}
		if err := db.DeleteBudget(ctx, books.BudgetScopeKey, "key_1", books.BudgetMonthly); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteBudget(ctx, books.BudgetScopeKey, "key_1", books.BudgetMonthly); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestAccountMultiplier(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a")
		if err := db.SetAccountMultiplier(ctx, "acct_a", 12500); err != nil {
			t.Fatal(err)
		}
		if c := credit(t, db, "acct_a"); c.MultiplierBP != 12500 {
			t.Fatalf("multiplier = %d", c.MultiplierBP)
		}
		if err := db.SetAccountMultiplier(ctx, "acct_a", 0); err == nil {
			t.Fatal("zero multiplier accepted")
		}
		if err := db.SetAccountMultiplier(ctx, "nobody", 10000); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown account: %v", err)
		}
		if _, err := db.AccountCredit(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown account credit: %v", err)
		}
	})
}

func TestUsageRecordsHaveCostColumns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		if _, err := db.exec(context.Background(), `INSERT INTO usage_records (request_id, key_id, model, status, created_at, cost_nano, estimated) VALUES ('r', 'k', 'm', 200, 0, 42, 1)`); err != nil {
			t.Fatal(err)
		}
	})
}
