package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/keys"
)

// flakyWriter is a store that can go down (every write fails, as a
// refused connection does), hang (every write waits for its context or
// for the hang to end), fail every write that inserts something with some
// error (failing: a lock wait that timed out, a full disk), or refuse
// particular records while taking others (a batch holding one fails whole
// with that record's error, as a transaction does). Like the real store it
// is idempotent by request id.
type flakyWriter struct {
	down    atomic.Bool
	hang    atomic.Pointer[chan struct{}]
	failing atomic.Pointer[error]
	poison  map[string]error // guarded by mu once the writer is in use

	mu    sync.Mutex
	byID  map[string]store.UsageRecord
	calls int
}

func (w *flakyWriter) InsertUsage(ctx context.Context, recs []store.UsageRecord) error {
	if h := w.hang.Load(); h != nil {
		select {
		case <-*h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.down.Load() {
		return fmt.Errorf("dial tcp 10.0.0.5:5432: %w", syscall.ECONNREFUSED)
	}
	if err := w.failing.Load(); err != nil && w.holdsNew(recs) {
		return fmt.Errorf("insert usage: %w", *err)
	}
	for _, r := range recs {
		if err := w.poison[r.RequestID]; err != nil {
			return fmt.Errorf("insert usage %s: %w", r.RequestID, err)
		}
	}
	if w.byID == nil {
		w.byID = map[string]store.UsageRecord{}
	}
	for _, r := range recs {
		if _, ok := w.byID[r.RequestID]; !ok {
			w.byID[r.RequestID] = r
		}
	}
	return nil
}

func (w *flakyWriter) stored() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byID)
}

// holdsNew reports whether recs hold a record not stored yet: a write that
// inserts nothing (a record stored before) takes no lock and writes no
// page, so it goes through where others fail. The caller holds mu.
func (w *flakyWriter) holdsNew(recs []store.UsageRecord) bool {
	for _, r := range recs {
		if _, ok := w.byID[r.RequestID]; !ok {
			return true
		}
	}
	return false
}

// setPoison makes the store refuse id with err (nil: take it again).
func (w *flakyWriter) setPoison(id string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.poison == nil {
		w.poison = map[string]error{}
	}
	w.poison[id] = err
}

func (w *flakyWriter) callCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

