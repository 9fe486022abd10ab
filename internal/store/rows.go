package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// APIKey is a caller key as stored: never the key itself.
type APIKey struct {
	ID            string
	Name          string
	Hash          string // hex HMAC-SHA256(pepper, key)
	PepperVersion int
	Hint          string // display form, e.g. "xr-AbC…9xYz"
	AllowedModels []string
	CreatedAt     time.Time
	ExpiresAt     *time.Time
	RevokedAt     *time.Time
}

const keyColumns = `id, name, hash, pepper_version, hint, allowed_models, created_at, expires_at, revoked_at`

// CreateKey inserts a key row. ErrConflict if the id or hash exists.
func (s *DB) CreateKey(ctx context.Context, k APIKey) error {
	models, err := json.Marshal(nonNil(k.AllowedModels))
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, k.PepperVersion, k.Hint, string(models), k.CreatedAt.UnixMilli(), msPtr(k.ExpiresAt), msPtr(k.RevokedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("create key %s: %w", k.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

// KeyByHash finds a key by its hash (the auth lookup).
func (s *DB) KeyByHash(ctx context.Context, hash string) (APIKey, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, hash)
	return scanKey(row)
}

// KeyByID finds a key by id.
func (s *DB) KeyByID(ctx context.Context, id string) (APIKey, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id)
	return scanKey(row)
}

// ListKeys returns every key, newest first.
func (s *DB) ListKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks a key revoked at t. ErrNotFound if it does not exist.
func (s *DB) RevokeKey(ctx context.Context, id string, t time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, t.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke key %s: %w", id, ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(sc scanner) (APIKey, error) {
	var k APIKey
	var models string
	var created int64
	var expires, revoked sql.NullInt64
	err := sc.Scan(&k.ID, &k.Name, &k.Hash, &k.PepperVersion, &k.Hint, &models, &created, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrNotFound
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("scan key: %w", err)
	}
	if err := json.Unmarshal([]byte(models), &k.AllowedModels); err != nil {
		return APIKey{}, fmt.Errorf("key %s: allowed_models: %w", k.ID, err)
	}
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.ExpiresAt = msTime(expires)
	k.RevokedAt = msTime(revoked)
	return k, nil
}

// UsageRecord is one metered request.
type UsageRecord struct {
	RequestID        string
	KeyID            string
	Model            string // public model name the caller asked for
	Provider         string
	UpstreamModel    string
	Stream           bool
	PromptTokens     int
	CompletionTokens int
	CachedTokens     int
	Latency          time.Duration
	TTFT             time.Duration
	Status           int
	Attempts         int
	ErrorCode        string
	CreatedAt        time.Time
}

const usageColumns = `request_id, key_id, model, provider, upstream_model, stream, prompt_tokens, completion_tokens, cached_tokens, latency_us, ttft_us, status, attempts, error_code, created_at`

// InsertUsage writes a batch in one transaction (group commit). A record
// whose request id is already stored is skipped, so a retried batch never
// counts a request twice.
func (s *DB) InsertUsage(ctx context.Context, recs []UsageRecord) error {
	if len(recs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage_records (`+usageColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("insert usage: %w", err)
		}
		defer stmt.Close()
		for _, r := range recs {
			if _, err := stmt.ExecContext(ctx, r.RequestID, r.KeyID, r.Model, r.Provider, r.UpstreamModel, r.Stream,
				r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.Latency.Microseconds(), r.TTFT.Microseconds(),
				r.Status, r.Attempts, r.ErrorCode, r.CreatedAt.UnixMilli()); err != nil {
				return fmt.Errorf("insert usage %s: %w", r.RequestID, err)
			}
		}
		return nil
	})
}

// UsageFilter selects usage records; zero fields do not filter.
type UsageFilter struct {
	KeyID     string
	RequestID string
	Since     time.Time
	Limit     int
}

// ListUsage returns matching records, newest first.
func (s *DB) ListUsage(ctx context.Context, f UsageFilter) ([]UsageRecord, error) {
	var where []string
	var args []any
	if f.KeyID != "" {
		where = append(where, "key_id = ?")
		args = append(args, f.KeyID)
	}
	if f.RequestID != "" {
		where = append(where, "request_id = ?")
		args = append(args, f.RequestID)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	q := `SELECT ` + usageColumns + ` FROM usage_records`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	var out []UsageRecord
	for rows.Next() {
		var r UsageRecord
		var lat, ttft, created int64
		if err := rows.Scan(&r.RequestID, &r.KeyID, &r.Model, &r.Provider, &r.UpstreamModel, &r.Stream,
			&r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &lat, &ttft, &r.Status, &r.Attempts, &r.ErrorCode, &created); err != nil {
			return nil, fmt.Errorf("scan usage: %w", err)
		}
		r.Latency = time.Duration(lat) * time.Microsecond
		r.TTFT = time.Duration(ttft) * time.Microsecond
		r.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func msPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func msTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}
