package store

// Usage debits written many per statement. A usage batch carries one
// debit per paid request; one INSERT each put a statement (the driver's
// call, SQLite's program start, PostgreSQL's round trip) on every paid
// request. The chain makes batching them a little subtle: each entry's MAC
// covers the MAC of the entry before it, so the MACs are computed before
// anyone knows which debits are new.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/xroute/xroute/billing/books"
)

// debitRowsPerInsert is how many debits one INSERT carries (8 parameters
// each: far below SQLite's and PostgreSQL's limits).
const debitRowsPerInsert = 64

const debitRow = `(?, 'usage', ?, ?, ?, ?, 'system', ?, ?, ?)`

// insertDebitsSQL is the INSERT of n usage debits; RETURNING names the
// ones that went in.
func insertDebitsSQL(n int) string {
	return `INSERT INTO ledger_entries (account_id, kind, amount_nano, idempotency_key, request_id, key_id, actor, created_at, key_term, mac) VALUES ` +
		strings.TrimSuffix(strings.Repeat(debitRow+", ", n), ", ") +
		` ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING idempotency_key`
}

// debitWriter writes the usage debits of one transaction; close closes
// its statements.
type debitWriter struct {
	s     *DB
	tx    *sql.Tx
	stmts txStmts
	args  []any
}

func newDebitWriter(s *DB, tx *sql.Tx) *debitWriter {
	return &debitWriter{s: s, tx: tx, stmts: txStmts{s: s, tx: tx, hot: s.hot.debits, text: insertDebitsSQL}}
}

func (w *debitWriter) close() { w.stmts.close() }

// usageEntry is the ledger entry of debit d on account id, not yet chained.
func usageEntry(id string, d books.UsageDebit) books.LedgerEntry {
	when := d.At
	if when.IsZero() {
		when = time.Now()
	}
	return books.LedgerEntry{AccountID: id, Kind: books.LedgerUsage, Amount: -d.Amount, IdempotencyKey: books.UsageIdempotencyPrefix + d.RequestID,
		RequestID: d.RequestID, KeyID: d.KeyID, Actor: "system", CreatedAt: time.UnixMilli(when.UnixMilli())}
}

// write inserts the debits ds (one account's, in request-id order) after
// the head h, which it advances past those it inserts; it reports whether
// any was. The usage writer's debits are new (their records were just
// stored), so write chains them all and inserts them many per statement
// inside a savepoint. If RETURNING shows one was already in (a debit
// replayed through DebitUsage), the MACs chained past it are wrong: the
// savepoint is rolled back and the debits go in one at a time, each
// chained to the last one inserted.
func (w *debitWriter) write(ctx context.Context, h *accountHead, ds []books.UsageDebit) (bool, error) {
	if len(ds) > 1 {
		ok, err := w.writeAll(ctx, h, ds)
		if err != nil || ok {
			return ok, err
		}
	}
	changed := false
	for _, d := range ds {
		e := usageEntry(h.id, d)
		if err := w.s.chain(h, &e); err != nil {
			return changed, err
		}
		st, err := w.stmts.get(ctx, 1)
		if err != nil {
			return changed, fmt.Errorf("usage debit %s: %w", d.RequestID, err)
		}
		n, err := w.exec(ctx, st, []books.LedgerEntry{e})
		if err != nil {
			return changed, fmt.Errorf("usage debit %s: %w", d.RequestID, err)
		}
		if n == 1 {
			h.advance(e)
			changed = true
		}
	}
	return changed, nil
}

// writeAll is write's batched attempt: true when every debit went in.
func (w *debitWriter) writeAll(ctx context.Context, h *accountHead, ds []books.UsageDebit) (bool, error) {
	const sp = "usage_debits"
	if _, err := w.tx.ExecContext(ctx, "SAVEPOINT "+sp); err != nil {
		return false, fmt.Errorf("usage debits: %w", err)
	}
	next := *h
	es := make([]books.LedgerEntry, len(ds))
	for i, d := range ds {
		es[i] = usageEntry(h.id, d)
		if err := w.s.chain(&next, &es[i]); err != nil {
			return false, err
		}
		next.advance(es[i])
	}
	in := 0
	for start := 0; start < len(es); {
		part := es[start : start+piece(len(es)-start, debitRowsPerInsert)]
		start += len(part)
		st, err := w.stmts.get(ctx, len(part))
		if err != nil {
			return false, fmt.Errorf("usage debits: %w", err)
		}
		n, err := w.exec(ctx, st, part)
		if err != nil {
			return false, fmt.Errorf("usage debit %s…: %w", part[0].RequestID, err)
		}
		in += n
	}
	if in != len(es) {
		if _, err := w.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
			return false, fmt.Errorf("usage debits: %w", err)
		}
	}
	if _, err := w.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+sp); err != nil {
		return false, fmt.Errorf("usage debits: %w", err)
	}
	if in != len(es) {
		return false, nil
	}
	*h = next
	return true, nil
}

// exec runs st over es and returns how many rows went in.
func (w *debitWriter) exec(ctx context.Context, st *sql.Stmt, es []books.LedgerEntry) (int, error) {
	w.args = w.args[:0]
	for _, e := range es {
		w.args = append(w.args, e.AccountID, e.Amount, e.IdempotencyKey, e.RequestID, e.KeyID, e.CreatedAt.UnixMilli(), int64(e.KeyTerm), e.MAC)
	}
	rows, err := st.QueryContext(ctx, w.args...)
	if err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Close(); err != nil {
		return n, err
	}
	return n, rows.Err()
}
