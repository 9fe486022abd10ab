package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/keys/auditlog"
)

// Two handles on one database stand for two replicas (two processes): on
// PostgreSQL they share nothing but the server; on SQLite, the file.

func replicas(t *testing.T, db *DB, dsn string) [2]*DB {
	return [2]*DB{db, openAgain(t, dsn)}
}

// TestLedgerConcurrentPosts: many writers on two replicas post top-ups,
// each idempotency key several times at once, and store overlapping usage
// batches. Every key lands once, every request is debited once, and the
// cached balance stays the sum of the ledger.
func TestLedgerConcurrentPosts(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		seedAccounts(t, db, "acct_a", "acct_b")
		dbs := replicas(t, db, dsn)
		k := newTestKeys("concurrent") // keyed, as the gateway runs
		for _, h := range dbs {
			keyLedger(t, h, k)
		}
		const (
			workers = 24
			keys    = 6 // distinct keys per account; each posted workers/keys times
			rounds  = 5
		)
		var posted, replayed atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds*2)
		for w := range workers {
			wg.Go(func() {
				h := dbs[w%2]
				for r := range rounds {
					acct := []string{"acct_a", "acct_b"}[(w+r)%2]
					e := books.LedgerEntry{AccountID: acct, Kind: books.LedgerTopUp, Amount: 1000, IdempotencyKey: fmt.Sprintf("k%d-%d", w%keys, r), CreatedAt: ledgerT0}
					_, again, err := h.PostLedgerEntry(ctx, e)
					if err != nil {
						errs <- err
						continue
					}
					if again {
						replayed.Add(1)
					} else {
						posted.Add(1)
					}
					// Usage for requests u<r>-<0..3>, stored by several
					// workers at once; each costs 7.
					var batch []books.UsageRecord
					for i := range 4 {
						batch = append(batch, books.UsageRecord{RequestID: fmt.Sprintf("u%d-%d", r, (i+w)%4), AccountID: "acct_a", KeyID: "k", Model: "m", Status: 200, CostNano: 7, CreatedAt: ledgerT0})
					}
					if err := h.InsertUsage(ctx, batch); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// Keys: for each round, the keys k0..k5 land once per account that
		// some worker posted them to.
		wantPosted := int64(0)
		seen := map[string]bool{}
		for w := range workers {
			for r := range rounds {
				acct := []string{"acct_a", "acct_b"}[(w+r)%2]
				k := fmt.Sprintf("%s/k%d-%d", acct, w%keys, r)
				if !seen[k] {
					seen[k] = true
					wantPosted++
				}
			}
		}
		if posted.Load() != wantPosted || posted.Load()+replayed.Load() != workers*rounds {
			t.Fatalf("posted %d (want %d), replayed %d", posted.Load(), wantPosted, replayed.Load())
		}
		a, b := credit(t, db, "acct_a").Balance, credit(t, db, "acct_b").Balance
		usage := int64(rounds * 4 * 7)
		if a+b != wantPosted*1000-usage {
			t.Fatalf("balances %d + %d, want %d", a, b, wantPosted*1000-usage)
		}
		if spent, err := db.UsageSpend(ctx, books.BudgetScopeAccount, "acct_a", ledgerT0); err != nil || spent != usage {
			t.Fatalf("usage spend %d, %v; want %d", spent, err, usage)
		}
		if mm, err := db.VerifyBalances(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("verify = %+v, %v", mm, err)
		}
		if ps, err := db.VerifyLedgerChain(ctx); err != nil || len(ps) != 0 {
			t.Fatalf("ledger chains after concurrent writers: %+v, %v", ps, err)
		}
	})
}

// TestAuditChainConcurrent: appenders on two replicas build one linear
// hash chain, with no seq taken twice and no fork.
func TestAuditChainConcurrent(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		dbs := replicas(t, db, dsn)
		const workers, each = 16, 8
		chainHash := func(seq int64, prev, kind string) string {
			h := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s", seq, prev, kind))
			return hex.EncodeToString(h[:])
		}
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					err := dbs[w%2].AppendAudit(ctx, func(lastSeq int64, lastHash string) (auditlog.Row, error) {
						if lastSeq == 0 {
							lastHash = "genesis"
						}
						kind := fmt.Sprintf("w%d.%d", w, i)
						seq := lastSeq + 1
						return auditlog.Row{Seq: seq, At: int64(seq), Kind: kind, Actor: "test", Details: "{}", PrevHash: lastHash, Hash: chainHash(seq, lastHash, kind)}, nil
					})
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		rows, err := db.ScanAudit(ctx, 0, workers*each+10)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != workers*each {
			t.Fatalf("%d rows, want %d", len(rows), workers*each)
		}
		prev := "genesis"
		for i, r := range rows {
			if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != chainHash(r.Seq, r.PrevHash, r.Kind) {
				t.Fatalf("chain breaks at row %d: %+v (prev %s)", i, r, prev)
			}
			prev = r.Hash
		}
	})
}

