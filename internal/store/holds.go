package store

// Credit holds (migration 0006): credits reserved for requests in flight,
// shared by every replica. accounts.reserved_nano caches the sum of the
// account's credit_holds; a hold is placed only while balance - reserved
// covers it, and whoever deletes a hold row subtracts its amount, so a
// release is idempotent and two replicas never release one hold twice.
// A request's hold is released in the transaction that stores its usage
// record and debit (InsertUsage), or by ReleaseHold when it ends without
// one; SweepExpiredHolds frees the holds of a replica that died.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrInsufficientCredit is returned when an account's unreserved balance
// cannot cover a hold.
var ErrInsufficientCredit = errors.New("insufficient credit")

// HoldCredit reserves amount (nano-USD, >= 0) of the account's balance
// under holdID until it is released or expires at expiresAt: atomically,
// only if balance - reserved >= amount, else ErrInsufficientCredit.
// ErrNotFound for an unknown account, ErrConflict when holdID is taken.
func (s *DB) HoldCredit(ctx context.Context, accountID, holdID string, amount int64, expiresAt time.Time) error {
	if holdID == "" || amount < 0 {
		return fmt.Errorf("hold %q on %s: need a hold id and a non-negative amount, got %d", holdID, accountID, amount)
	}
	now := time.Now().UnixMilli()
	var err error
	if s.isPostgres() {
		err = s.holdCreditPostgres(ctx, accountID, holdID, amount, now, expiresAt.UnixMilli())
	} else {
		err = s.holdCreditSQLite(ctx, accountID, holdID, amount, now, expiresAt.UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("hold %d on %s (%s): %w", amount, accountID, holdID, err)
	}
	return nil
}

// holdCreditPostgres places the hold in one statement, so one round trip:
// the UPDATE's row lock orders concurrent holds on the account and its
// condition is re-checked on the latest balance, and a taken hold id fails
// the whole statement, the reservation with it. Why it failed is asked
// only then.
func (s *DB) holdCreditPostgres(ctx context.Context, accountID, holdID string, amount, now, expires int64) error {
	res, err := s.exec(ctx, `WITH a AS (
    UPDATE accounts SET reserved_nano = reserved_nano + $3
     WHERE id = $1 AND balance_nano - reserved_nano >= $3
 RETURNING id)
INSERT INTO credit_holds (id, account_id, amount_nano, created_at, expires_at)
SELECT CAST($2 AS TEXT), a.id, $3, CAST($4 AS BIGINT), CAST($5 AS BIGINT) FROM a`, accountID, holdID, amount, now, expires)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 1 {
		return nil
	}
	var account, taken bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?), EXISTS (SELECT 1 FROM credit_holds WHERE id = ?)`, accountID, holdID).Scan(&account, &taken); err != nil {
		return err
	}
	switch {
	case !account:
		return ErrNotFound
	case taken:
		return ErrConflict
	}
	return ErrInsufficientCredit
}

// holdCreditSQLite checks and reserves in one transaction, which holds the
// database's write lock from BEGIN.
func (s *DB) holdCreditSQLite(ctx context.Context, accountID, holdID string, amount, now, expires int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var free int64
		if err := s.txQueryRow(ctx, tx, `SELECT balance_nano - reserved_nano FROM accounts WHERE id = ?`, accountID).Scan(&free); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if _, err := s.txExec(ctx, tx, `INSERT INTO credit_holds (id, account_id, amount_nano, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			holdID, accountID, amount, now, expires); isUniqueViolation(err) {
			return ErrConflict
		} else if err != nil {
			return err
		}
		if free < amount {
			return ErrInsufficientCredit
		}
		_, err := s.txExec(ctx, tx, `UPDATE accounts SET reserved_nano = reserved_nano + ? WHERE id = ?`, amount, accountID)
		return err
	})
}

// ReleaseHold deletes the hold and gives its amount back to the account's
// unreserved balance. It reports whether this call released it: false when
// the hold was already released (by usage, a sweep or another call) or
// never existed.
func (s *DB) ReleaseHold(ctx context.Context, holdID string) (bool, error) {
	var released bool
	var err error
	if s.isPostgres() {
		// One statement: only the statement whose DELETE returns the row
		// subtracts its amount.
		var n int64
		err = s.queryRow(ctx, `WITH d AS (DELETE FROM credit_holds WHERE id = ? RETURNING account_id, amount_nano),
     u AS (UPDATE accounts SET reserved_nano = reserved_nano - d.amount_nano FROM d WHERE accounts.id = d.account_id)
SELECT COUNT(*) FROM d`, holdID).Scan(&n)
		released = n > 0
	} else {
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			byAccount, err := s.deleteHolds(ctx, tx, []string{holdID})
			if err != nil || len(byAccount) == 0 {
				return err
			}
			released = true
			return s.unreserve(ctx, tx, byAccount)
		})
	}
	if err != nil {
		return false, fmt.Errorf("release hold %s: %w", holdID, err)
	}
	return released, nil
}

