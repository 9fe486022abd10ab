package store

// The credits ledger and budgets (migration 0005). Amounts are signed
// nano-USD. Every balance change is a ledger row written in the same
// transaction as the cached accounts.balance_nano it moves.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"math"
	"slices"
	"strings"
	"time"
)

const ledgerColumns = `id, account_id, kind, amount_nano, reference, idempotency_key, request_id, key_id, actor, created_at, key_term, mac`

func scanLedger(sc scanner) (books.LedgerEntry, error) {
	var e books.LedgerEntry
	var created, term int64
	err := sc.Scan(&e.ID, &e.AccountID, &e.Kind, &e.Amount, &e.Reference, &e.IdempotencyKey, &e.RequestID, &e.KeyID, &e.Actor, &created, &term, &e.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		return books.LedgerEntry{}, ErrNotFound
	}
	if err != nil {
		return books.LedgerEntry{}, fmt.Errorf("scan ledger entry: %w", err)
	}
	e.CreatedAt = time.UnixMilli(created).UTC()
	e.KeyTerm = clampTerm(term)
	return e, nil
}

// PostLedgerEntry appends e (ID is assigned) and moves the account's
// balance by e.Amount, in one transaction. When the account already has an
// entry with e.IdempotencyKey, nothing changes: the stored entry is
// returned with replayed true if it has the same kind and amount, else
// ErrIdempotencyConflict. ErrNotFound if the account does not exist.
// Concurrent posts, from several processes too, settle the same way: one
// entry per key, and every balance change counted once.
func (s *DB) PostLedgerEntry(ctx context.Context, e books.LedgerEntry) (out books.LedgerEntry, replayed bool, err error) {
	if e.IdempotencyKey == "" {
		return books.LedgerEntry{}, false, fmt.Errorf("post ledger entry: empty idempotency key")
	}
	e.CreatedAt = time.UnixMilli(e.CreatedAt.UnixMilli()).UTC()
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		replay := func(prev books.LedgerEntry) error {
			if prev.Kind != e.Kind || prev.Amount != e.Amount {
				return fmt.Errorf("idempotency key %q was used for %s %d: %w", e.IdempotencyKey, prev.Kind, prev.Amount, books.ErrIdempotencyConflict)
			}
			out, replayed = prev, true
			return nil
		}
		prev, err := s.ledgerEntryByKey(ctx, tx, e.AccountID, e.IdempotencyKey)
		switch {
		case err == nil:
			return replay(prev)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		// On PostgreSQL the row lock queues concurrent posts to the
		// account until this transaction ends (SQLite's one write lock,
		// taken at BEGIN, already does).
		h, err := s.lockAccountHead(ctx, tx, e.AccountID)
		if err != nil {
			return err
		}
		if !h.exists {
			return fmt.Errorf("account %s: %w", e.AccountID, ErrNotFound)
		}
		if bal := h.balance; (e.Amount > 0 && bal > math.MaxInt64-e.Amount) || (e.Amount < 0 && bal < math.MinInt64-e.Amount) {
			return fmt.Errorf("balance of %s would overflow", e.AccountID)
		}
		if err := s.chain(&h, &e); err != nil {
			return err
		}
		err = s.txQueryRow(ctx, tx, `INSERT INTO ledger_entries (account_id, kind, amount_nano, reference, idempotency_key, request_id, key_id, actor, created_at, key_term, mac)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING id`,
			e.AccountID, e.Kind, e.Amount, e.Reference, e.IdempotencyKey, e.RequestID, e.KeyID, e.Actor, e.CreatedAt.UnixMilli(), int64(e.KeyTerm), e.MAC).Scan(&e.ID)
		if errors.Is(err, sql.ErrNoRows) {
			// An entry with this key committed since the lookup (the
			// conflict waited for it): it wins, and this statement's
			// fresh snapshot sees it.
			prev, err := s.ledgerEntryByKey(ctx, tx, e.AccountID, e.IdempotencyKey)
			if err != nil {
				return err
			}
			return replay(prev)
		}
		if err != nil {
			return err
		}
		h.advance(e)
		if err := s.saveAccountHead(ctx, tx, h, 0); err != nil {
			return err
		}
		out = e
		return nil
	})
	if err != nil {
		return books.LedgerEntry{}, false, fmt.Errorf("post %s to %s: %w", e.Kind, e.AccountID, err)
	}
	return out, replayed, nil
}

