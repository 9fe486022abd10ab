package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// errorLines are the Error entries logged so far.
func errorLines(logs *observer.ObservedLogs) []observer.LoggedEntry {
	return logs.FilterLevelExact(zapcore.ErrorLevel).All()
}

// A write that fails with an error that blames no record (a lock wait or
// statement timeout, a full disk, a serialization failure) keeps the
// records, durable in the spool, and retries them for as long as it takes,
// though the store meanwhile takes other writes: none is set aside, none
// dropped, the replica is not reported down, and the failure is logged at
// Error once, not at every retry.
func TestRecorderRetriesErrorsThatBlameNoRecord(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name string
		err  error
	}{
		{"statement timeout (57014)", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}},
		{"lock not available (55P03)", &pgconn.PgError{Code: "55P03", Message: "could not obtain lock on row in relation \"accounts\""}},
		{"disk full (53100)", &pgconn.PgError{Code: "53100", Message: "could not extend file: No space left on device"}},
		{"serialization failure (40001)", &pgconn.PgError{Code: "40001"}},
		{"deadlock detected (40P01)", &pgconn.PgError{Code: "40P01"}},
		{"write timed out", context.DeadlineExceeded},
		{"sqlite busy", errors.New("database is locked (5) (SQLITE_BUSY)")},
		{"an error nothing classifies", errors.New("something else")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, err := OpenSpool(dir)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.DebugLevel)
			w := &flakyWriter{}
			var outages atomic.Int32
			r := NewRecorder(w, zap.New(core), 8, 64, time.Hour, WithSpool(sp), withBackoff(2*time.Millisecond, 10*time.Millisecond),
				WithOnOutage(func() { outages.Add(1) }), withFailLogEvery(time.Hour))
			defer r.Close(context.Background())
			ctx := context.Background()
			rec := func(id string) books.UsageRecord {
				return books.UsageRecord{RequestID: id, AccountID: "acct", CostNano: 5000}
			}
			// Stored first: a no-op insert of it goes through all along.
			if err := r.Commit(ctx, rec("good0")); err != nil {
				t.Fatal(err)
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}

			w.failing.Store(&tt.err)
			const n = 5
			for i := range n {
				if err := r.Commit(ctx, rec(fmt.Sprint("paid", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Flush(ctx); !errors.Is(err, ErrStoreDown) {
				t.Fatalf("flush while every write fails: %v, want ErrStoreDown", err)
			}
			calls := w.callCount()
			testutil.Eventually(t, "the replay to retry", func() bool { return w.callCount() >= calls+20 })
			if ids := rejectedIDs(t, dir); len(ids) != 0 {
				t.Fatalf("set aside %v on an error that blames no record", ids)
			}
			if recs, _ := r.Spooled(); recs != n || !r.Outage() {
				t.Fatalf("%d records kept for the replay, outage %v; want the %d, in an outage", recs, r.Outage(), n)
			}
			lines := errorLines(logs)
			if len(lines) != 1 {
				t.Fatalf("logged %d Error lines for %d failed writes, want 1 (rate-limited): %v", len(lines), w.callCount()-calls, lines)
			}
			if got := lines[0].ContextMap()["error"]; !strings.Contains(fmt.Sprint(got), tt.err.Error()) {
				t.Fatalf("the Error line holds %q, want the store's error %q", got, tt.err)
			}

			w.failing.Store(nil)
			testutil.Eventually(t, "the replay after the store takes writes again", drained(r))
			if err := r.Flush(ctx); err != nil {
				t.Fatalf("flush after recovery: %v", err)
			}
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if !w.has(fmt.Sprint("paid", i)) {
					t.Fatalf("paid%d not stored", i)
				}
			}
			if ids := rejectedIDs(t, dir); len(ids) != 0 {
				t.Fatalf("set aside %v", ids)
			}
			if outages.Load() != 0 {
				t.Fatalf("onOutage ran %d times for a store that was reachable", outages.Load())
			}
			if files := segmentFiles(t, dir); len(files) != 0 {
				t.Fatalf("segments left: %v", files)
			}
		})
	}
}

// A failure that persists is logged again every so often, with the error
// and how many failures the line stands for.
func TestRecorderLogsPersistentFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	sp, err := OpenSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	w := &flakyWriter{}
	failure := error(&pgconn.PgError{Code: "53100", Message: "could not extend file"})
	w.failing.Store(&failure)
	r := NewRecorder(w, zap.New(core), 8, 64, time.Hour, WithSpool(sp), withBackoff(time.Millisecond, 2*time.Millisecond), withFailLogEvery(20*time.Millisecond))
	defer r.Close(context.Background())
	if err := r.Commit(context.Background(), books.UsageRecord{RequestID: "x"}); err != nil {
		t.Fatal(err)
	}
	r.Flush(context.Background())
	testutil.Eventually(t, "the failure logged again", func() bool { return len(errorLines(logs)) >= 3 })
	for _, l := range errorLines(logs)[1:] {
		m := l.ContextMap()
		if !strings.Contains(fmt.Sprint(m["error"]), "53100") || m["failures"] == nil || m["records_waiting"] != int64(1) {
			t.Fatalf("repeated Error line %q %v: want the error, the failures counted and the record waiting", l.Message, m)
		}
	}
	if calls := w.callCount(); calls <= len(errorLines(logs)) {
		t.Fatalf("%d Error lines for %d failed writes: not rate-limited", len(errorLines(logs)), calls)
	}
	w.failing.Store(nil)
	testutil.Eventually(t, "the replay", drained(r))
	if !w.has("x") {
		t.Fatal("x not stored")
	}
}

