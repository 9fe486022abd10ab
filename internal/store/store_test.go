package store

import (
	"context"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/keys"
)

// backend opens a fresh database of one dialect for a test; dsn reopens
// the same database (a second replica, or a restart).
type backend struct {
	name string
	open func(t testing.TB) (db *DB, dsn string)
}

var backends = []backend{
	{DialectSQLite, openSQLiteTest},
	{DialectPostgres, openPostgresTest},
}

// forEachBackend runs fn as a subtest per backend, each on a fresh
// database. The PostgreSQL subtest skips unless XROUTE_TEST_POSTGRES_URL
// is set.
func forEachBackend(t *testing.T, fn func(t *testing.T, db *DB)) {
	t.Helper()
	forEachBackendDSN(t, func(t *testing.T, db *DB, _ string) { fn(t, db) })
}

// forEachBackendDSN is forEachBackend for tests that open the database
// again, with Open(ctx, dsn).
func forEachBackendDSN(t *testing.T, fn func(t *testing.T, db *DB, dsn string)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, dsn := b.open(t)
			fn(t, db, dsn)
		})
	}
}

func openSQLiteTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func openPostgresTest(t testing.TB) (*DB, string) {
	t.Helper()
	dsn := storetest.Postgres(t)
	return openAgain(t, dsn), dsn
}

// openAgain opens another handle on dsn, closed when the test ends.
func openAgain(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsAreIdempotent(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		v1, err := db.SchemaVersion(ctx)
		if err != nil || v1 < 6 {
			t.Fatalf("version %d, %v", v1, err)
		}
		db.Close()
		db2, err := Open(ctx, dsn)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer db2.Close()
		if db2.Dialect() != t.Name()[strings.LastIndexByte(t.Name(), '/')+1:] {
			t.Fatalf("dialect %q in subtest %s", db2.Dialect(), t.Name())
		}
		if v2, _ := db2.SchemaVersion(ctx); v2 != v1 {
			t.Fatalf("version changed on reopen: %d -> %d", v1, v2)
		}
		if db2.Dialect() == DialectSQLite {
			var mode string
			if err := db2.queryRow(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
			}
		}
	})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		if _, err := db.exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, 999, "0999_future.sql"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err := Open(ctx, dsn)
		if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
			t.Fatalf("open of a newer schema: %v", err)
		}
	})
}

// TestConcurrentOpensMigrateOnce starts several replicas on one empty
// database at once: one migrates, the others wait and find it done.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var dsn string
			if b.name == DialectPostgres {
				dsn = storetest.Postgres(t)
			} else {
				dsn = filepath.Join(t.TempDir(), "x.db")
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() {
					db, err := Open(ctx, dsn)
					if err == nil {
						db.Close()
					}
					errs[i] = err
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			db := openAgain(t, dsn)
			migs, err := loadMigrations(b.name)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migs) {
				t.Fatalf("%d migrations recorded, %v; want %d", n, err, len(migs))
			}
		})
	}
}

