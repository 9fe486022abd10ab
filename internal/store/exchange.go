package store

import (
	"context"
	"fmt"
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
