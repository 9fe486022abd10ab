package store

// The usage writer's statements. Its multi-row INSERTs (a batch's records,
// 32 a statement, and their debits, 64) were prepared anew in every
// transaction: on SQLite the parse of a statement of 800 parameters was
// about a quarter of the writer's CPU (a profile at 500 paid requests/s).
// On SQLite they are now prepared once, for each power of two up to the
// rows a statement carries, and a batch goes in as pieces of those sizes
// (31 rows: 16, 8, 4, 2, 1): a few more statements for a remainder, each
// far cheaper than a parse, and a bounded set of programs per connection.
// PostgreSQL keeps preparing them per transaction: a statement that
// outlives its transaction breaks behind PgBouncer in transaction pooling
// (default_query_exec_mode=exec), and pgx's own cache serves the default
// mode.

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
)

// hotStmts holds the statements prepared once, by rows carried: index k
// is the statement of 1<<k rows. Nil on PostgreSQL.
type hotStmts struct {
	usage, debits []*sql.Stmt
}

// prepareHot prepares the writer's statements on SQLite. It runs once,
// after the migrations and before the DB is handed out: preparing on the
// DB takes a connection of its own, which a writer inside its transaction
// must never wait for (the pool's other connections may be waiting on its
// write lock). Each transaction binds them to its connection
// (Tx.StmtContext), which prepares them there once per connection.
func (s *DB) prepareHot(ctx context.Context) error {
	prep := func(rows int, q func(int) string) ([]*sql.Stmt, error) {
		sts := make([]*sql.Stmt, bits.Len(uint(rows)))
		for k := range sts {
			st, err := s.db.PrepareContext(ctx, q(1<<k))
			if err != nil {
				return nil, err
			}
			sts[k] = st
		}
		return sts, nil
	}
	var err error
	if s.hot.usage, err = prep(usageRowsPerInsert, insertUsageSQL); err != nil {
		return fmt.Errorf("prepare usage insert: %w", err)
	}
	if s.hot.debits, err = prep(debitRowsPerInsert, insertDebitsSQL); err != nil {
		return fmt.Errorf("prepare debit insert: %w", err)
	}
	return nil
}

// piece is how many of n rows (n > 0) the next statement carries: the
// largest power of two not above n or most.
func piece(n, most int) int {
	return 1 << (bits.Len(uint(min(n, most))) - 1)
}

// txStmts hands out one transaction's statements of a multi-row INSERT
// by rows carried (powers of two, see piece), each prepared or bound
// once in the transaction; close closes them before it ends.
type txStmts struct {
	s    *DB
	tx   *sql.Tx
	hot  []*sql.Stmt      // prepared once (SQLite), else nil
	text func(int) string // the statement of n rows
	open [8]*sql.Stmt     // by log2 of the rows: up to 128 (the most is 64)
}

func (t *txStmts) get(ctx context.Context, n int) (*sql.Stmt, error) {
	k := bits.Len(uint(n)) - 1
	if t.open[k] != nil {
		return t.open[k], nil
	}
	var st *sql.Stmt
	if t.hot != nil {
		st = t.tx.StmtContext(ctx, t.hot[k])
	} else {
		var err error
		if st, err = t.s.txPrepare(ctx, t.tx, t.text(n)); err != nil {
			return nil, err
		}
	}
	t.open[k] = st
	return st, nil
}

// close closes the transaction's statements; those prepared once stay
// prepared on the connection, for the next transaction.
func (t *txStmts) close() {
	for _, st := range t.open {
		if st != nil {
			st.Close()
		}
	}
}