// TestKeyringConcurrentSaves: of concurrent savers of one generation, on
// two replicas, exactly one wins.
func TestKeyringConcurrentSaves(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		dbs := replicas(t, db, dsn)
		for gen := int64(0); gen < 3; gen++ {
			var wins atomic.Int64
			var wg sync.WaitGroup
			for w := range 12 {
				wg.Go(func() {
					_, err := dbs[w%2].SaveKeyring(ctx, fmt.Appendf(nil, "g%d-w%d", gen, w), gen)
					switch {
					case err == nil:
						wins.Add(1)
					case !errors.Is(err, ErrConflict):
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("generation %d: %d saves won", gen, wins.Load())
			}
		}
		if _, gen, err := db.Keyring(ctx); err != nil || gen != 3 {
			t.Fatalf("generation %d, %v", gen, err)
		}
	})
}

func TestHoldCreditConcurrent(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 100)
		dbs := replicas(t, db, dsn)
		const goroutines = 300
		var ok, short atomic.Int64
		var wg sync.WaitGroup
		const ttl = time.Minute
		for i := range goroutines {
			wg.Go(func() {
				err := dbs[i%2].HoldCredit(ctx, "acct_a", fmt.Sprint("h", i), 1, ttl)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, books.ErrInsufficientCredit):
					short.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 100 || short.Load() != goroutines-100 {
			t.Fatalf("%d holds placed, %d refused; want 100, %d", ok.Load(), short.Load(), goroutines-100)
		}
		checkCredit(t, db, "acct_a", 100, 100)
		var held int
		if err := db.queryRow(ctx, `SELECT COUNT(*) FROM credit_holds WHERE account_id = ?`, "acct_a").Scan(&held); err != nil || held != 100 {
			t.Fatalf("%d hold rows, %v", held, err)
		}
	})
}

func TestHoldCreditErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 10)
		const ttl = time.Minute
		if err := db.HoldCredit(ctx, "acct_a", "h1", 6, ttl); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name    string
			account string
			hold    string
			amount  int64
			want    error
		}{
			{"unknown account", "nobody", "h2", 1, ErrNotFound},
			{"hold id taken", "acct_a", "h1", 1, ErrConflict},
			{"hold id taken, too much anyway", "acct_a", "h1", 100, ErrConflict},
			{"more than is free", "acct_a", "h2", 5, books.ErrInsufficientCredit},
		} {
			if err := db.HoldCredit(ctx, c.account, c.hold, c.amount, ttl); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
		if err := db.HoldCredit(ctx, "acct_a", "h3", -1, ttl); err == nil {
			t.Error("negative hold accepted")
		}
		if err := db.HoldCredit(ctx, "acct_a", "h3", 1, 0); err == nil {
			t.Error("hold without a TTL accepted")
		}
		if err := db.HoldCredit(ctx, "acct_a", "h4", 4, ttl); err != nil { // exactly what is free
			t.Fatal(err)
		}
		if err := db.HoldCredit(ctx, "acct_a", "h5", 0, ttl); err != nil { // nothing is free, but 0 fits
			t.Fatal(err)
		}
		checkCredit(t, db, "acct_a", 10, 10)
		if _, _, err := db.CreditState(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("credit state of unknown account: %v", err)
		}
	})
}

