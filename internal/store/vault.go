package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xroute/xroute/keys"
)

// Keyring returns the vault's encrypted keyring and its generation;
// ErrNotFound before the vault's first start.
func (s *DB) Keyring(ctx context.Context) ([]byte, int64, error) {
	var blob []byte
	var gen int64
	err := s.queryRow(ctx, `SELECT blob, generation FROM vault_keyring WHERE id = 1`).Scan(&blob, &gen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load keyring: %w", err)
	}
	return blob, gen, nil
}

// SaveKeyring stores the encrypted keyring if the stored generation is
// still gen (0: none stored yet) and returns the new generation.
// ErrConflict when another writer saved first.
func (s *DB) SaveKeyring(ctx context.Context, blob []byte, gen int64) (int64, error) {
	now := time.Now().UnixMilli()
	if gen == 0 {
		// A concurrent first save shows as zero rows inserted, the same
		// on both backends, rather than as each driver's error.
		res, err := s.exec(ctx, `INSERT INTO vault_keyring (id, blob, generation, updated_at) VALUES (1, ?, 1, ?) ON CONFLICT (id) DO NOTHING`, blob, now)
		if err != nil {
			return 0, fmt.Errorf("save keyring: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, fmt.Errorf("save keyring: %w", err)
		} else if n == 0 {
			return 0, fmt.Errorf("save keyring: %w", ErrConflict)
		}
		return 1, nil
	}
	// One statement: PostgreSQL re-checks generation on the row it locks,
	// so of two concurrent savers of one generation only one matches.
	res, err := s.exec(ctx, `UPDATE vault_keyring SET blob = ?, generation = generation + 1, updated_at = ? WHERE id = 1 AND generation = ?`, blob, now, gen)
	if err != nil {
		return 0, fmt.Errorf("save keyring: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, fmt.Errorf("save keyring generation %d: %w", gen, ErrConflict)
	}
	return gen + 1, nil
}

const providerKeyColumns = `id, provider, name, ciphertext, term, hint, weight, status, disabled_reason, created_at, updated_at`

// CreateProviderKey inserts a provider key. ErrConflict when the id, or the
// provider+name pair, exists.
func (s *DB) CreateProviderKey(ctx context.Context, k keys.ProviderKeyRecord) error {
	_, err := s.exec(ctx, `INSERT INTO provider_keys (`+providerKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Provider, k.Name, k.Ciphertext, int64(k.Term), k.Hint, k.Weight, k.Status, k.DisabledReason, k.CreatedAt.UnixMilli(), k.UpdatedAt.UnixMilli())
	if isUniqueViolation(err) {
		return fmt.Errorf("create provider key %s (%s/%s): %w", k.ID, k.Provider, k.Name, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create provider key %s: %w", k.ID, err)
	}
	return nil
}

// ListProviderKeys returns matching keys ordered by provider, then age.
func (s *DB) ListProviderKeys(ctx context.Context, f keys.ProviderKeyFilter) ([]keys.ProviderKeyRecord, error) {
	var where []string
	var args []any
	if f.Provider != "" {
		where = append(where, "provider = ?")
		args = append(args, f.Provider)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	if f.NotTerm != 0 {
		where = append(where, "term <> ?")
		args = append(args, int64(f.NotTerm))
	}
	q := `SELECT ` + providerKeyColumns + ` FROM provider_keys`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY provider, created_at, id"
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list provider keys: %w", err)
	}
	defer rows.Close()
	var out []keys.ProviderKeyRecord
	for rows.Next() {
		k, err := scanProviderKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// ProviderKeyByID finds a provider key. ErrNotFound if it does not exist.
func (s *DB) ProviderKeyByID(ctx context.Context, id string) (keys.ProviderKeyRecord, error) {
	return scanProviderKey(s.queryRow(ctx, `SELECT `+providerKeyColumns+` FROM provider_keys WHERE id = ?`, id))
}

// SetProviderKeyStatus sets a key's status and reason. ErrNotFound if it
// does not exist.
func (s *DB) SetProviderKeyStatus(ctx context.Context, id, status, reason string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE provider_keys SET status = ?, disabled_reason = ?, updated_at = ? WHERE id = ?`, status, reason, at.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("set provider key %s status: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set provider key %s status: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteProviderKey removes a key. ErrNotFound if it does not exist.
func (s *DB) DeleteProviderKey(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM provider_keys WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete provider key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete provider key %s: %w", id, ErrNotFound)
	}
	return nil
}

// SwapProviderKeyCiphertext replaces a key's ciphertext and term if the
// stored ciphertext is still old: one statement, so one short transaction
// per key, and concurrent readers see either the old or the new ciphertext.
// ErrConflict when the row changed meanwhile, ErrNotFound when it is gone.
func (s *DB) SwapProviderKeyCiphertext(ctx context.Context, id string, old, ct []byte, term uint32, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE provider_keys SET ciphertext = ?, term = ?, updated_at = ? WHERE id = ? AND ciphertext = ?`, ct, int64(term), at.UnixMilli(), id, old)
	if err != nil {
		return fmt.Errorf("re-seal provider key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if _, err := s.ProviderKeyByID(ctx, id); err != nil {
		return fmt.Errorf("re-seal provider key %s: %w", id, err)
	}
	return fmt.Errorf("re-seal provider key %s: %w", id, ErrConflict)
}

func scanProviderKey(sc scanner) (keys.ProviderKeyRecord, error) {
	var k keys.ProviderKeyRecord
	var created, updated int64
	var term int64
	err := sc.Scan(&k.ID, &k.Provider, &k.Name, &k.Ciphertext, &term, &k.Hint, &k.Weight, &k.Status, &k.DisabledReason, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return keys.ProviderKeyRecord{}, ErrNotFound
	}
	if err != nil {
		return keys.ProviderKeyRecord{}, fmt.Errorf("scan provider key: %w", err)
	}
	k.Term = uint32(term)
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.UpdatedAt = time.UnixMilli(updated).UTC()
	return k, nil
}