func (s *DB) ledgerEntryByKey(ctx context.Context, tx *sql.Tx, accountID, key string) (books.LedgerEntry, error) {
	return scanLedger(s.txQueryRow(ctx, tx, `SELECT `+ledgerColumns+` FROM ledger_entries WHERE account_id = ? AND idempotency_key = ?`, accountID, key))
}

// AccountCredit reads an account's balance and multiplier (one statement,
// so Balance and LastEntryID agree). ErrNotFound if there is no account.
func (s *DB) AccountCredit(ctx context.Context, accountID string) (books.AccountCredit, error) {
	c := books.AccountCredit{AccountID: accountID}
	err := s.queryRow(ctx, `SELECT balance_nano, multiplier_bp, COALESCE((SELECT MAX(id) FROM ledger_entries WHERE account_id = accounts.id), 0) FROM accounts WHERE id = ?`, accountID).
		Scan(&c.Balance, &c.MultiplierBP, &c.LastEntryID)
	if errors.Is(err, sql.ErrNoRows) {
		return books.AccountCredit{}, fmt.Errorf("account %s: %w", accountID, ErrNotFound)
	}
	if err != nil {
		return books.AccountCredit{}, fmt.Errorf("account %s credit: %w", accountID, err)
	}
	return c, nil
}

