package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// StoredIssuer is a trusted issuer added through the admin API or the
// CLI. Definition is its config.IssuerDoc as JSON; the store does not
// read it (the exchange service and the admin API validate it).
type StoredIssuer struct {
	ID         string
	Issuer     string // the tokens' iss, unique among stored issuers
	Definition []byte
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time
	UpdatedBy  string
}

const issuerCols = `id, issuer, definition, created_at, created_by, updated_at, updated_by`

func scanIssuer(sc interface{ Scan(...any) error }) (StoredIssuer, error) {
	var is StoredIssuer
	var def string
	var created, updated int64
	if err := sc.Scan(&is.ID, &is.Issuer, &def, &created, &is.CreatedBy, &updated, &is.UpdatedBy); err != nil {
		return StoredIssuer{}, err
	}
	is.Definition = []byte(def)
	is.CreatedAt, is.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return is, nil
}

// Issuers returns every stored issuer, in the order they were added.
func (s *DB) Issuers(ctx context.Context) ([]StoredIssuer, error) {
	rows, err := s.query(ctx, `SELECT `+issuerCols+` FROM trusted_issuers ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("issuers: %w", err)
	}
	defer rows.Close()
	var out []StoredIssuer
	for rows.Next() {
		is, err := scanIssuer(rows)
		if err != nil {
			return nil, fmt.Errorf("issuers: %w", err)
		}
		out = append(out, is)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("issuers: %w", err)
	}
	return out, nil
}

// Issuer returns the stored issuer id (ErrNotFound).
func (s *DB) Issuer(ctx context.Context, id string) (StoredIssuer, error) {
	is, err := scanIssuer(s.queryRow(ctx, `SELECT `+issuerCols+` FROM trusted_issuers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return StoredIssuer{}, fmt.Errorf("issuer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return StoredIssuer{}, fmt.Errorf("issuer %s: %w", id, err)
	}
	return is, nil
}

// CreateIssuer stores a new issuer; another with the same id or iss is
// ErrConflict.
func (s *DB) CreateIssuer(ctx context.Context, is StoredIssuer) error {
	_, err := s.exec(ctx, `INSERT INTO trusted_issuers (`+issuerCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		is.ID, is.Issuer, string(is.Definition), is.CreatedAt.UnixMilli(), is.CreatedBy, is.UpdatedAt.UnixMilli(), is.UpdatedBy)
	if isUniqueViolation(err) {
		return fmt.Errorf("issuer %s: %w", is.Issuer, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create issuer %s: %w", is.Issuer, err)
	}
	return nil
}

// UpdateIssuer replaces the stored issuer is.ID's iss and definition
// (ErrNotFound; ErrConflict when another stored issuer has that iss).
func (s *DB) UpdateIssuer(ctx context.Context, is StoredIssuer) error {
	res, err := s.exec(ctx, `UPDATE trusted_issuers SET issuer = ?, definition = ?, updated_at = ?, updated_by = ? WHERE id = ?`,
		is.Issuer, string(is.Definition), is.UpdatedAt.UnixMilli(), is.UpdatedBy, is.ID)
	if isUniqueViolation(err) {
		return fmt.Errorf("issuer %s: %w", is.Issuer, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update issuer %s: %w", is.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ErrNotFound
		}
		return fmt.Errorf("update issuer %s: %w", is.ID, err)
	}
	return nil
}

// DeleteIssuer removes the stored issuer id (ErrNotFound).
func (s *DB) DeleteIssuer(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM trusted_issuers WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete issuer %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ErrNotFound
		}
		return fmt.Errorf("delete issuer %s: %w", id, err)
	}
	return nil
}
