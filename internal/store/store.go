// Package store persists keys, usage records, credits and the audit log.
// Two backends share one type and one set of methods: SQLite through a
// pure-Go driver (no cgo), in WAL mode, the embedded default for a single
// replica; and PostgreSQL, the shared state of several replicas. Each has
// its own migrations, compiled into the binary and applied at open, with
// the same version numbers and the same semantics.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/xroute/xroute/internal/dberr"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotFound is returned when a row does not exist (dberr.ErrNotFound).
var ErrNotFound = dberr.ErrNotFound

// ErrConflict is returned when a unique constraint would be violated
// (dberr.ErrConflict).
var ErrConflict = dberr.ErrConflict

// Dialects, as Dialect reports them.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// DB is the store. Its methods are safe for concurrent use, and on
// PostgreSQL also across processes sharing the database.
type DB struct {
	db      *sql.DB
	dialect string
	binder  binder
	// lockNS namespaces PostgreSQL advisory locks by schema, so two
	// deployments in one database (or two tests) never wait on each other.
	lockNS int32
	// ledgerKeys authenticate ledger entries and account heads (nil:
	// unkeyed; see KeyLedger).
	ledgerKeys MACKeys
	// hot: the usage writer's statements, prepared once (hotstmt.go).
	hot hotStmts
}

// Open opens the database dsn names: PostgreSQL for a postgres:// or
// postgresql:// URL, else the SQLite file at path dsn.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if isPostgresURL(dsn) {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

func isPostgresURL(dsn string) bool {
	scheme, _, ok := strings.Cut(dsn, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates it to the current schema. The file is created 0600, and an
// existing one readable by others is made 0600, before anything is
// written: SQLite creates the WAL and shared-memory files with the
// database file's mode, so they follow.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate") // writers queue on BEGIN instead of failing on upgrade
	sqlDB, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// SQLite has one writer; a small pool serves concurrent WAL readers.
	sqlDB.SetMaxOpenConns(4)
	sqlDB.SetMaxIdleConns(4)
	if err := pingSQLite(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := &DB{db: sqlDB, dialect: DialectSQLite}
	if err := s.migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", path, err)
	}
	if err := s.prepareHot(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// pingSQLite opens the first connection. On a new database that
// connection switches the file to WAL, which needs it to itself, and
// SQLite answers SQLITE_BUSY at once, without its busy handler, while
// another process opening it at the same moment (replicas starting
// together) holds it. So a busy ping is retried, for as long as the busy
// timeout would have waited.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// ownerOnly creates the database file at path with mode 0600 when it does
// not exist, and takes group and other permissions away from it and its
// -wal and -shm files when it does. The database holds key hashes, sealed
// provider keys, balances and the audit log: no other local user may read
// it, whatever the umask.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// Dialect reports the backend: DialectSQLite or DialectPostgres.
func (s *DB) Dialect() string { return s.dialect }

// Shared reports whether other replicas may use this store at the same
// time (PostgreSQL; an SQLite file belongs to one process). Callers then
// keep what several replicas change (holds, spend, settings) in the store
// and re-read it, instead of trusting their own memory.
func (s *DB) Shared() bool { return s.dialect == DialectPostgres }

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

// Ping checks the database answers (used by /healthz).
func (s *DB) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *DB) isPostgres() bool { return s.dialect == DialectPostgres }

// forUpdate is the row-lock suffix of a SELECT. SQLite has no row locks
// and needs none: a write transaction holds the database's one write lock
// from BEGIN (_txlock=immediate).
func (s *DB) forUpdate() string {
	if s.isPostgres() {
		return " FOR UPDATE"
	}
	return ""
}

// txBeginner is what runs a transaction: the pool, or one connection.
type txBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

func (s *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return runTx(ctx, s.db, fn)
}

func runTx(ctx context.Context, b txBeginner, fn func(*sql.Tx) error) error {
	tx, err := b.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUniqueViolation tells a duplicate key (primary key or unique index)
// from other failures, on either backend.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505" // unique_violation
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// b2i stores a flag as 0 or 1: the columns are integers on both backends,
// and PostgreSQL will not encode a Go bool into a BIGINT.
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