// A batch bisected for a record the store refuses sets aside that record
// only: a record of it that fails with an error that blames nothing (its
// account row locked) is kept, and written once the lock is gone; the bad
// record is set aside once, however often its segment is replayed.
func TestRecorderBisectionSetsAsideOnlyBadData(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &flakyWriter{}
	r := NewRecorder(w, zap.NewNop(), 8, 64, time.Hour, WithSpool(sp), withBackoff(2*time.Millisecond, 10*time.Millisecond))
	defer r.Close(context.Background())
	ctx := context.Background()
	if err := r.Commit(ctx, books.UsageRecord{RequestID: "good0"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.setPoison("bad", &pgconn.PgError{Code: "22021"})
	w.setPoison("locked", &pgconn.PgError{Code: "55P03"})
	for _, id := range []string{"bad", "good1", "locked", "good2"} {
		if err := r.Commit(ctx, books.UsageRecord{RequestID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); !errors.Is(err, ErrStoreDown) {
		t.Fatalf("flush: %v, want ErrStoreDown: locked could not be written", err)
	}
	calls := w.callCount()
	testutil.Eventually(t, "the replay to retry", func() bool { return w.callCount() >= calls+20 })
	if ids := rejectedIDs(t, dir); len(ids) != 1 || ids[0] != "bad" {
		t.Fatalf("rejected file holds %v, want [bad] once", ids)
	}
	if w.has("locked") || !w.has("good1") {
		t.Fatalf("locked stored %v, good1 stored %v", w.has("locked"), w.has("good1"))
	}
	w.setPoison("locked", nil)
	testutil.Eventually(t, "the replay", drained(r))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"good0", "good1", "locked", "good2"} {
		if !w.has(id) {
			t.Fatalf("%s not stored", id)
		}
	}
	if w.has("bad") {
		t.Fatal("bad stored")
	}
	if ids := rejectedIDs(t, dir); len(ids) != 1 {
		t.Fatalf("rejected file holds %v, want [bad] once", ids)
	}
}

// Against a real PostgreSQL: the account row a paid record debits is
// locked (a long admin transaction) for longer than a write may take. The
// record's writes time out while a no-op insert would go through; it must
// be kept and written, with its debit, once the lock is released, never
// set aside.
func TestRecorderWaitsOutALockedAccountRow(t *testing.T) {
	pgURL := storetest.Postgres(t) // skips without XROUTE_TEST_POSTGRES_URL
	ctx := context.Background()
	db, err := store.OpenPostgres(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	cw := &countingWriter{w: db}
	r := NewRecorder(cw, zap.NewNop(), 8, 64, time.Hour, WithSpool(sp), withWriteTimeout(200*time.Millisecond), withBackoff(20*time.Millisecond, 100*time.Millisecond))
	defer r.Close(ctx)
	rec := func(id string, cost int64) books.UsageRecord {
		return books.UsageRecord{RequestID: id, AccountID: keys.DefaultAccountID, KeyID: "k", Model: "m", Status: 200, CreatedAt: time.Now(), CostNano: cost}
	}
	if err := r.Commit(ctx, rec("good0", 0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before, _, err := db.CreditState(ctx, keys.DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE`, keys.DefaultAccountID); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, rec("paid1", 5000)); err != nil {
		t.Fatal(err)
	}
	err = r.Flush(ctx)
	t.Logf("flush with the account row locked: %v", err)
	tried := cw.n.Load()
	testutil.Eventually(t, "the replay to retry against the locked row", func() bool { return cw.n.Load() >= tried+5 })
	if ids := rejectedIDs(t, dir); len(ids) != 0 {
		t.Fatalf("set aside %v while the account row was locked", ids)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "paid1 written after the lock is released", drained(r))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := db.ListUsage(ctx, books.UsageFilter{RequestID: "paid1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatal("paid1 not stored")
	}
	after, _, err := db.CreditState(ctx, keys.DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	if before-after != 5000 {
		t.Fatalf("balance %d -> %d, want paid1's 5000 debited once", before, after)
	}
	if ids := rejectedIDs(t, dir); len(ids) != 0 {
		t.Fatalf("set aside %v", ids)
	}
}

// countingWriter counts the writes that reach w: a test waits for a
// number of retries instead of sleeping through them.
type countingWriter struct {
	w UsageWriter
	n atomic.Int64
}

func (c *countingWriter) InsertUsage(ctx context.Context, recs []books.UsageRecord) error {
	c.n.Add(1)
	return c.w.InsertUsage(ctx, recs)
}