// TestMigrationDialectsMatch: both dialects have the same versions, so a
// schema version means one schema.
func TestMigrationDialectsMatch(t *testing.T) {
	names := map[string][]string{}
	for _, d := range []string{DialectSQLite, DialectPostgres} {
		migs, err := loadMigrations(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range migs {
			names[d] = append(names[d], m.name)
		}
	}
	if !slices.Equal(names[DialectSQLite], names[DialectPostgres]) || len(names[DialectSQLite]) == 0 {
		t.Fatalf("sqlite migrations %v, postgres %v", names[DialectSQLite], names[DialectPostgres])
	}
	if _, err := fs.Stat(migrationFS, "migrations/0001_init.sql"); err == nil {
		t.Fatal("a migration outside a dialect directory")
	}
}

func TestRebind(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"none", `SELECT 1`, `SELECT 1`},
		{"several", `SELECT a FROM t WHERE b = ? AND c IN (?, ?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`},
		{"in a literal", `SELECT '?', ? FROM t WHERE x LIKE ? ESCAPE '\'`, `SELECT '?', $1 FROM t WHERE x LIKE $2 ESCAPE '\'`},
		{"doubled quote", `SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{"quoted identifier", `SELECT "a?b" FROM t WHERE c = ?`, `SELECT "a?b" FROM t WHERE c = $1`},
		{"more than nine", strings.Repeat("?,", 10) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := rebind(c.in); got != c.want {
				t.Fatalf("rebind(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
	var b binder
	q := `SELECT ? + ?`
	if b.bind(q) != "SELECT $1 + $2" || b.bind(q) != "SELECT $1 + $2" || b.n.Load() != 1 {
		t.Fatalf("cache: %d entries", b.n.Load())
	}
}

func TestOpenPicksBackend(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		isPG bool
	}{
		{"postgres://u@h/db", true},
		{"postgresql://u@h/db", true},
		{"POSTGRES://u@h/db", true},
		{"/var/lib/xroute/xroute.db", false},
		{"xroute.db", false},
		{"postgres.db", false},
	} {
		if got := isPostgresURL(c.dsn); got != c.isPG {
			t.Errorf("isPostgresURL(%q) = %v", c.dsn, got)
		}
	}
	db, _ := openSQLiteTest(t)
	if db.Dialect() != DialectSQLite {
		t.Fatalf("dialect %q", db.Dialect())
	}
}

// TestOpenPostgresHidesPassword: whatever fails, the error names the
// server but never the password.
func TestOpenPostgresHidesPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct{ name, url, secret string }{
		{"refused", "postgres://xr:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "s3cr3t-pw"},
		{"query parameter", "postgres://xr@127.0.0.1:1/db?sslmode=disable&password=qp-s3cr3t&connect_timeout=2", "qp-s3cr3t"},
		{"bad parameter", "postgres://xr:s3cr3t-pw@127.0.0.1:1/db?sslmode=bogus", "s3cr3t-pw"},
		{"escaped", "postgres://xr:p%40ss%2Fw0rd@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "p@ss/w0rd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenPostgres(ctx, c.url)
			if err == nil {
				t.Fatal("open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, c.secret) || strings.Contains(msg, "p%40ss") {
				t.Fatalf("error reveals the password: %s", msg)
			}
			if !strings.Contains(msg, "127.0.0.1:1") {
				t.Fatalf("error does not name the server: %s", msg)
			}
		})
	}
	if got := redactURL("postgres://u:pw@h:5432/db?password=pw2&sslmode=disable"); strings.Contains(got, "pw@") || strings.Contains(got, "pw2") {
		t.Fatalf("redactURL = %s", got)
	}
}

func TestKeysRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		exp := now.Add(time.Hour)
		k := keys.Record{ID: "key_1", Name: "ci", Hash: "abc", PepperVersion: 1, Hint: "xr-ab…yz", AllowedModels: []string{"gpt-*"}, CreatedAt: now, ExpiresAt: &exp}
		if err := db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateKey(ctx, k); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate: want ErrConflict, got %v", err)
		}
		got, err := db.KeyByHash(ctx, "abc")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != k.ID || got.AllowedModels[0] != "gpt-*" || !got.CreatedAt.Equal(now) || !got.ExpiresAt.Equal(exp) || got.RevokedAt != nil {
			t.Fatalf("round trip: %+v", got)
		}
		if _, err := db.KeyByHash(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: want ErrNotFound, got %v", err)
		}
		if changed, err := db.RevokeKey(ctx, "key_1", now); err != nil || !changed {
			t.Fatalf("revoke: changed %v, %v", changed, err)
		}
		if changed, err := db.RevokeKey(ctx, "key_1", now.Add(time.Hour)); err != nil || changed {
			t.Fatalf("revoke again: want no change, got changed %v, %v", changed, err)
		}
		if _, err := db.RevokeKey(ctx, "key_x", now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke missing: %v", err)
		}
		got, _ = db.KeyByID(ctx, "key_1")
		if got.RevokedAt == nil {
			t.Fatal("revoked_at not set")
		}
		list, err := db.ListKeys(ctx, keys.KeyFilter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("list: %v %v", list, err)
		}
	})
}

func TestKeyLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
		for i := range 5 {
			k := keys.Record{ID: fmt.Sprintf("key_%d", i), Name: "k", Hash: fmt.Sprint("h", i), Hint: "x", CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if i%2 == 1 {
				k.AccountID, k.Kind = "acct_b", "admin"
			}
			if err := db.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(f keys.KeyFilter) string {
			t.Helper()
			ks, err := db.ListKeys(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range ks {
				out = append(out, k.ID)
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			name string
			f    keys.KeyFilter
			want string
		}{
			{"all, newest first", keys.KeyFilter{}, "key_4,key_3,key_2,key_1,key_0"},
			{"account", keys.KeyFilter{AccountID: "acct_b"}, "key_3,key_1"},
			{"kind", keys.KeyFilter{Kind: "caller"}, "key_4,key_2,key_0"},
			{"page", keys.KeyFilter{After: "key_3", Limit: 2}, "key_2,key_1"},
		} {
			if got := ids(c.f); got != c.want {
				t.Errorf("%s: %s, want %s", c.name, got, c.want)
			}
		}
		// Rotation overlap: the earlier expiry wins.
		if err := db.ExpireKeyBy(ctx, "key_0", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.ExpireKeyBy(ctx, "key_0", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if k, _ := db.KeyByID(ctx, "key_0"); k.ExpiresAt == nil || !k.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("expires_at = %v", k.ExpiresAt)
		}
		if err := db.ExpireKeyBy(ctx, "key_0", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if k, _ := db.KeyByID(ctx, "key_0"); !k.ExpiresAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("expires_at = %v", k.ExpiresAt)
		}
		if _, err := db.SuspendKey(ctx, "key_2", t0, "abuse"); err != nil {
			t.Fatal(err)
		}
		if changed, err := db.SuspendKey(ctx, "key_2", t0, "again"); err != nil || changed {
			t.Fatalf("suspend again: want no change, got changed %v, %v", changed, err)
		}
		if k, _ := db.KeyByID(ctx, "key_2"); k.SuspendedAt == nil || k.SuspendReason != "abuse" {
			t.Fatalf("suspended: %+v", k)
		}
		if _, err := db.ResumeKey(ctx, "key_2"); err != nil {
			t.Fatal(err)
		}
		if changed, err := db.ResumeKey(ctx, "key_2"); err != nil || changed {
			t.Fatalf("resume an active key: want no change, got changed %v, %v", changed, err)
		}
		if err := db.RehashKey(ctx, "key_2", "h2b", 2); err != nil {
			t.Fatal(err)
		}
		if k, err := db.KeyByHash(ctx, "h2b"); err != nil || k.SuspendedAt != nil || k.PepperVersion != 2 {
			t.Fatalf("after resume and rehash: %+v, %v", k, err)
		}
	})
}

func TestAccounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		def, err := db.AccountByID(ctx, keys.DefaultAccountID)
		if err != nil || def.Name != "default" || def.CreatedAt.Before(time.Now().Add(-time.Hour)) || def.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Fatalf("default account: %+v, %v", def, err)
		}
		for _, id := range []string{"acct_b", "acct_B", "acct_a"} {
			if err := db.CreateAccount(ctx, keys.Account{ID: id, Name: "n" + id, Metadata: map[string]string{"team": id}, CreatedAt: time.UnixMilli(1)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateAccount(ctx, keys.Account{ID: "acct_c", Name: "nacct_a"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate name: %v", err)
		}
		all, err := db.ListAccounts(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range all {
			ids = append(ids, a.ID)
		}
		// Bytewise order on both backends: upper case first.
		if got := strings.Join(ids, ","); got != "acct_B,acct_a,acct_b,acct_default" {
			t.Fatalf("accounts %s", got)
		}
		page, err := db.ListAccounts(ctx, "acct_a", 1)
		if err != nil || len(page) != 1 || page[0].ID != "acct_b" || page[0].Metadata["team"] != "acct_b" {
			t.Fatalf("page: %+v, %v", page, err)
		}
		if _, err := db.AccountByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
	})
}

func TestInsertUsageSkipsReplayedRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now()
		batch := []books.UsageRecord{
			{RequestID: "r1", KeyID: "k", Model: "m", Provider: "p", Stream: true, Estimated: true, PromptTokens: 10, CompletionTokens: 5, Latency: 1500 * time.Microsecond, Status: 200, Attempts: 1, CreatedAt: now},
			{RequestID: "r2", KeyID: "k", Model: "m", Status: 502, ErrorCode: "upstream_error", CreatedAt: now},
		}
		if err := db.InsertUsage(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertUsage(ctx, batch); err != nil { // a retried batch
			t.Fatal(err)
		}
		recs, err := db.ListUsage(ctx, books.UsageFilter{KeyID: "k"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 {
			t.Fatalf("want 2 records after replay, got %d", len(recs))
		}
		r1, _ := db.ListUsage(ctx, books.UsageFilter{RequestID: "r1"})
		if r1[0].PromptTokens != 10 || r1[0].Latency != 1500*time.Microsecond || r1[0].Attempts != 1 || !r1[0].Stream || !r1[0].Estimated {
			t.Fatalf("round trip: %+v", r1[0])
		}
		if page, err := db.ListUsage(ctx, books.UsageFilter{Since: now.Add(-time.Second), Limit: 1}); err != nil || len(page) != 1 || page[0].RequestID != "r2" {
			t.Fatalf("limit: %+v, %v", page, err)
		}
	})
}
