package store

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/keys"
)

// dbNowMillis reads the database's clock, as HoldCredit and
// SweepExpiredHolds do.
func dbNowMillis(t *testing.T, db *DB) int64 {
	t.Helper()
	q := `SELECT ` + sqliteNowMillis
	if db.isPostgres() {
		q = `SELECT ` + pgNowMillis
	}
	var ms int64
	if err := db.queryRow(context.Background(), q).Scan(&ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestHoldExpiryUsesDatabaseClock: a hold expires its TTL after the
// database's clock says it was placed; the caller passes no time.
func TestHoldExpiryUsesDatabaseClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 100)
		before := dbNowMillis(t, db)
		if err := db.HoldCredit(ctx, "acct_a", "h1", 5, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := db.HoldCredit(ctx, "acct_a", "h2", 5, 1500*time.Microsecond); err != nil {
			t.Fatal(err)
		}
		after := dbNowMillis(t, db)
		for _, c := range []struct {
			id  string
			ttl int64 // ms, rounded up
		}{{"h1", 90_000}, {"h2", 2}} {
			var created, expires int64
			if err := db.queryRow(ctx, `SELECT created_at, expires_at FROM credit_holds WHERE id = ?`, c.id).Scan(&created, &expires); err != nil {
				t.Fatal(err)
			}
			if created < before || created > after || expires-created != c.ttl {
				t.Errorf("%s: created %d, expires %d; want created in [%d, %d] and a TTL of %d ms", c.id, created, expires, before, after, c.ttl)
			}
		}
	})
}

// TestSweepManyExpiredHolds: a sweep frees more holds than one batch.
func TestSweepManyExpiredHolds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		topUp(t, db, "acct_a", 1<<40)
		topUp(t, db, "acct_b", 1<<40)
		const n = sweepBatch + 234
		// Long expired holds, written directly (HoldCredit n times is slow).
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			for i := range n {
				if _, err := db.txExec(ctx, tx, `INSERT INTO credit_holds (id, account_id, amount_nano, created_at, expires_at) VALUES (?, ?, 3, 0, 1)`,
					fmt.Sprintf("h%05d", i), []string{"acct_a", "acct_b"}[i%2]); err != nil {
					return err
				}
			}
			_, err := db.txExec(ctx, tx, `UPDATE accounts SET reserved_nano = ? WHERE id IN ('acct_a', 'acct_b')`, 3*n/2)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.HoldCredit(ctx, "acct_a", "live", 7, time.Hour); err != nil {
			t.Fatal(err)
		}
		if swept, err := db.SweepExpiredHolds(ctx); err != nil || swept != n {
			t.Fatalf("swept %d, %v; want %d", swept, err, n)
		}
		checkCredit(t, db, "acct_a", 1<<40, 7)
		checkCredit(t, db, "acct_b", 1<<40, 0)
	})
}

