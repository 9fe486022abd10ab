package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrSinkLease is returned by AckSink when the caller no longer holds the
// sink's lease: another replica took it over (this one stalled past the
// lease), so this one must stop shipping and not move the cursor.
var ErrSinkLease = errors.New("audit sink: lease held by another process")

// LeaseSink takes or renews owner's lease on the audit sink name until
// now+ttl and returns the sink's acknowledged seq. ok is false (and
// acked 0) while another owner's lease is still running. The row is
// created on first use, so a new sink starts at seq 0: the whole log.
func (s *DB) LeaseSink(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (acked int64, ok bool, err error) {
	ms := now.UnixMilli()
	if _, err := s.exec(ctx, `INSERT INTO audit_sink_state (name, updated_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, ms); err != nil {
		return 0, false, fmt.Errorf("audit sink %s: create state: %w", name, err)
	}
	res, err := s.exec(ctx, `UPDATE audit_sink_state SET lease_owner = ?, lease_until = ?
		WHERE name = ? AND (lease_owner = ? OR lease_owner = '' OR lease_until < ?)`,
		owner, now.Add(ttl).UnixMilli(), name, owner, ms)
	if err != nil {
		return 0, false, fmt.Errorf("audit sink %s: lease: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, false, err
	}
	acked, err = s.SinkAcked(ctx, name)
	return acked, err == nil, err
}

// SinkAcked is the highest seq the sink name delivered (0: none, or no
// such sink yet).
func (s *DB) SinkAcked(ctx context.Context, name string) (int64, error) {
	var acked int64
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(acked_seq), 0) FROM audit_sink_state WHERE name = ?`, name).Scan(&acked)
	if err != nil {
		return 0, fmt.Errorf("audit sink %s: read state: %w", name, err)
	}
	return acked, nil
}

// AckSink moves the sink's cursor forward to seq, for owner only (see
// ErrSinkLease); a seq at or below the cursor changes nothing, so a
// cursor never moves back.
func (s *DB) AckSink(ctx context.Context, name, owner string, seq int64, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE audit_sink_state SET acked_seq = ?, updated_at = ?
		WHERE name = ? AND lease_owner = ? AND acked_seq < ?`, seq, now.UnixMilli(), name, owner, seq)
	if err != nil {
		return fmt.Errorf("audit sink %s: ack %d: %w", name, seq, err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	var holder string
	if err := s.queryRow(ctx, `SELECT lease_owner FROM audit_sink_state WHERE name = ?`, name).Scan(&holder); err != nil {
		return fmt.Errorf("audit sink %s: ack %d: %w", name, seq, err)
	}
	if holder != owner {
		return ErrSinkLease
	}
	return nil
}

// ReleaseSink gives up owner's lease (at shutdown), so that another
// replica may take the sink over at once rather than when it runs out.
func (s *DB) ReleaseSink(ctx context.Context, name, owner string) error {
	if _, err := s.exec(ctx, `UPDATE audit_sink_state SET lease_owner = '', lease_until = 0 WHERE name = ? AND lease_owner = ?`, name, owner); err != nil {
		return fmt.Errorf("audit sink %s: release: %w", name, err)
	}
	return nil
}

// LastAuditSeq is the seq of the newest audit row (0: an empty log).
func (s *DB) LastAuditSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_log`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last audit seq: %w", err)
	}
	return seq, nil
}
