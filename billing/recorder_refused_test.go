package billing

// Records the store refuses (bad data) are set aside, never retried
// forever nor blamed on the store; records it merely fails on are kept.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store/drivertest"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
)

func rejectedIDs(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rejectedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r books.UsageRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("rejected file line %q: %v", line, err)
		}
		ids = append(ids, r.RequestID)
	}
	return ids
}

// A record the store refuses for what it holds must neither hold the
// others back nor pass for an outage: it is set aside, still on disk, the
// rest is written, and the replica is not taken down (onOutage would 503
// every tenant). The store's own error classes decide: an error nothing
// classifies blames no record, even when the store still takes other
// writes (a record whose account row is locked times out while a no-op
// insert goes through); the batch is kept and retried.
func TestRefusedRecordIsSetAside(t *testing.T) {
	defer goleak.VerifyNone(t)
	nul := &pgconn.PgError{Severity: "ERROR", Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`}
	tests := []struct {
		name         string
		first        []string // committed and flushed before the rest
		then         []string // committed in one batch
		poison       error    // what the store says of "bad"
		wantRejected bool     // else: an outage, the batch kept in the spool
	}{
		{"class 22 (NUL byte), the process's first record", nil, []string{"bad", "good1", "good2"}, nul, true},
		{"class 22, alone, before anything was stored", nil, []string{"bad"}, nul, true},
		{"class 23 in the middle of a batch", []string{"good0"}, []string{"good1", "good2", "bad", "good3", "good4"}, &pgconn.PgError{Code: "23514", Message: "violates check constraint"}, true},
		{"sqlite constraint", nil, []string{"good1", "bad"}, drivertest.SQLiteErr(t, "CREATE TABLE t (x INTEGER NOT NULL)", "INSERT INTO t VALUES (NULL)"), true},
		{"unknown error though the store takes other writes: kept, not blamed", []string{"good0"}, []string{"good1", "bad", "good2"}, errors.New("violates something"), false},
		{"lock wait timed out though the store takes other writes: kept", []string{"good0"}, []string{"good1", "bad"}, fmt.Errorf("insert usage bad: %w", context.DeadlineExceeded), false},
		{"lock not available (55P03): kept", []string{"good0"}, []string{"bad"}, &pgconn.PgError{Code: "55P03"}, false},
		{"unknown error and nothing stored yet: kept", nil, []string{"bad"}, errors.New("violates something"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, err := OpenSpool(dir)
			if err != nil {
				t.Fatal(err)
			}
			w := &flakyWriter{poison: map[string]error{"bad": tt.poison}}
			var outages atomic.Int32
			r := NewRecorder(w, zap.NewNop(), 8, 64, time.Hour, WithSpool(sp), withBackoff(5*time.Millisecond, 20*time.Millisecond),
				WithOnOutage(func() { outages.Add(1) }))
			defer r.Close(context.Background())
			ctx := context.Background()
			for _, id := range tt.first {
				if err := r.Commit(ctx, books.UsageRecord{RequestID: id}); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range tt.then {
				if err := r.Commit(ctx, books.UsageRecord{RequestID: id, Model: "m"}); err != nil {
					t.Fatal(err)
				}
			}
			err = r.Flush(ctx) // the batch holding the bad record
			if !tt.wantRejected {
				if !errors.Is(err, ErrStoreDown) || !r.Outage() {
					t.Fatalf("flush: %v, outage %v; want ErrStoreDown and an outage", err, r.Outage())
				}
				tried := w.callCount()
				testutil.Eventually(t, "the replay to retry the batch", func() bool { return w.callCount() >= tried+2 })
				if ids := rejectedIDs(t, dir); len(ids) != 0 || w.has("bad") {
					t.Fatalf("set aside %v on an error that blames nothing", ids)
				}
				if recs, _ := r.Spooled(); recs != int64(len(tt.then)) {
					t.Fatalf("%d records kept for the replay, want the %d of the batch", recs, len(tt.then))
				}
				if outages.Load() != 0 {
					t.Fatal("onOutage ran for an error that is no connection failure")
				}
				return
			}
			if err != nil || r.Outage() {
				t.Fatalf("flush: %v, outage %v; want the batch written, the bad record set aside", err, r.Outage())
			}
			for _, id := range append(tt.first, tt.then...) {
				if id != "bad" && !w.has(id) {
					t.Fatalf("%s not stored", id)
				}
			}
			if ids := rejectedIDs(t, dir); len(ids) != 1 || ids[0] != "bad" {
				t.Fatalf("rejected file holds %v, want [bad]", ids)
			}
			if recs, _ := r.Spooled(); recs != 0 {
				t.Fatalf("%d records still wait for the store", recs)
			}
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if outages.Load() != 0 {
				t.Fatalf("onOutage ran %d times for a refused record", outages.Load())
			}
			if files := segmentFiles(t, dir); len(files) != 0 {
				t.Fatalf("segments left: %v", files)
			}
		})
	}
}

// Without a spool, the caller of Commit learns its record was refused;
// the others of its batch are written all the same.
func TestRefusedCommitWithoutSpool(t *testing.T) {
	defer goleak.VerifyNone(t)
	nul := &pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`}
	w := &flakyWriter{poison: map[string]error{"bad": nul}}
	var outages atomic.Int32
	r := NewRecorder(w, zap.NewNop(), 8, 64, time.Hour, WithOnOutage(func() { outages.Add(1) }))
	defer r.Close(context.Background())
	errs := make(chan error, 3)
	for _, id := range []string{"good1", "bad", "good2"} {
		go func() { errs <- r.Commit(context.Background(), books.UsageRecord{RequestID: id}) }()
	}
	refused := 0
	for range 3 {
		err := <-errs
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
		case errors.As(err, &pgErr) && pgErr.Code == "22021":
			refused++
		default:
			t.Fatalf("commit: %v", err)
		}
	}
	if refused != 1 || !w.has("good1") || !w.has("good2") || w.has("bad") || r.Outage() || outages.Load() != 0 {
		t.Fatalf("refused %d, stored good1 %v good2 %v bad %v, outage %v (%d reported)", refused, w.has("good1"), w.has("good2"), w.has("bad"), r.Outage(), outages.Load())
	}
}

