package store

import (
	"context"
	"fmt"
	"time"
)

// CacheModel is a model's response cache policy set through the admin
// API (migration 0018): it replaces the model's `cache:` config on every
// replica until deleted. TTL and MaxEntryBytes 0 are the defaults.
type CacheModel struct {
	Model         string
	Enabled       bool
	TTL           time.Duration
	Scope         string
	Sampled       bool
	MaxEntryBytes int
	UpdatedAt     time.Time
	UpdatedBy     string
}

// CacheModels lists every stored policy, by model.
func (s *DB) CacheModels(ctx context.Context) ([]CacheModel, error) {
	rows, err := s.query(ctx, `SELECT model, enabled, ttl_ms, scope, sampled, max_entry_bytes, updated_at, updated_by FROM response_cache_models ORDER BY model`)
	if err != nil {
		return nil, fmt.Errorf("cache models: %w", err)
	}
	defer rows.Close()
	var out []CacheModel
	for rows.Next() {
		var m CacheModel
		var ttl, at int64
		if err := rows.Scan(&m.Model, &m.Enabled, &ttl, &m.Scope, &m.Sampled, &m.MaxEntryBytes, &at, &m.UpdatedBy); err != nil {
			return nil, fmt.Errorf("cache models: scan: %w", err)
		}
		m.TTL, m.UpdatedAt = time.Duration(ttl)*time.Millisecond, time.UnixMilli(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// PutCacheModel stores (or replaces) a model's policy.
func (s *DB) PutCacheModel(ctx context.Context, m CacheModel) error {
	_, err := s.exec(ctx, `INSERT INTO response_cache_models (model, enabled, ttl_ms, scope, sampled, max_entry_bytes, updated_at, updated_by)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (model) DO UPDATE SET enabled = excluded.enabled, ttl_ms = excluded.ttl_ms, scope = excluded.scope, sampled = excluded.sampled,
  max_entry_bytes = excluded.max_entry_bytes, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		m.Model, b2i(m.Enabled), m.TTL.Milliseconds(), m.Scope, b2i(m.Sampled), m.MaxEntryBytes, m.UpdatedAt.UnixMilli(), m.UpdatedBy)
	if err != nil {
		return fmt.Errorf("put cache model %s: %w", m.Model, err)
	}
	return nil
}

// DeleteCacheModel removes a model's policy (its config applies again);
// deleted is false when it had none.
func (s *DB) DeleteCacheModel(ctx context.Context, model string) (deleted bool, err error) {
	res, err := s.exec(ctx, `DELETE FROM response_cache_models WHERE model = ?`, model)
	if err != nil {
		return false, fmt.Errorf("delete cache model %s: %w", model, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