// SweepExpiredHolds releases every hold that expired before now (the holds
// of a replica that died before releasing them) and returns how many.
func (s *DB) SweepExpiredHolds(ctx context.Context, now time.Time) (int, error) {
	n, err := s.sweepExpiredHolds(ctx, now.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("sweep expired holds: %w", err)
	}
	return n, nil
}

func (s *DB) sweepExpiredHolds(ctx context.Context, now int64) (int, error) {
	if !s.isPostgres() {
		var n int
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			rows, err := s.txQuery(ctx, tx, `DELETE FROM credit_holds WHERE expires_at < ? RETURNING account_id, amount_nano`, now)
			if err != nil {
				return err
			}
			byAccount, err := sumByAccount(rows)
			if err != nil {
				return err
			}
			for _, h := range byAccount {
				n += h.count
			}
			return s.unreserve(ctx, tx, byAccount)
		})
		if err != nil {
			return 0, err
		}
		return n, nil
	}
	// PostgreSQL: one statement per account, each locking just that
	// account's row. A single statement over all accounts would lock
	// their rows in no set order and could deadlock with a usage batch.
	rows, err := s.query(ctx, `SELECT DISTINCT account_id FROM credit_holds WHERE expires_at < ? ORDER BY account_id`, now)
	if err != nil {
		return 0, err
	}
	var accounts []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		accounts = append(accounts, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	total := 0
	for _, id := range accounts {
		var n int64
		err := s.queryRow(ctx, `WITH d AS (DELETE FROM credit_holds WHERE account_id = ? AND expires_at < ? RETURNING amount_nano),
     u AS (UPDATE accounts SET reserved_nano = reserved_nano - (SELECT CAST(SUM(amount_nano) AS BIGINT) FROM d)
            WHERE id = ? AND EXISTS (SELECT 1 FROM d))
SELECT COUNT(*) FROM d`, id, now, id).Scan(&n)
		if err != nil {
			return total, fmt.Errorf("account %s: %w", id, err)
		}
		total += int(n)
	}
	return total, nil
}

// CreditState reads an account's balance and the part of it that holds
// reserve (both nano-USD). ErrNotFound if there is no account.
func (s *DB) CreditState(ctx context.Context, accountID string) (balance, reserved int64, err error) {
	err = s.queryRow(ctx, `SELECT balance_nano, reserved_nano FROM accounts WHERE id = ?`, accountID).Scan(&balance, &reserved)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("account %s: %w", accountID, ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("account %s credit state: %w", accountID, err)
	}
	return balance, reserved, nil
}

// heldSum is what the deleted holds of one account reserved.
type heldSum struct {
	amount int64
	count  int
}

// deleteHolds deletes the holds ids (one statement, however many ids, and
// cheap when none exists) and returns what they reserved per account; the
// caller subtracts it in the same transaction.
func (s *DB) deleteHolds(ctx context.Context, tx *sql.Tx, ids []string) (map[string]heldSum, error) {
	var rows *sql.Rows
	var err error
	if s.isPostgres() {
		rows, err = s.txQuery(ctx, tx, `DELETE FROM credit_holds WHERE id = ANY(?) RETURNING account_id, amount_nano`, ids)
	} else {
		rows, err = s.txQuery(ctx, tx, `DELETE FROM credit_holds WHERE id IN (SELECT value FROM json_each(?)) RETURNING account_id, amount_nano`, jsonText(ids))
	}
	if err != nil {
		return nil, err
	}
	return sumByAccount(rows)
}

func sumByAccount(rows *sql.Rows) (map[string]heldSum, error) {
	defer rows.Close()
	out := map[string]heldSum{}
	for rows.Next() {
		var id string
		var amount int64
		if err := rows.Scan(&id, &amount); err != nil {
			return nil, err
		}
		h := out[id]
		h.amount += amount
		h.count++
		out[id] = h
	}
	return out, rows.Err()
}

// unreserve subtracts released holds from the accounts' reserved_nano, in
// account order (the lock order every multi-account transaction keeps).
func (s *DB) unreserve(ctx context.Context, tx *sql.Tx, byAccount map[string]heldSum) error {
	ids := make([]string, 0, len(byAccount))
	for id, h := range byAccount {
		if h.amount != 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if _, err := s.txExec(ctx, tx, `UPDATE accounts SET reserved_nano = reserved_nano - ? WHERE id = ?`, byAccount[id].amount, id); err != nil {
			return fmt.Errorf("unreserve %s: %w", id, err)
		}
	}
	return nil
}
