package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/xroute/xroute/keys/auditlog"
)

const auditColumns = `seq, at, kind, actor, account_id, subject, ip, details, prev_hash, hash, key_term`

// AppendAudit appends one row in a single transaction: it reads the last
// row's seq and hash (0 and "" for an empty log), lets build make the new
// row from them, and inserts it. Appenders, across processes too, form one
// linear chain: on SQLite the transaction takes the write lock at BEGIN, on
// PostgreSQL a transaction-scoped advisory lock is taken before reading
// the last row (a row lock cannot serve: an empty log has no row to lock).
func (s *DB) AppendAudit(ctx context.Context, build func(lastSeq int64, lastHash string) (auditlog.Row, error)) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.isPostgres() {
			if _, err := s.txExec(ctx, tx, `SELECT pg_advisory_xact_lock(?, ?)`, s.lockNS, lockAudit); err != nil {
				return fmt.Errorf("append audit: lock: %w", err)
			}
		}
		var seq int64
		var hash string
		err := s.txQueryRow(ctx, tx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("append audit: read last: %w", err)
		}
		r, err := build(seq, hash)
		if err != nil {
			return err
		}
		if _, err := s.txExec(ctx, tx, `INSERT INTO audit_log (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Seq, r.At, r.Kind, r.Actor, r.AccountID, r.Subject, r.IP, r.Details, r.PrevHash, r.Hash, int64(r.KeyTerm)); err != nil {
			return fmt.Errorf("append audit seq %d: %w", r.Seq, err)
		}
		return nil
	})
}

// ListAudit returns matching rows, newest (highest seq) first.
func (s *DB) ListAudit(ctx context.Context, f auditlog.Filter) ([]auditlog.Row, error) {
	var where []string
	var args []any
	if f.Kind != "" {
		where = append(where, `kind LIKE ? ESCAPE '\'`)
		args = append(args, likeEscaper.Replace(f.Kind)+"%")
	}
	if f.Subject != "" {
		where = append(where, "subject = ?")
		args = append(args, f.Subject)
	}
	if f.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, f.AccountID)
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		where = append(where, "at < ?")
		args = append(args, f.Until.UnixMilli())
	}
	if f.BeforeSeq > 0 {
		where = append(where, "seq < ?")
		args = append(args, f.BeforeSeq)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return s.queryAudit(ctx, q, args...)
}

// ScanAudit returns up to limit rows with seq > afterSeq in ascending
// order: the chain walk that verification pages through.
func (s *DB) ScanAudit(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Row, error) {
	return s.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
}

// FirstKeyedAudit returns the seq of the first row with a key term (0:
// none).
func (s *DB) FirstKeyedAudit(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.queryRow(ctx, `SELECT COALESCE(MIN(seq), 0) FROM audit_log WHERE key_term > 0`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("first keyed audit row: %w", err)
	}
	return seq, nil
}

func (s *DB) queryAudit(ctx context.Context, q string, args ...any) ([]auditlog.Row, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []auditlog.Row
	for rows.Next() {
		var r auditlog.Row
		var term int64
		if err := rows.Scan(&r.Seq, &r.At, &r.Kind, &r.Actor, &r.AccountID, &r.Subject, &r.IP, &r.Details, &r.PrevHash, &r.Hash, &term); err != nil {
			return nil, fmt.Errorf("scan audit: %w", err)
		}
		if term < 0 || term > math.MaxUint32 {
			term = math.MaxUint32 // no such term: the row fails verification
		}
		r.KeyTerm = uint32(term)
		out = append(out, r)
	}
	return out, rows.Err()
}

// likeEscaper escapes LIKE's wildcards so a prefix matches literally.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
