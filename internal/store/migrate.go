package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Each dialect has its own directory of migrations. The two hold the same
// versions with the same meaning (a test checks the versions match), so a
// schema version names one schema whatever the backend.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(dialect string) ([]migration, error) {
	dir := "migrations/" + dialect
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", e.Name())
		}
		body, err := fs.ReadFile(migrationFS, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

var schemaMigrationsDDL = map[string]string{
	DialectSQLite:   `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL DEFAULT (unixepoch()))`,
	DialectPostgres: `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL DEFAULT (CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)))`,
}

// Advisory lock ids (the second key; the first is the schema's lockNS).
const (
	lockMigrate int32 = 0x78720001 // "xr" 1: migrations
	lockAudit   int32 = 0x78720002 // "xr" 2: the audit chain's tail
)

// schemaLockNS derives the first advisory-lock key from the schema name.
func schemaLockNS(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema))
	return int32(h.Sum32())
}

// migrate applies, each in its own transaction, every migration newer than
// the recorded version. A database newer than the binary is refused. On
// PostgreSQL, replicas starting together queue on an advisory lock, so one
// migrates and the others find the work done.
func (s *DB) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if s.isPostgres() {
		var schema sql.NullString
		if err := conn.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return fmt.Errorf("current schema: %w", err)
		}
		if !schema.Valid {
			return errors.New("no schema selected: search_path names no existing schema")
		}
		s.lockNS = schemaLockNS(schema.String)
		// Replicas that start together wait here for the one migrating,
		// longer than the pool's lock_timeout allows.
		if _, err := conn.ExecContext(ctx, `SET lock_timeout = 0`); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `RESET lock_timeout`)
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, $2)`, s.lockNS, lockMigrate); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, $2)`, s.lockNS, lockMigrate); err != nil {
				// A session lock lives as long as its connection: close
				// this one rather than pool it still holding the lock.
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	return s.applyMigrations(ctx, conn)
}

func (s *DB) applyMigrations(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, schemaMigrationsDDL[s.dialect]); err != nil {
		return err
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	migs, err := loadMigrations(s.dialect)
	if err != nil {
		return err
	}
	if n := len(migs); n > 0 && current > migs[n-1].version {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", current, migs[n-1].version)
	}
	// Every migration not yet recorded runs, in version order, not only
	// those above the highest recorded: a migration that lands after a
	// higher one was applied (two branches merged in either order) still
	// runs.
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range migs {
		if applied[m.version] {
			continue
		}
		if err := runTx(ctx, conn, func(tx *sql.Tx) error {
			// Another process may have applied it since we looked (SQLite
			// has no lock around the whole run; the transaction's write
			// lock makes this check and the migration one step).
			var done int
			if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil || done > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := s.txExec(ctx, tx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name)
			return err
		}); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion reports the applied migration version.
func (s *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
