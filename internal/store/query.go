package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Every statement is written once, with SQLite's ? placeholders, and goes
// through these helpers, which give PostgreSQL its $1..$n form. No call
// site talks to database/sql directly, so none can forget.

func (s *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.bind(q), args...)
}

func (s *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.bind(q), args...)
}

func (s *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.bind(q), args...)
}

func (s *DB) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	return tx.ExecContext(ctx, s.bind(q), args...)
}

func (s *DB) txQuery(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	return tx.QueryContext(ctx, s.bind(q), args...)
}

func (s *DB) txQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	return tx.QueryRowContext(ctx, s.bind(q), args...)
}

// txPrepare prepares a statement that a transaction runs many times. (The
// PostgreSQL driver's Prepare is free: pgx caches prepared statements per
// connection by itself.)
func (s *DB) txPrepare(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	return tx.PrepareContext(ctx, s.bind(q))
}

// bind returns q in the backend's placeholder form.
func (s *DB) bind(q string) string {
	if !s.isPostgres() {
		return q
	}
	return s.binder.bind(q)
}

// maxBound caps the cache of rebound statements. The statements are
// constants or built from a few optional filters, so a few hundred
// variants exist; the cap only guards against a future caller building SQL
// from unbounded input (such a statement is then rebound on every call).
const maxBound = 4096

// binder caches rebound statements, so the hot path does not scan each
// statement on every call.
type binder struct {
	cache sync.Map // string -> string
	n     atomic.Int64
}

func (b *binder) bind(q string) string {
	if v, ok := b.cache.Load(q); ok {
		return v.(string)
	}
	r := rebind(q)
	if b.n.Load() < maxBound {
		if _, loaded := b.cache.LoadOrStore(q, r); !loaded {
			b.n.Add(1)
		}
	}
	return r
}

// rebind numbers q's ? placeholders $1, $2, ... in order, leaving any ?
// inside a single-quoted string literal or a double-quoted identifier
// alone. (A doubled quote inside a literal closes and reopens it, which
// leaves the state right.)
func rebind(q string) string {
	if strings.IndexByte(q, '?') < 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte // the open quote character, 0 outside quotes
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
