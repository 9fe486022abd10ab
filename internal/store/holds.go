package store

// Credit holds (migration 0006): credits reserved for requests in flight,
// shared by every replica. accounts.reserved_nano caches the sum of the
// account's credit_holds; a hold is placed only while balance - reserved
// covers it, and whoever deletes a hold row subtracts its amount, so a
// release is idempotent and two replicas never release one hold twice.
// A request's hold is released in the transaction that stores its usage
// record and debit (InsertUsage), or by ReleaseHold when it ends without
// one; SweepExpiredHolds frees the holds of a replica that died.
//
// The database's clock stamps holds and decides when they expire: the
// replica that places a hold and the one that sweeps it compare times
// from one clock, so a replica whose clock runs ahead cannot free the
// live holds of another. created_at is informational.
//
// Lock order on PostgreSQL. A usage batch deletes its holds, then locks
// and updates its accounts in id order (each account's ledger entries are
// chained and inserted under its lock, see ledgerchain.go); ReleaseHold
// deletes one hold, then updates its account; HoldCredit updates one account, then inserts a hold under a
// fresh id (a request id). The sweep takes only hold rows nobody has
// locked (SKIP LOCKED), so it never waits on a hold, and then updates
// accounts in id order, like everyone else: no cycle of waits can form.
// (Re-holding an id whose old hold is being deleted could wait on that
// delete while holding the account: request ids are not reused.)

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"slices"
	"time"
)

// The database's current time in unix milliseconds, as SQL. PostgreSQL's
// clock_timestamp() is the time the expression is evaluated (not the
// transaction's start); SQLite's 'now' is the time of the statement's
// step.
const (
	pgNowMillis     = `CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)`
	sqliteNowMillis = `CAST(round(unixepoch('subsec') * 1000) AS INTEGER)`
)

// sweepBatch caps the holds one sweep transaction frees; a sweep runs
// batches until one comes back short.
const sweepBatch = 1000

// HoldCredit reserves amount (nano-USD, >= 0) of the account's balance
// under holdID until it is released or, ttl after the database's clock
// says it was placed, expires: atomically, only if balance - reserved >=
// amount, else ErrInsufficientCredit. ErrNotFound for an unknown account,
// ErrConflict when holdID is taken.
func (s *DB) HoldCredit(ctx context.Context, accountID, holdID string, amount int64, ttl time.Duration) error {
	if holdID == "" || amount < 0 || ttl <= 0 {
		return fmt.Errorf("hold %q on %s: need a hold id, a non-negative amount and a positive TTL, got %d for %s", holdID, accountID, amount, ttl)
	}
	ttlMillis := int64((ttl + time.Millisecond - 1) / time.Millisecond) // at least 1
	var err error
	if s.isPostgres() {
		err = s.holdCreditPostgres(ctx, accountID, holdID, amount, ttlMillis)
	} else {
		err = s.holdCreditSQLite(ctx, accountID, holdID, amount, ttlMillis)
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
func (s *DB) holdCreditPostgres(ctx context.Context, accountID, holdID string, amount, ttlMillis int64) error {
	res, err := s.exec(ctx, `WITH a AS (
    UPDATE accounts SET reserved_nano = reserved_nano + $3
     WHERE id = $1 AND balance_nano - reserved_nano >= $3
 RETURNING id)
INSERT INTO credit_holds (id, account_id, amount_nano, created_at, expires_at)
SELECT CAST($2 AS TEXT), a.id, $3, c.ms, c.ms + CAST($4 AS BIGINT)
  FROM a, (SELECT `+pgNowMillis+` AS ms) c`, accountID, holdID, amount, ttlMillis)
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
	return books.ErrInsufficientCredit
}

// holdCreditSQLite checks and reserves in one transaction, which holds the
// database's write lock from BEGIN.
func (s *DB) holdCreditSQLite(ctx context.Context, accountID, holdID string, amount, ttlMillis int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var free int64
		if err := s.txQueryRow(ctx, tx, `SELECT balance_nano - reserved_nano FROM accounts WHERE id = ?`, accountID).Scan(&free); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if _, err := s.txExec(ctx, tx, `INSERT INTO credit_holds (id, account_id, amount_nano, created_at, expires_at)
SELECT ?, ?, ?, c.ms, c.ms + ? FROM (SELECT `+sqliteNowMillis+` AS ms) c`,
			holdID, accountID, amount, ttlMillis); isUniqueViolation(err) {
			return ErrConflict
		} else if err != nil {
			return err
		}
		if free < amount {
			return books.ErrInsufficientCredit
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

// SweepExpiredHolds releases every hold whose expiry has passed by the
// database's clock (the holds of a replica that died before releasing
// them) and returns how many. On PostgreSQL it passes over holds another
// transaction has locked, such as a usage batch releasing them: that
// transaction frees them, or, if it rolls back, the next sweep does.
func (s *DB) SweepExpiredHolds(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.sweepExpiredBatch(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("sweep expired holds: %w", err)
		}
		if n < sweepBatch {
			return total, nil
		}
	}
}

// sweepExpiredBatch frees up to sweepBatch expired holds in one
// transaction: it deletes them (in id order, taking on PostgreSQL only
// rows no one has locked, so it never waits on a hold) and then subtracts
// them from their accounts in account order.
func (s *DB) sweepExpiredBatch(ctx context.Context) (int, error) {
	q := `DELETE FROM credit_holds WHERE id IN (
    SELECT id FROM credit_holds WHERE expires_at < (SELECT ` + sqliteNowMillis + `) ORDER BY id LIMIT ?)
RETURNING account_id, amount_nano`
	if s.isPostgres() {
		// The scalar subquery reads the clock once, not per row.
		q = `DELETE FROM credit_holds WHERE id IN (
    SELECT id FROM credit_holds WHERE expires_at < (SELECT ` + pgNowMillis + `) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)
RETURNING account_id, amount_nano`
	}
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.txQuery(ctx, tx, q, sweepBatch)
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