func TestReleaseHold(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 100)
		const ttl = time.Minute
		for i, amount := range []int64{30, 20} {
			if err := db.HoldCredit(ctx, "acct_a", fmt.Sprint("h", i), amount, ttl); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := db.ReleaseHold(ctx, "h0"); err != nil || !ok {
			t.Fatalf("release: %v, %v", ok, err)
		}
		checkCredit(t, db, "acct_a", 100, 20)
		if ok, err := db.ReleaseHold(ctx, "h0"); err != nil || ok {
			t.Fatalf("second release: %v, %v", ok, err)
		}
		if ok, err := db.ReleaseHold(ctx, "never"); err != nil || ok {
			t.Fatalf("release of an unknown hold: %v, %v", ok, err)
		}
		checkCredit(t, db, "acct_a", 100, 20)

		// Many releasers of one hold on two replicas: one releases it.
		dbs := replicas(t, db, dsn)
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				ok, err := dbs[i%2].ReleaseHold(ctx, "h1")
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d releases of one hold", wins.Load())
		}
		checkCredit(t, db, "acct_a", 100, 0)
		// The freed credit can be held again.
		if err := db.HoldCredit(ctx, "acct_a", "h9", 100, ttl); err != nil {
			t.Fatal(err)
		}
	})
}

func TestInsertUsageReleasesHolds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 100)
		topUp(t, db, "acct_b", 100)
		const ttl = time.Minute
		for _, h := range []struct {
			account, id string
			amount      int64
		}{{"acct_a", "r1", 10}, {"acct_a", "r2", 20}, {"acct_b", "r3", 40}, {"acct_a", "r4", 5}} {
			if err := db.HoldCredit(ctx, h.account, h.id, h.amount, ttl); err != nil {
				t.Fatal(err)
			}
		}
		rec := func(id, account string, cost int64) books.UsageRecord {
			return books.UsageRecord{RequestID: id, AccountID: account, KeyID: "k", Model: "m", Status: 200, CostNano: cost, CreatedAt: ledgerT0}
		}
		// r1 and r3 cost less than held, r2 nothing; r5 had no hold.
		batch := []books.UsageRecord{rec("r3", "acct_b", 25), rec("r1", "acct_a", 8), rec("r2", "acct_a", 0), rec("r5", "acct_a", 1)}
		for range 2 { // the retry changes nothing
			if err := db.InsertUsage(ctx, batch); err != nil {
				t.Fatal(err)
			}
			checkCredit(t, db, "acct_a", 100-8-1, 5)
			checkCredit(t, db, "acct_b", 100-25, 0)
		}
		// A hold placed again under a stored request's id is not released
		// by a replay of that request: its usage is not stored again.
		if err := db.HoldCredit(ctx, "acct_a", "r1", 3, ttl); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertUsage(ctx, batch[1:2]); err != nil {
			t.Fatal(err)
		}
		checkCredit(t, db, "acct_a", 91, 8)
		// A batch without holds.
		if err := db.InsertUsage(ctx, []books.UsageRecord{rec("r6", "acct_a", 1)}); err != nil {
			t.Fatal(err)
		}
		checkCredit(t, db, "acct_a", 90, 8)
		if mm, err := db.VerifyBalances(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("verify = %+v, %v", mm, err)
		}
	})
}