// A refused record a previous process left in the spool is set aside by
// the background replay, which then drains the rest, though nothing was
// yet stored to serve as a probe.
func TestReplaySetsAsideRefusedRecords(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"bad", "a", "b", "c"} { // bad first: nothing stored yet to probe with
		if _, err := sp.Append(books.UsageRecord{RequestID: id}); err != nil {
			t.Fatal(err)
		}
	}
	crash(sp)
	sp2, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &flakyWriter{poison: map[string]error{"bad": &pgconn.PgError{Code: "22P05"}}}
	var outages atomic.Int32
	r := NewRecorder(w, zap.NewNop(), 8, 64, time.Hour, WithSpool(sp2), withBackoff(5*time.Millisecond, 20*time.Millisecond),
		WithOnOutage(func() { outages.Add(1) }))
	defer r.Close(context.Background())
	testutil.Eventually(t, "the replay", func() bool { recs, _ := r.Spooled(); return recs == 0 })
	for _, id := range []string{"a", "b", "c"} {
		if !w.has(id) {
			t.Fatalf("%s not stored", id)
		}
	}
	if ids := rejectedIDs(t, dir); len(ids) != 1 || ids[0] != "bad" {
		t.Fatalf("rejected file holds %v, want [bad]", ids)
	}
	if r.Outage() || outages.Load() != 0 {
		t.Fatalf("outage %v, %d reported, for a refused record", r.Outage(), outages.Load())
	}
}

// Against a real PostgreSQL: a NUL byte in a text column (SQLSTATE 22021),
// in the first record the process writes.
func TestRecorderSetsAsideWhatPostgresRefuses(t *testing.T) {
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
	var outages atomic.Int32
	r := NewRecorder(db, zap.NewNop(), 8, 64, time.Hour, WithSpool(sp), WithOnOutage(func() { outages.Add(1) }))
	defer r.Close(ctx)
	rec := func(id, model string) books.UsageRecord {
		return books.UsageRecord{RequestID: id, AccountID: keys.DefaultAccountID, KeyID: "k", Model: model, Status: 200, CreatedAt: time.Unix(1e9, 0)}
	}
	for _, rc := range []books.UsageRecord{rec("bad", "m\x00"), rec("good1", "m"), rec("good2", "m")} {
		if err := r.Commit(ctx, rc); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil || r.Outage() || outages.Load() != 0 {
		t.Fatalf("flush: %v, outage %v (%d reported); want the good records written", err, r.Outage(), outages.Load())
	}
	recs, err := db.ListUsage(ctx, books.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("stored %d records, want good1 and good2", len(recs))
	}
	if ids := rejectedIDs(t, dir); len(ids) != 1 || ids[0] != "bad" {
		t.Fatalf("rejected file holds %v, want [bad]", ids)
	}
}