// SetAccountMultiplier sets an account's price multiplier (basis points).
func (s *DB) SetAccountMultiplier(ctx context.Context, accountID string, bp int) error {
	if bp <= 0 {
		return fmt.Errorf("account %s: multiplier must be positive, got %d bp", accountID, bp)
	}
	res, err := s.exec(ctx, `UPDATE accounts SET multiplier_bp = ? WHERE id = ?`, bp, accountID)
	if err != nil {
		return fmt.Errorf("account %s multiplier: %w", accountID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("account %s: %w", accountID, ErrNotFound)
	}
	return nil
}

// ListLedgerEntries pages through an account's entries, newest first:
// pass the smallest ID of the previous page as beforeID (0 for the first
// page). limit defaults to 100 and is at most 1000.
func (s *DB) ListLedgerEntries(ctx context.Context, accountID string, limit int, beforeID int64) ([]books.LedgerEntry, error) {
	return s.FindLedgerEntries(ctx, accountID, books.LedgerFilter{Limit: limit, BeforeID: beforeID})
}

// FindLedgerEntries is ListLedgerEntries with filters: newest first,
// never more than 1000 rows, so no caller reads a ledger unbounded.
func (s *DB) FindLedgerEntries(ctx context.Context, accountID string, f books.LedgerFilter) ([]books.LedgerEntry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	beforeID := f.BeforeID
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	where, args := []string{"account_id = ?", "id < ?"}, []any{accountID, beforeID}
	if f.KeyID != "" {
		where, args = append(where, "key_id = ?"), append(args, f.KeyID)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if !f.From.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, f.To.UnixMilli())
	}
	rows, err := s.query(ctx, `SELECT `+ledgerColumns+` FROM ledger_entries WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list ledger %s: %w", accountID, err)
	}
	defer rows.Close()
	var out []books.LedgerEntry
	for rows.Next() {
		e, err := scanLedger(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// VerifyBalances recomputes every balance from the ledger in one statement
// (one consistent snapshot) and returns the accounts that disagree.
// (Sums are cast back to BIGINT: PostgreSQL sums BIGINTs as NUMERIC.)
func (s *DB) VerifyBalances(ctx context.Context) ([]books.BalanceMismatch, error) {
	rows, err := s.query(ctx, `
SELECT a.id, a.balance_nano, COALESCE(e.total, 0), 0
  FROM accounts a LEFT JOIN (SELECT account_id, CAST(SUM(amount_nano) AS BIGINT) AS total FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
 WHERE a.balance_nano <> COALESCE(e.total, 0)
UNION ALL
SELECT l.account_id, 0, CAST(SUM(l.amount_nano) AS BIGINT), 1
  FROM ledger_entries l
 WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = l.account_id)
 GROUP BY l.account_id
ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("verify balances: %w", err)
	}
	defer rows.Close()
	var out []books.BalanceMismatch
	for rows.Next() {
		var m books.BalanceMismatch
		if err := rows.Scan(&m.AccountID, &m.Cached, &m.Computed, &m.AccountMissing); err != nil {
			return nil, fmt.Errorf("verify balances: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ApplyUsageDebits writes, inside the caller's transaction tx, one usage
// entry per debit (idempotency key "usage:" + RequestID, so a retried
// batch never debits a request twice) and moves each account's cached
// balance by the debits actually inserted. Call it from the transaction
// that stores the usage records, so records and debits commit together.
// Debits without an AccountID (unauthenticated requests) are skipped; a
// debit without a RequestID or with a negative Amount is an error.
// A zero Amount still writes an entry, so usage records and usage entries
// reconcile one to one.
func (s *DB) ApplyUsageDebits(ctx context.Context, tx *sql.Tx, debits []books.UsageDebit) error {
	return s.applyUsage(ctx, tx, debits, nil)
}

// applyUsage is ApplyUsageDebits that also releases the credit holds
// holdIDs, with one update per account for both. Lock order (see
// holds.go): the holds first, then the accounts in id order, each locked
// before its entries are chained and inserted.
func (s *DB) applyUsage(ctx context.Context, tx *sql.Tx, debits []books.UsageDebit, holdIDs []string) error {
	byAccount := map[string][]books.UsageDebit{}
	for _, d := range debits {
		if d.AccountID == "" {
			continue
		}
		if d.RequestID == "" || d.Amount < 0 {
			return fmt.Errorf("usage debit for %s: need a request id and a non-negative amount (got %q, %d)", d.AccountID, d.RequestID, d.Amount)
		}
		byAccount[d.AccountID] = append(byAccount[d.AccountID], d)
	}
	released := map[string]int64{}
	if len(holdIDs) > 0 {
		rel, err := s.deleteHolds(ctx, tx, holdIDs)
		if err != nil {
			return fmt.Errorf("release holds: %w", err)
		}
		for id, h := range rel {
			released[id] += h.amount
		}
	}
	// Accounts in a fixed order: transactions touching several accounts
	// take their row locks in one order, so they cannot deadlock.
	ids := make([]string, 0, len(byAccount)+len(released))
	for id := range byAccount {
		ids = append(ids, id)
	}
	for id, amount := range released {
		if _, ok := byAccount[id]; !ok && amount != 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	w := newDebitWriter(s, tx)
	defer w.close()
	for _, id := range ids {
		h, err := s.lockAccountHead(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("usage debits: %w", err)
		}
		ds := byAccount[id]
		slices.SortStableFunc(ds, func(a, b books.UsageDebit) int { return strings.Compare(a.RequestID, b.RequestID) })
		inserted, err := w.write(ctx, &h, ds)
		if err != nil {
			return err
		}
		if h.exists && (inserted || released[id] != 0) {
			if err := s.saveAccountHead(ctx, tx, h, released[id]); err != nil {
				return fmt.Errorf("usage debits: %w", err)
			}
		}
	}
	return nil
}

// DebitUsage runs ApplyUsageDebits in a transaction of its own.
func (s *DB) DebitUsage(ctx context.Context, debits []books.UsageDebit) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.ApplyUsageDebits(ctx, tx, debits) })
}

// UsageSpend is what usage entries debited since since (inclusive), for an
// account (scope "account") or a caller key (scope "key"), in nano-USD.
func (s *DB) UsageSpend(ctx context.Context, scope, scopeID string, since time.Time) (int64, error) {
	col := "account_id"
	switch scope {
	case books.BudgetScopeAccount:
	case books.BudgetScopeKey:
		col = "key_id"
	default:
		return 0, fmt.Errorf("usage spend: unknown scope %q", scope)
	}
	var spent int64
	err := s.queryRow(ctx, `SELECT CAST(COALESCE(-SUM(amount_nano), 0) AS BIGINT) FROM ledger_entries WHERE `+col+` = ? AND kind = 'usage' AND created_at >= ?`,
		scopeID, since.UnixMilli()).Scan(&spent)
	if err != nil {
		return 0, fmt.Errorf("usage spend of %s %s: %w", scope, scopeID, err)
	}
	return spent, nil
}

const budgetColumns = `scope, scope_id, period, limit_nano, alert_percents, created_at, updated_at`

// PutBudget creates the budget for (Scope, ScopeID, Period) or replaces
// its limit and alerts (CreatedAt is kept from the first write).
func (s *DB) PutBudget(ctx context.Context, b books.Budget) error {
	pcts := b.AlertPercents
	if pcts == nil {
		pcts = []int{}
	}
	_, err := s.exec(ctx, `INSERT INTO budgets (`+budgetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, scope_id, period) DO UPDATE SET limit_nano = excluded.limit_nano, alert_percents = excluded.alert_percents, updated_at = excluded.updated_at`,
		b.Scope, b.ScopeID, b.Period, b.LimitNano, jsonText(pcts), b.CreatedAt.UnixMilli(), b.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("put budget %s %s %s: %w", b.Scope, b.ScopeID, b.Period, err)
	}
	return nil
}

// DeleteBudget removes a budget; ErrNotFound if there was none.
func (s *DB) DeleteBudget(ctx context.Context, scope, scopeID, period string) error {
	res, err := s.exec(ctx, `DELETE FROM budgets WHERE scope = ? AND scope_id = ? AND period = ?`, scope, scopeID, period)
	if err != nil {
		return fmt.Errorf("delete budget %s %s %s: %w", scope, scopeID, period, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("budget %s %s %s: %w", scope, scopeID, period, ErrNotFound)
	}
	return nil
}

// BudgetScopeExists finds a budget's scope: nil when the account (scope
// "account") or the caller key (scope "key", revoked or not) is stored,
// ErrNotFound when it is not. Billing refuses a budget on nothing with it,
// and needs no account or key row for that.
func (s *DB) BudgetScopeExists(ctx context.Context, scope, scopeID string) error {
	table := "accounts"
	switch scope {
	case books.BudgetScopeAccount:
	case books.BudgetScopeKey:
		table = "api_keys"
	default:
		return fmt.Errorf("budget scope: unknown scope %q", scope)
	}
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, scopeID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", scope, scopeID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("budget scope %s %s: %w", scope, scopeID, typed(err))
	}
	return nil
}

// ListBudgets returns matching budgets ordered by scope, id and period.
func (s *DB) ListBudgets(ctx context.Context, f books.BudgetFilter) ([]books.Budget, error) {
	q := `SELECT ` + budgetColumns + ` FROM budgets`
	var where []string
	var args []any
	if f.Scope != "" {
		where = append(where, "scope = ?")
		args = append(args, f.Scope)
	}
	if f.ScopeID != "" {
		where = append(where, "scope_id = ?")
		args = append(args, f.ScopeID)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.query(ctx, q+" ORDER BY scope, scope_id, period", args...)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	defer rows.Close()
	var out []books.Budget
	for rows.Next() {
		var b books.Budget
		var pcts string
		var created, updated int64
		if err := rows.Scan(&b.Scope, &b.ScopeID, &b.Period, &b.LimitNano, &pcts, &created, &updated); err != nil {
			return nil, fmt.Errorf("list budgets: %w", err)
		}
		if err := json.Unmarshal([]byte(pcts), &b.AlertPercents); err != nil {
			return nil, fmt.Errorf("budget %s %s %s: alert_percents: %w", b.Scope, b.ScopeID, b.Period, err)
		}
		b.CreatedAt = time.UnixMilli(created).UTC()
		b.UpdatedAt = time.UnixMilli(updated).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}