// TestSweepExpiredHolds: a sweep frees the holds whose TTL has passed by
// the database's clock, and only those.
func TestSweepExpiredHolds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 100)
		topUp(t, db, "acct_b", 100)
		for _, h := range []struct {
			account, id string
			amount      int64
			ttl         time.Duration
		}{
			{"acct_a", "old1", 10, time.Millisecond},
			{"acct_a", "old2", 20, time.Millisecond},
			{"acct_b", "old3", 40, time.Nanosecond}, // rounds up to 1ms
			{"acct_a", "live1", 1, time.Hour},
			{"acct_b", "live2", 2, time.Hour},
		} {
			if err := db.HoldCredit(ctx, h.account, h.id, h.amount, h.ttl); err != nil {
				t.Fatal(err)
			}
		}
		// Real time for the short holds to expire: the sweep judges them
		// by the database's clock, which no test can move.
		time.Sleep(20 * time.Millisecond)
		n, err := db.SweepExpiredHolds(ctx)
		if err != nil || n != 3 {
			t.Fatalf("swept %d, %v; want 3", n, err)
		}
		checkCredit(t, db, "acct_a", 100, 1)
		checkCredit(t, db, "acct_b", 100, 2)
		if n, err := db.SweepExpiredHolds(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep: %d, %v", n, err)
		}
		if ok, _ := db.ReleaseHold(ctx, "old1"); ok {
			t.Fatal("a swept hold was released again")
		}
		// An hour later (the live holds' expiry moved back by an hour).
		if _, err := db.exec(ctx, `UPDATE credit_holds SET expires_at = expires_at - ?`, time.Hour.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		if n, err := db.SweepExpiredHolds(ctx); err != nil || n != 2 {
			t.Fatalf("later sweep: %d, %v", n, err)
		}
		checkCredit(t, db, "acct_a", 100, 0)
		checkCredit(t, db, "acct_b", 100, 0)
	})
}

func topUp(t testing.TB, db *DB, account string, amount int64) {
	t.Helper()
	seedAccounts(t, db, account)
	if _, _, err := db.PostLedgerEntry(context.Background(), books.LedgerEntry{AccountID: account, Kind: books.LedgerTopUp, Amount: amount, IdempotencyKey: "seed", CreatedAt: ledgerT0}); err != nil {
		t.Fatal(err)
	}
}

func checkCredit(t *testing.T, db *DB, account string, balance, reserved int64) {
	t.Helper()
	b, r, err := db.CreditState(context.Background(), account)
	if err != nil || b != balance || r != reserved {
		t.Fatalf("%s: balance %d reserved %d (%v); want %d, %d", account, b, r, err, balance, reserved)
	}
}

// BenchmarkHoldCredit places holds on one account under unique ids: one
// caller at a time (the latency of a hold), and from 8 goroutines per CPU
// (the throughput when many requests start at once).
func BenchmarkHoldCredit(b *testing.B) {
	for _, be := range backends {
		for _, par := range []int{0, 8} {
			name := be.name + "/serial"
			if par > 0 {
				name = fmt.Sprintf("%s/parallel%d", be.name, par)
			}
			b.Run(name, func(b *testing.B) {
				db, _ := be.open(b)
				topUp(b, db, "acct_a", 1<<60)
				ctx := context.Background()
				const ttl = time.Hour
				var n atomic.Int64
				hold := func() error {
					return db.HoldCredit(ctx, "acct_a", fmt.Sprint("h", n.Add(1)), 1000, ttl)
				}
				b.ReportAllocs()
				b.ResetTimer()
				if par == 0 {
					for b.Loop() {
						if err := hold(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := hold(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// TestInsertUsageLargeBatch: a batch longer than one INSERT statement
// carries (usageRowsPerInsert), with records stored before and a request
// id twice in it, stores and debits each request once.
func TestInsertUsageLargeBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 10_000)
		rec := func(i int) books.UsageRecord {
			return books.UsageRecord{RequestID: fmt.Sprintf("big%03d", i), AccountID: "acct_a", KeyID: "k", Model: "m", Status: 200, CostNano: int64(i + 1), CreatedAt: ledgerT0}
		}
		const n = 2*usageRowsPerInsert + 7
		var before []books.UsageRecord
		for i := 0; i < n; i += 10 {
			before = append(before, rec(i))
		}
		if err := db.InsertUsage(ctx, before); err != nil {
			t.Fatal(err)
		}
		var batch []books.UsageRecord
		for i := range n {
			batch = append(batch, rec(i))
		}
		batch = append(batch, rec(3)) // twice in one batch
		if err := db.InsertUsage(ctx, batch); err != nil {
			t.Fatal(err)
		}
		all, err := db.ListUsage(ctx, books.UsageFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("%d records stored, want %d", len(all), n)
		}
		var spent int64
		for i := range n {
			spent += int64(i + 1)
		}
		checkCredit(t, db, "acct_a", 10_000-spent, 0)
		if mm, err := db.VerifyBalances(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("verify = %+v, %v", mm, err)
		}
	})
}