// TestSweepConcurrentWithUsageBatches: sweepers and usage writers on two
// replicas free the same expired holds at once (a replica replaying its
// usage after an outage, while another sweeps). On PostgreSQL a sweep
// that took an account's holds in another order than a usage batch
// deadlocked with it. Nothing may fail, and each account's reserved_nano
// must stay the sum of its remaining holds.
func TestSweepConcurrentWithUsageBatches(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		accounts := []string{"acct_a", "acct_b", "acct_c"}
		for _, a := range accounts {
			topUp(t, db, a, 1<<40)
		}
		dbs := replicas(t, db, dsn)
		if db.isPostgres() {
			// Widen the race: every hold delete takes a moment after it
			// locks the row, and the second replica plans as on a big
			// table (index scans: a usage batch deletes its holds in key
			// order, a sweep in expiry order). The sweep this replaced
			// deadlocked here within a few rounds.
			dbs[1] = openAgain(t, withParams(t, dsn, "enable_seqscan", "off", "enable_bitmapscan", "off"))
			for _, q := range []string{
				`CREATE FUNCTION slow_hold_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.0005); RETURN OLD; END $$`,
				`CREATE TRIGGER slow_hold_delete BEFORE DELETE ON credit_holds FOR EACH ROW EXECUTE FUNCTION slow_hold_delete()`,
			} {
				if _, err := db.exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}
		const (
			rounds   = 6
			perAcct  = 16 // holds per account and round
			writers  = 6  // each stores the usage of 6 holds per account
			sweepers = 4
			cost     = 7
		)
		holdID := func(r int, account string, i int) string { return fmt.Sprintf("r%d-%s-%02d", r, account, i) }
		live := func(i int) bool { return i%4 == 3 } // only usage frees these
		covered := map[int]bool{}                    // holds some writer stores usage for
		for w := range writers {
			for k := range 6 {
				covered[(w*2+k)%perAcct] = true
			}
		}
		wantLeft := map[string]int64{} // account -> held by the live holds no usage released
		for r := range rounds {
			// Placed in descending id order, so that the holds lie in the
			// table in the reverse of the order a usage batch deletes them.
			for i := perAcct - 1; i >= 0; i-- {
				for _, a := range accounts {
					ttl := time.Millisecond
					if live(i) {
						ttl = time.Hour
						if !covered[i] {
							wantLeft[a] += int64(i + 1)
						}
					}
					if err := db.HoldCredit(ctx, a, holdID(r, a, i), int64(i+1), ttl); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Real time for the 1 ms holds to expire: the sweep judges
			// them by the database's clock, which no test can move.
			time.Sleep(5 * time.Millisecond)

			start := make(chan struct{})
			var writing sync.WaitGroup
			var done atomic.Bool
			errs := make(chan error, 1024)
			report := func(err error) {
				select {
				case errs <- err:
				default:
				}
			}
			for w := range writers {
				writing.Go(func() {
					<-start
					var batch []books.UsageRecord
					for k := range 6 {
						i := (w*2 + 5 - k) % perAcct // descending, as a replay might
						for _, a := range accounts {
							batch = append(batch, books.UsageRecord{RequestID: holdID(r, a, i), AccountID: a, KeyID: "k", Model: "m", Status: 200, CostNano: cost, CreatedAt: ledgerT0})
						}
					}
					if err := dbs[w%2].InsertUsage(ctx, batch); err != nil {
						report(fmt.Errorf("usage batch: %w", err))
					}
				})
			}
			var sweeping sync.WaitGroup
			for s := range sweepers {
				sweeping.Go(func() {
					<-start
					for first := true; first || !done.Load(); first = false {
						if _, err := dbs[s%2].SweepExpiredHolds(ctx); err != nil {
							report(err)
							return
						}
						time.Sleep(200 * time.Microsecond) // lets SQLite's writers in
					}
				})
			}
			close(start)
			writing.Wait()
			done.Store(true)
			sweeping.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				t.FailNow()
			}
			checkReservedIsHeld(t, db)
		}
		// The holds still expired are swept; what remains is the live
		// holds that no usage released.
		if _, err := db.SweepExpiredHolds(ctx); err != nil {
			t.Fatal(err)
		}
		for _, a := range accounts {
			checkCredit(t, db, a, 1<<40-int64(rounds*len(covered)*cost), wantLeft[a])
		}
		checkReservedIsHeld(t, db)
		if mm, err := db.VerifyBalances(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("verify = %+v, %v", mm, err)
		}
	})
}