func (w *flakyWriter) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.byID[id]
	return ok
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// drained: the outage is over and nothing waits to reach the store.
func drained(r *Recorder) func() bool {
	return func() bool {
		recs, _ := r.Spooled()
		return !r.Outage() && recs == 0
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestRecorderSurvivesStoreOutage(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name      string
		spool     bool
		segment   int64 // spool segment size: small rotates often
		queueSize int   // small: spooled records overflow the queue
		viaRecord bool  // fire-and-forget records (Record), not Commit
	}{
		{"spool", true, 8 << 20, 1024, false},
		{"spool, segments rotating during the outage", true, 300, 1024, false},
		{"spool, queue overflowing", true, 8 << 20, 2, false},
		{"spool, fire-and-forget records", true, 8 << 20, 1024, true},
		{"no spool: records held in memory", false, 0, 1024, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := &flakyWriter{}
			var outages atomic.Int32
			opts := []RecorderOption{withBackoff(5*time.Millisecond, 20*time.Millisecond), WithOnOutage(func() { outages.Add(1) })}
			if tt.spool {
				sp, err := OpenSpool(dir)
				if err != nil {
					t.Fatal(err)
				}
				sp.maxSize = tt.segment
				opts = append(opts, WithSpool(sp))
			}
			r := NewRecorder(w, zap.NewNop(), 16, tt.queueSize, 5*time.Millisecond, opts...)
			defer r.Close(context.Background())
			ctx := context.Background()
			put := func(id string) error {
				rec := store.UsageRecord{RequestID: id, AccountID: "acct", CostNano: 7}
				if tt.viaRecord {
					return r.Record(rec)
				}
				return r.Commit(ctx, rec)
			}

			for i := 0; i < 10; i++ {
				if err := put(fmt.Sprint("before", i)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the first records in the store", func() bool { return w.stored() == 10 })

			w.down.Store(true)
			const during = 300
			start := time.Now()
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := g; i < during; i += 4 {
						if err := put(fmt.Sprint("during", i)); err != nil {
							t.Errorf("record %d during the outage: %v", i, err)
						}
					}
				}(g)
			}
			wg.Wait()
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("accepting %d records during the outage took %v: callers waited on the store", during, d)
			}
			waitFor(t, "the outage", r.Outage)
			if err := r.Flush(ctx); !errors.Is(err, ErrStoreDown) {
				t.Fatalf("flush during the outage: %v, want ErrStoreDown", err)
			}
			if recs, _ := r.Spooled(); recs == 0 {
				t.Fatal("records of the outage are not accounted as waiting")
			}
			if n := w.stored(); n != 10 {
				t.Fatalf("%d records stored while the store was down", n)
			}

			w.down.Store(false)
			waitFor(t, "the replay after the store came back", drained(r))
			for i := 0; i < 10; i++ {
				if err := put(fmt.Sprint("after", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatalf("flush after recovery: %v", err)
			}
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if n := w.stored(); n != 10+during+10 {
				t.Fatalf("stored %d records, want %d", n, 10+during+10)
			}
			for i := 0; i < during; i++ {
				if !w.has(fmt.Sprint("during", i)) {
					t.Fatalf("record during%d lost", i)
				}
			}
			if outages.Load() < 1 {
				t.Fatal("the outage hook never ran")
			}
			if files := segmentFiles(t, dir); len(files) != 0 {
				t.Fatalf("segments left after everything reached the store: %v", files)
			}
		})
	}
}

// A store that hangs (a network partition) must not hold up callers: the
// writer is stuck, the queue fills, and spooled records wait on disk.
func TestCommitDoesNotWaitOnAHangingStore(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &flakyWriter{}
	hang := make(chan struct{})
	w.hang.Store(&hang)
	r := NewRecorder(w, zap.NewNop(), 4, 8, time.Millisecond, WithSpool(sp), withBackoff(5*time.Millisecond, 20*time.Millisecond))
	defer r.Close(context.Background())

	done := make(chan error, 1)
	go func() {
		for i := 0; i < 500; i++ {
			if err := r.Commit(context.Background(), store.UsageRecord{RequestID: fmt.Sprint("h", i)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Commit blocked behind a hanging store")
	}
	w.hang.Store(nil)
	close(hang)
	waitFor(t, "every record in the store", func() bool { return w.stored() == 500 })
	waitFor(t, "the spool to drain", drained(r))
}

func TestSpoolFullDuringOutage(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	rec := func(i int) store.UsageRecord {
		return store.UsageRecord{RequestID: fmt.Sprintf("f%04d", i), AccountID: "acct"}
	}
	line := int64(len(mustJSON(t, rec(0))) + 1)
	sp, err := OpenSpool(dir, WithSpoolLimit(64*line))
	if err != nil {
		t.Fatal(err)
	}
	w := &flakyWriter{}
	r := NewRecorder(w, zap.NewNop(), 8, 64, time.Millisecond, WithSpool(sp), withBackoff(5*time.Millisecond, 20*time.Millisecond))
	defer r.Close(context.Background())
	ctx := context.Background()

	w.down.Store(true)
	if err := r.Commit(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outage", r.Outage)
	accepted := []int{0}
	sawFull := false
	var refused error
	for i := 1; i < 200 && refused == nil; i++ {
		sawFull = sawFull || r.Full()
		switch err := r.Commit(ctx, rec(i)); {
		case err == nil:
			accepted = append(accepted, i)
		default:
			refused = err
		}
	}
	if !errors.Is(refused, ErrSpoolFull) {
		t.Fatalf("commit into a full spool: %v, want ErrSpoolFull", refused)
	}
	if !sawFull || !r.Full() {
		t.Fatal("Full must report the spool full before Commit refuses (headroom for requests in flight)")
	}
	if len(accepted) != 64 {
		t.Fatalf("accepted %d records into a spool of 64", len(accepted))
	}

	w.down.Store(false)
	waitFor(t, "the replay", drained(r))
	if r.Full() {
		t.Fatal("still full after the replay")
	}
	for _, i := range accepted {
		if !w.has(rec(i).RequestID) {
			t.Fatalf("accepted record %d lost", i)
		}
	}
	if w.stored() != len(accepted) {
		t.Fatalf("stored %d, accepted %d", w.stored(), len(accepted))
	}
	if err := r.Commit(ctx, rec(999)); err != nil {
		t.Fatalf("commit after the replay: %v", err)
	}
}

// The process dies (SIGKILL: no Close, nothing more written) in the middle
// of an outage; the next process finds every record in the spool and
// writes them once the store answers, even if it starts while the store is
// still down.
func TestKillDuringOutageLosesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	sp.maxSize = 500
	w := &flakyWriter{}
	r := NewRecorder(w, zap.NewNop(), 8, 1024, time.Millisecond, WithSpool(sp), withBackoff(5*time.Millisecond, 20*time.Millisecond))
	defer r.Close(context.Background())
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := r.Commit(ctx, store.UsageRecord{RequestID: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first records in the store", func() bool { return w.stored() == 20 })
	w.down.Store(true)
	const n = 200
	for i := 20; i < n; i++ {
		if err := r.Commit(ctx, store.UsageRecord{RequestID: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the outage", r.Outage)

	// What a kill leaves: the spool's files as they are now.
	killed := t.TempDir()
	for _, f := range segmentFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(killed, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The next process, against a store that is still down.
	w2 := &flakyWriter{}
	w2.down.Store(true)
	sp2, err := OpenSpool(killed)
	if err != nil {
		t.Fatal(err)
	}
	if recs, _ := sp2.Stats(); recs < n-20 {
		t.Fatalf("the spool after the kill holds %d records, want at least %d", recs, n-20)
	}
	if _, err := sp2.Replay(ctx, w2, 100); err == nil { // what RecoverUsage tries at start
		t.Fatal("replay into a store that is down must fail")
	}
	r2 := NewRecorder(w2, zap.NewNop(), 8, 1024, time.Millisecond, WithSpool(sp2), withBackoff(5*time.Millisecond, 20*time.Millisecond))
	defer r2.Close(ctx)
	time.Sleep(30 * time.Millisecond)
	w2.down.Store(false)
	waitFor(t, "the background replay", drained(r2))
	for i := 20; i < n; i++ {
		if !w2.has(fmt.Sprint("k", i)) {
			t.Fatalf("record k%d lost across the kill", i)
		}
	}
	if err := r2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if files := segmentFiles(t, killed); len(files) != 0 {
		t.Fatalf("segments left: %v", files)
	}
}

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
		var r store.UsageRecord
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
		{"sqlite constraint", nil, []string{"good1", "bad"}, sqliteErr(t, "CREATE TABLE t (x INTEGER NOT NULL)", "INSERT INTO t VALUES (NULL)"), true},
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
				if err := r.Commit(ctx, store.UsageRecord{RequestID: id}); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range tt.then {
				if err := r.Commit(ctx, store.UsageRecord{RequestID: id, Model: "m"}); err != nil {
					t.Fatal(err)
				}
			}
			err = r.Flush(ctx) // the batch holding the bad record
			if !tt.wantRejected {
				if !errors.Is(err, ErrStoreDown) || !r.Outage() {
					t.Fatalf("flush: %v, outage %v; want ErrStoreDown and an outage", err, r.Outage())
				}
				time.Sleep(50 * time.Millisecond) // the replay retries meanwhile
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
		go func() { errs <- r.Commit(context.Background(), store.UsageRecord{RequestID: id}) }()
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
		if _, err := sp.Append(store.UsageRecord{RequestID: id}); err != nil {
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
	waitFor(t, "the replay", func() bool { recs, _ := r.Spooled(); return recs == 0 })
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
	rec := func(id, model string) store.UsageRecord {
		return store.UsageRecord{RequestID: id, AccountID: keys.DefaultAccountID, KeyID: "k", Model: model, Status: 200, CreatedAt: time.Unix(1e9, 0)}
	}
	for _, rc := range []store.UsageRecord{rec("bad", "m\x00"), rec("good1", "m"), rec("good2", "m")} {
		if err := r.Commit(ctx, rc); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil || r.Outage() || outages.Load() != 0 {
		t.Fatalf("flush: %v, outage %v (%d reported); want the good records written", err, r.Outage(), outages.Load())
	}
	recs, err := db.ListUsage(ctx, store.UsageFilter{})
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
