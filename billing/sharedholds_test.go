package billing

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
)

// forEachHoldStore runs fn as a subtest on a fresh store per backend:
// SQLite, and PostgreSQL when storetest.EnvPostgresURL is set. Each
// account is topped up with its balance.
func forEachHoldStore(t *testing.T, balances map[string]Nano, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, b := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "x.db") }},
		{"postgres", func(t *testing.T) string { return storetest.Postgres(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, b.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			for id, amount := range balances {
				if err := db.CreateAccount(ctx, keys.Account{ID: id, Name: id, CreatedAt: ledgerNow}); err != nil {
					t.Fatal(err)
				}
				if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: id, Kind: books.LedgerTopUp, Amount: int64(amount), IdempotencyKey: "seed", CreatedAt: ledgerNow}); err != nil {
					t.Fatal(err)
				}
			}
			fn(t, db)
		})
	}
}

func wantHeld(t *testing.T, h *SharedHolds, account string, balance, reserved Nano) {
	t.Helper()
	b, r, err := h.Balance(context.Background(), account)
	if err != nil || b != balance || r != reserved {
		t.Fatalf("Balance(%s) = %s, %s, %v; want %s, %s", account, b, r, err, balance, reserved)
	}
}

func TestSharedHoldsHold(t *testing.T) {
	forEachHoldStore(t, map[string]Nano{"acct_a": 100}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := NewSharedHolds(db, time.Hour, zap.NewNop())
		ref, err := h.Hold(ctx, "acct_a", "req1", 60)
		if err != nil || ref != "req1" {
			t.Fatalf("Hold = %v, %v; want the request id", ref, err)
		}
		for _, c := range []struct {
			name      string
			account   string
			requestID string
			amount    Nano
			want      error // nil: any error
		}{
			{"more than is free", "acct_a", "req2", 41, ErrInsufficientCredits},
			{"unknown account", "nobody", "req3", 1, store.ErrNotFound},
			{"no request id", "acct_a", "", 1, errNoRequestID},
			{"request id held already", "acct_a", "req1", 1, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				ref, err := h.Hold(ctx, c.account, c.requestID, c.amount)
				if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
					t.Fatalf("Hold = %v, %v; want error %v", ref, err, c.want)
				}
				if c.want == nil && errors.Is(err, ErrInsufficientCredits) {
					t.Fatalf("Hold = %v; want an error other than %v", err, ErrInsufficientCredits)
				}
				wantHeld(t, h, "acct_a", 100, 60) // nothing held, nothing leaked
			})
		}
		if _, err := h.Hold(ctx, "acct_a", "req4", 40); err != nil { // exactly what is free
			t.Fatal(err)
		}
		wantHeld(t, h, "acct_a", 100, 100)
		if _, _, err := h.Balance(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Balance of an unknown account: %v", err)
		}
	})
}

func TestSharedHoldsReleaseAndSettle(t *testing.T) {
	forEachHoldStore(t, map[string]Nano{"acct_a": 100}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := NewSharedHolds(db, time.Hour, zap.NewNop())
		released, err := h.Hold(ctx, "acct_a", "req1", 30)
		if err != nil {
			t.Fatal(err)
		}
		settled, err := h.Hold(ctx, "acct_a", "req2", 50)
		if err != nil {
			t.Fatal(err)
		}
		wantHeld(t, h, "acct_a", 100, 80)

		h.Release("acct_a", released, 30)
		wantHeld(t, h, "acct_a", 100, 50)
		h.Release("acct_a", released, 30) // again: nothing left to release
		h.Release("acct_a", nil, 30)      // no hold
		wantHeld(t, h, "acct_a", 100, 50)

		// Settle leaves the hold to the usage batch, which releases it in
		// the transaction that debits the request.
		h.Settle("acct_a", settled, 50, 35)
		wantHeld(t, h, "acct_a", 100, 50)
		rec := books.UsageRecord{RequestID: "req2", AccountID: "acct_a", KeyID: "k", Model: "m", Status: 200, CostNano: 35, CreatedAt: ledgerNow}
		if err := db.InsertUsage(ctx, []books.UsageRecord{rec}); err != nil {
			t.Fatal(err)
		}
		wantHeld(t, h, "acct_a", 65, 0)

		// Released credit can be held again.
		if _, err := h.Hold(ctx, "acct_a", "req3", 65); err != nil {
			t.Fatal(err)
		}
		wantHeld(t, h, "acct_a", 65, 65)
	})
}

// TestSharedHoldsSweep: the sweep loop frees holds whose TTL passed (by
// the store's clock), leaves live ones, says what it freed, and stops
// when its context ends.
func TestSharedHoldsSweep(t *testing.T) {
	forEachHoldStore(t, map[string]Nano{"acct_a": 100}, func(t *testing.T, db *store.DB) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // the store's own goroutines run on
		ctx := context.Background()
		core, logs := observer.New(zapcore.WarnLevel)
		sweeps := &countingSweeps{HoldStore: db}
		short := NewSharedHolds(sweeps, time.Millisecond, zap.New(core)) // a killed replica's
		long := NewSharedHolds(db, time.Hour, zap.NewNop())
		for _, c := range []struct {
			h      *SharedHolds
			id     string
			amount Nano
		}{{short, "dead1", 10}, {short, "dead2", 20}, {long, "live", 40}} {
			if _, err := c.h.Hold(ctx, "acct_a", c.id, c.amount); err != nil {
				t.Fatal(err)
			}
		}
		wantHeld(t, long, "acct_a", 100, 70)
		time.Sleep(10 * time.Millisecond)

		sctx, cancel := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			short.Sweep(sctx, 5*time.Millisecond)
		}()
		testutil.Eventually(t, "the expired holds swept", func() bool {
			_, r, err := long.Balance(ctx, "acct_a")
			if err != nil {
				t.Fatal(err)
			}
			return r == 40
		})
		swept := sweeps.n.Load()
		testutil.Eventually(t, "a few more sweeps (which find nothing)", func() bool { return sweeps.n.Load() >= swept+3 })
		cancel()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("Sweep did not stop when its context ended")
		}
		wantHeld(t, long, "acct_a", 100, 40)
		freed := 0
		for _, e := range logs.All() {
			if e.Message != "freed credit holds left by a stopped replica" {
				t.Errorf("logged %q %v", e.Message, e.ContextMap())
				continue
			}
			freed += int(e.ContextMap()["holds"].(int64))
		}
		if freed != 2 {
			t.Errorf("logged %d holds freed, want 2", freed)
		}
	})
}

// TestSharedHoldsSweepStopsIdle: a sweep loop whose ticker has not fired
// yet stops at once when its context ends.
func TestSharedHoldsSweepStopsIdle(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewSharedHolds(nil, time.Hour, zap.NewNop()) // never reached
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.Sweep(ctx, time.Hour)
	}()
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Sweep did not stop when its context ended")
	}
}

// countingSweeps counts the sweeps that reach the store: a test waits for
// a few of them instead of sleeping through them.
type countingSweeps struct {
	HoldStore
	n atomic.Int32
}

func (c *countingSweeps) SweepExpiredHolds(ctx context.Context) (int, error) {
	defer c.n.Add(1)
	return c.HoldStore.SweepExpiredHolds(ctx)
}