// checkReservedIsHeld: every account's reserved_nano is the sum of its
// holds.
func checkReservedIsHeld(t *testing.T, db *DB) {
	t.Helper()
	rows, err := db.query(context.Background(), `SELECT a.id, a.reserved_nano, COALESCE((SELECT SUM(h.amount_nano) FROM credit_holds h WHERE h.account_id = a.id), 0) FROM accounts a ORDER BY a.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var reserved, held int64
		if err := rows.Scan(&id, &reserved, &held); err != nil {
			t.Fatal(err)
		}
		if reserved != held {
			t.Errorf("%s: reserved %d, holds sum to %d", id, reserved, held)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresQueryExecModes: with default_query_exec_mode in the URL (as
// for PgBouncer's transaction pooling; see postgres.go), holds and usage
// batches work as in pgx's default mode, and no statement stays prepared
// on the connection after its transaction.
func TestPostgresQueryExecModes(t *testing.T) {
	base := storetest.Postgres(t)
	for _, c := range []struct {
		mode         string // "" is pgx's default, cache_statement
		keepPrepared bool   // statements stay prepared on the connection
	}{
		{"", true},
		{"exec", false},
		{"simple_protocol", false},
	} {
		name := c.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			dsn := base
			if c.mode != "" {
				dsn = withParams(t, base, "default_query_exec_mode", c.mode)
			}
			db := openAgain(t, dsn)
			ctx := context.Background()
			account := "acct_mode_" + name
			topUp(t, db, account, 100)

			db.db.SetMaxOpenConns(1) // one server connection, to look at below

			for i, amount := range []int64{30, 20, 10} {
				if err := db.HoldCredit(ctx, account, fmt.Sprintf("%s-r%d", name, i), amount, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.HoldCredit(ctx, account, name+"-big", 41, time.Hour); err == nil {
				t.Fatal("hold over the free balance accepted")
			}
			checkCredit(t, db, account, 100, 60)
			rec := func(i int, cost int64) books.UsageRecord {
				return books.UsageRecord{RequestID: fmt.Sprintf("%s-r%d", name, i), AccountID: account, KeyID: "k", Model: "m", Status: 200, CostNano: cost, CreatedAt: ledgerT0}
			}
			if err := db.InsertUsage(ctx, []books.UsageRecord{rec(0, 25), rec(1, 0)}); err != nil {
				t.Fatal(err)
			}
			checkCredit(t, db, account, 75, 10)
			if ok, err := db.ReleaseHold(ctx, name+"-r2"); err != nil || !ok {
				t.Fatalf("release: %v, %v", ok, err)
			}
			if n, err := db.SweepExpiredHolds(ctx); err != nil || n != 0 {
				t.Fatalf("sweep: %d, %v", n, err)
			}
			checkCredit(t, db, account, 75, 0)

			// The mode reached the connection: only cache_statement left
			// statements prepared on it; the store's own prepared
			// statements (InsertUsage's) did not outlive their transaction.
			var prepared int
			if err := db.queryRow(ctx, `SELECT COUNT(*) FROM pg_prepared_statements`).Scan(&prepared); err != nil {
				t.Fatal(err)
			}
			if (prepared > 0) != c.keepPrepared {
				t.Fatalf("%d statements prepared on the connection", prepared)
			}
		})
	}
}

// withParams returns the URL rawURL with query parameters set, given as
// name, value pairs.
func withParams(t *testing.T, rawURL string, nameValues ...string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(nameValues); i += 2 {
		q.Set(nameValues[i], nameValues[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestPostgresLockTimeout: the pool's statements give up waiting on a
// row lock on the server (5 s unless the URL says otherwise), so a hold
// whose caller timed out cannot commit later, unseen.
func TestPostgresLockTimeout(t *testing.T) {
	ctx := context.Background()
	db, dsn := openPostgresTest(t)
	var v string
	if err := db.db.QueryRowContext(ctx, `SHOW lock_timeout`).Scan(&v); err != nil || v != "5s" {
		t.Fatalf("lock_timeout = %q, %v; want 5s", v, err)
	}
	short := openAgain(t, dsn+"&lock_timeout=100")
	if err := short.db.QueryRowContext(ctx, `SHOW lock_timeout`).Scan(&v); err != nil || v != "100ms" {
		t.Fatalf("lock_timeout from the URL = %q, %v; want 100ms", v, err)
	}
	if err := db.CreateAccount(ctx, keys.Account{ID: "acct_lock", Name: "lock", Status: "active", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM accounts WHERE id = 'acct_lock' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	err = short.HoldCredit(ctx, "acct_lock", "req_lock", 0, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "55P03") {
		t.Fatalf("hold on a locked account: %v; want lock_not_available (55P03) from the server", err)
	}
}
