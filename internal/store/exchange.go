package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ClaimJTI records that the identity token (issuer, jti) was exchanged,
// until expires. It reports false when the pair was already recorded: the
// token is being replayed. The insert is the check, so two concurrent
// exchanges of one token cannot both win.
func (s *DB) ClaimJTI(ctx context.Context, issuer, jti string, expires time.Time) (bool, error) {
	res, err := s.exec(ctx, `INSERT INTO exchange_jtis (issuer, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT (issuer, jti) DO NOTHING`,
		issuer, jti, expires.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("claim jti: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim jti: %w", err)
	}
	return n == 1, nil
}

// SweepJTIs deletes the jtis of tokens expired before now (they can no
// longer be presented), batch rows per statement.
func (s *DB) SweepJTIs(ctx context.Context, now time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("sweep jtis: batch %d, want at least 1", batch)
	}
	q := `DELETE FROM exchange_jtis WHERE (issuer, jti) IN (
    SELECT issuer, jti FROM exchange_jtis WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`
	if s.isPostgres() {
		q = `DELETE FROM exchange_jtis WHERE (issuer, jti) IN (
    SELECT issuer, jti FROM exchange_jtis WHERE expires_at < ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED)`
	}
	total := 0
	for {
		res, err := s.exec(ctx, q, now.UnixMilli(), batch)
		if err != nil {
			return total, fmt.Errorf("sweep jtis: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sweep jtis: %w", err)
		}
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}

// RefreshToken is a stored refresh token (its hash, never the token).
type RefreshToken struct {
	Hash      string
	Family    string
	KeyID     string // the access key issued with it
	AccountID string
	Issuer    string
	Rule      string
	CreatedAt time.Time
	ExpiresAt time.Time // the family's end
	SpentAt   *time.Time
	RevokedAt *time.Time
}

// CreateRefreshToken stores a refresh token.
func (s *DB) CreateRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := s.exec(ctx, `INSERT INTO refresh_tokens (hash, family, key_id, account_id, issuer, rule, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, t.Family, t.KeyID, t.AccountID, t.Issuer, t.Rule, t.CreatedAt.UnixMilli(), t.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("create refresh token: %w", err)
	}
	return nil
}

// SpendRefreshToken marks the token spent at now and reports whether this
// call did it. The conditional update is the decision: of concurrent
// spends of one token exactly one wins; the others, and every later one,
// get the row with won false (a reuse). ErrNotFound: no such token.
func (s *DB) SpendRefreshToken(ctx context.Context, hash string, now time.Time) (RefreshToken, bool, error) {
	res, err := s.exec(ctx, `UPDATE refresh_tokens SET spent_at = ? WHERE hash = ? AND spent_at IS NULL AND revoked_at IS NULL`, now.UnixMilli(), hash)
	if err != nil {
		return RefreshToken{}, false, fmt.Errorf("spend refresh token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return RefreshToken{}, false, fmt.Errorf("spend refresh token: %w", err)
	}
	var t RefreshToken
	var created, expires int64
	var spent, revoked sql.NullInt64
	err = s.queryRow(ctx, `SELECT hash, family, key_id, account_id, issuer, rule, created_at, expires_at, spent_at, revoked_at FROM refresh_tokens WHERE hash = ?`, hash).
		Scan(&t.Hash, &t.Family, &t.KeyID, &t.AccountID, &t.Issuer, &t.Rule, &created, &expires, &spent, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return RefreshToken{}, false, ErrNotFound
	}
	if err != nil {
		return RefreshToken{}, false, fmt.Errorf("spend refresh token: %w", err)
	}
	t.CreatedAt, t.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	if spent.Valid {
		at := time.UnixMilli(spent.Int64).UTC()
		t.SpentAt = &at
	}
	if revoked.Valid {
		at := time.UnixMilli(revoked.Int64).UTC()
		t.RevokedAt = &at
	}
	return t, n == 1, nil
}

// RevokeRefreshFamily revokes every refresh token of a family and returns
// the ids of the access keys issued in it (for the caller to revoke).
func (s *DB) RevokeRefreshFamily(ctx context.Context, family string, now time.Time) ([]string, error) {
	if _, err := s.exec(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL`, now.UnixMilli(), family); err != nil {
		return nil, fmt.Errorf("revoke refresh family: %w", err)
	}
	rows, err := s.query(ctx, `SELECT key_id FROM refresh_tokens WHERE family = ? ORDER BY created_at`, family)
	if err != nil {
		return nil, fmt.Errorf("revoke refresh family: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("revoke refresh family: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// SweepRefreshTokens deletes the refresh tokens of families that ended
// before now.
func (s *DB) SweepRefreshTokens(ctx context.Context, now time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("sweep refresh tokens: batch %d, want at least 1", batch)
	}
	q := `DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`
	if s.isPostgres() {
		q = `DELETE FROM refresh_tokens WHERE hash = ANY(ARRAY(SELECT hash FROM refresh_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED))`
	}
	total := 0
	for {
		res, err := s.exec(ctx, q, now.UnixMilli(), batch)
		if err != nil {
			return total, fmt.Errorf("sweep refresh tokens: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sweep refresh tokens: %w", err)
		}
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}

// RecordExchangedKey notes that the token exchange minted key id, which
// expires at expires: the mark SweepExchangedKeys goes by.
func (s *DB) RecordExchangedKey(ctx context.Context, id string, expires time.Time) error {
	if _, err := s.exec(ctx, `INSERT INTO exchanged_keys (key_id, expires_at) VALUES (?, ?)`, id, expires.UnixMilli()); err != nil {
		return fmt.Errorf("record exchanged key %s: %w", id, err)
	}
	return nil
}

// SweepExchangedKeys deletes the api_keys rows of keys the exchange
// minted that expired before cutoff (the caller passes now minus a grace
// period, so recent ones still have a name in the request log and the
// admin API), batch keys per transaction. A key is kept while a refresh
// token names it (the refresh grant reads it; the token goes when its
// family ends) and while its own expires_at is not before cutoff (an
// admin may have moved it). Usage records and audit rows that name the
// key stay: they hold its id, and the request log shows the id once the
// name is gone. It returns how many keys were deleted.
func (s *DB) SweepExchangedKeys(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("sweep exchanged keys: batch %d, want at least 1", batch)
	}
	// The LEFT JOIN also clears marks whose key row is already gone.
	q := `SELECT e.key_id FROM exchanged_keys e LEFT JOIN api_keys k ON k.id = e.key_id
 WHERE e.expires_at < ? AND (k.id IS NULL OR (k.expires_at IS NOT NULL AND k.expires_at < ?))
   AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.key_id = e.key_id)
 ORDER BY e.expires_at LIMIT ?`
	if s.isPostgres() {
		// Two replicas sweeping at once take disjoint batches.
		q += ` FOR UPDATE OF e SKIP LOCKED`
	}
	total := 0
	for {
		var n int
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			rows, err := s.txQuery(ctx, tx, q, cutoff.UnixMilli(), cutoff.UnixMilli(), batch)
			if err != nil {
				return err
			}
			var ids []any
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			in := "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
			if _, err := s.txExec(ctx, tx, `DELETE FROM api_keys WHERE id IN `+in, ids...); err != nil {
				return err
			}
			if _, err := s.txExec(ctx, tx, `DELETE FROM exchanged_keys WHERE key_id IN `+in, ids...); err != nil {
				return err
			}
			n = len(ids)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweep exchanged keys: %w", err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}
