package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/xroute/xroute/keys"
)

// CreateEphemeralKey inserts a child key and its caps in one transaction.
func (s *DB) CreateEphemeralKey(ctx context.Context, k keys.Record, e keys.ChildRecord) error {
	if k.Kind == "" {
		k.Kind = "caller"
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, insertKey, keyArgs(k)...); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("create ephemeral key %s: %w", k.ID, ErrConflict)
			}
			return fmt.Errorf("create ephemeral key %s: %w", k.ID, err)
		}
		if _, err := s.txExec(ctx, tx, `INSERT INTO ephemeral_keys (key_id, parent_id, spend_cap, max_requests) VALUES (?, ?, ?, ?)`,
			k.ID, e.ParentID, e.SpendCap, e.MaxRequests); err != nil {
			return fmt.Errorf("create ephemeral key %s: %w", k.ID, err)
		}
		return nil
	})
}

// EphemeralByKey returns a child key's row; ErrNotFound for a key that is
// not a child.
func (s *DB) EphemeralByKey(ctx context.Context, keyID string) (keys.ChildRecord, error) {
	e := keys.ChildRecord{KeyID: keyID}
	err := s.queryRow(ctx, `SELECT parent_id, spend_cap, max_requests, requests, spent, held FROM ephemeral_keys WHERE key_id = ?`, keyID).
		Scan(&e.ParentID, &e.SpendCap, &e.MaxRequests, &e.Requests, &e.Spent, &e.Held)
	if errors.Is(err, sql.ErrNoRows) {
		return keys.ChildRecord{}, ErrNotFound
	}
	if err != nil {
		return keys.ChildRecord{}, fmt.Errorf("ephemeral key %s: %w", keyID, err)
	}
	return e, nil
}

// RevokeChildren revokes every child of parentID not yet revoked and
// returns the hashes of those it revoked (to drop from the auth caches).
func (s *DB) RevokeChildren(ctx context.Context, parentID string, t time.Time) ([]string, error) {
	var hashes []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.txQuery(ctx, tx, `SELECT hash FROM api_keys WHERE revoked_at IS NULL AND id IN (SELECT key_id FROM ephemeral_keys WHERE parent_id = ?)`, parentID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return err
			}
			hashes = append(hashes, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = s.txExec(ctx, tx, `UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL AND id IN (SELECT key_id FROM ephemeral_keys WHERE parent_id = ?)`, t.UnixMilli(), parentID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke children of %s: %w", parentID, err)
	}
	return hashes, nil
}

// CountEphemeralRequest admits one more request of a child key: one
// atomic update, so replicas sharing the database count exactly. It
// reports false when the child's max_requests are used up.
func (s *DB) CountEphemeralRequest(ctx context.Context, keyID string) (bool, error) {
	res, err := s.exec(ctx, `UPDATE ephemeral_keys SET requests = requests + 1 WHERE key_id = ? AND (max_requests = 0 OR requests < max_requests)`, keyID)
	if err != nil {
		return false, fmt.Errorf("count request of %s: %w", keyID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// HoldEphemeralSpend reserves amount nano-USD of a child's spend cap: it
// reports false, reserving nothing, when what is spent and held plus
// amount would pass the cap. A child without a cap always has room.
func (s *DB) HoldEphemeralSpend(ctx context.Context, keyID string, amount int64) (bool, error) {
	res, err := s.exec(ctx, `UPDATE ephemeral_keys SET held = held + ? WHERE key_id = ? AND (spend_cap = 0 OR spent + held + ? <= spend_cap)`, amount, keyID, amount)
	if err != nil {
		return false, fmt.Errorf("hold spend of %s: %w", keyID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SettleEphemeralSpend turns a reservation of held into a spend of cost
// (0 to release it).
func (s *DB) SettleEphemeralSpend(ctx context.Context, keyID string, held, cost int64) error {
	_, err := s.exec(ctx, `UPDATE ephemeral_keys SET held = CASE WHEN held > ? THEN held - ? ELSE 0 END, spent = spent + ? WHERE key_id = ?`, held, held, cost, keyID)
	if err != nil {
		return fmt.Errorf("settle spend of %s: %w", keyID, err)
	}
	return nil
}

// SetCORSOrigins replaces the browser origins allowed for an account
// (none: the row goes).
func (s *DB) SetCORSOrigins(ctx context.Context, accountID string, origins []string, t time.Time) error {
	var err error
	if len(origins) == 0 {
		_, err = s.exec(ctx, `DELETE FROM account_cors WHERE account_id = ?`, accountID)
	} else {
		_, err = s.exec(ctx, `INSERT INTO account_cors (account_id, origins, updated_at) VALUES (?, ?, ?)
ON CONFLICT (account_id) DO UPDATE SET origins = excluded.origins, updated_at = excluded.updated_at`, accountID, jsonText(origins), t.UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("set cors origins of %s: %w", accountID, err)
	}
	return nil
}

// CORSOrigins returns every account's allowed origins.
func (s *DB) CORSOrigins(ctx context.Context) (map[string][]string, error) {
	rows, err := s.query(ctx, `SELECT account_id, origins FROM account_cors`)
	if err != nil {
		return nil, fmt.Errorf("cors origins: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("cors origins: %w", err)
		}
		var o []string
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			return nil, fmt.Errorf("cors origins of %s: %w", id, err)
		}
		out[id] = o
	}
	return out, rows.Err()
}
