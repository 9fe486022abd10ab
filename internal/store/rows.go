package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"slices"
	"strings"
	"time"

	"github.com/xroute/xroute/keys"
)

const keyColumns = `id, account_id, kind, name, hash, pepper_version, hint, allowed_models, allowed_endpoints, allowed_cidrs, rpm, tpm, max_concurrent, metadata, created_at, expires_at, revoked_at, suspended_at, suspend_reason, rotated_from, role`

// CreateKey inserts a key row. ErrConflict if the id or hash exists.
func (s *DB) CreateKey(ctx context.Context, k keys.Record) error {
	if k.AccountID == "" {
		k.AccountID = keys.DefaultAccountID
	}
	if k.Kind == "" {
		k.Kind = "caller"
	}
	_, err := s.exec(ctx, insertKey, keyArgs(k)...)
	if isUniqueViolation(err) {
		return fmt.Errorf("create key %s: %w", k.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

const insertKey = `INSERT INTO api_keys (` + keyColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func keyArgs(k keys.Record) []any {
	return []any{k.ID, k.AccountID, k.Kind, k.Name, k.Hash, k.PepperVersion, k.Hint, jsonText(nonNil(k.AllowedModels)), jsonText(nonNil(k.AllowedEndpoints)),
		jsonText(nonNil(k.AllowedCIDRs)), k.RPM, k.TPM, k.MaxConcurrent, jsonText(nonNilMap(k.Metadata)),
		k.CreatedAt.UnixMilli(), msPtr(k.ExpiresAt), msPtr(k.RevokedAt), msPtr(k.SuspendedAt), k.SuspendReason, k.RotatedFrom, k.Role}
}

// RotateKey replaces key id in one transaction, with the old row locked:
// next decides from the old row and the id of a key already rotated from
// it ("" when none) what the new key is and when the old one expires, or
// refuses with an error (returned as it is). The new row is inserted and
// the old key set to expire at expireAt, unless it expires earlier. Two
// rotations of one key cannot both see it unrotated.
func (s *DB) RotateKey(ctx context.Context, id string, next func(old keys.Record, successor string) (keys.Record, time.Time, error)) (keys.Record, error) {
	var out keys.Record
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanKey(s.txQueryRow(ctx, tx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`+s.forUpdate(), id))
		if err != nil {
			return fmt.Errorf("rotate key %s: %w", id, err)
		}
		var successor string
		err = s.txQueryRow(ctx, tx, `SELECT id FROM api_keys WHERE rotated_from = ? LIMIT 1`, id).Scan(&successor)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("rotate key %s: %w", id, err)
		}
		k, expireAt, err := next(old, successor)
		if err != nil {
			return err
		}
		if _, err := s.txExec(ctx, tx, insertKey, keyArgs(k)...); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("rotate key %s: %w", id, ErrConflict)
			}
			return fmt.Errorf("rotate key %s: %w", id, err)
		}
		ms := expireAt.UnixMilli()
		if _, err := s.txExec(ctx, tx, `UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < ? THEN expires_at ELSE ? END WHERE id = ?`, ms, ms, id); err != nil {
			return fmt.Errorf("rotate key %s: %w", id, err)
		}
		out = k
		return nil
	})
	return out, err
}

// KeyByHash finds a key by its hash (the auth lookup).
func (s *DB) KeyByHash(ctx context.Context, hash string) (keys.Record, error) {
	row := s.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, hash)
	return scanKey(row)
}

// KeyByID finds a key by id.
func (s *DB) KeyByID(ctx context.Context, id string) (keys.Record, error) {
	row := s.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id)
	return scanKey(row)
}

// ListKeys returns matching keys, newest first.
func (s *DB) ListKeys(ctx context.Context, f keys.KeyFilter) ([]keys.Record, error) {
	var where []string
	var args []any
	if f.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, f.AccountID)
	}
	if f.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, f.Kind)
	}
	if f.After != "" {
		where = append(where, "(created_at, id) < (SELECT created_at, id FROM api_keys WHERE id = ?)")
		args = append(args, f.After)
	}
	q := `SELECT ` + keyColumns + ` FROM api_keys`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []keys.Record
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks a key revoked at t. changed is false when it already
// was: the first revocation time stays, and the caller writes no second
// audit row. The condition is in the UPDATE, so of two concurrent
// revocations exactly one reports the change.
func (s *DB) RevokeKey(ctx context.Context, id string, t time.Time) (changed bool, err error) {
	return s.transitionKey(ctx, "revoke", id, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, t.UnixMilli(), id)
}

// SuspendKey suspends a key (reversible, unlike revocation). changed is
// false when it already was suspended: the first suspension (its time
// and reason) stays.
func (s *DB) SuspendKey(ctx context.Context, id string, t time.Time, reason string) (changed bool, err error) {
	return s.transitionKey(ctx, "suspend", id, `UPDATE api_keys SET suspended_at = ?, suspend_reason = ? WHERE id = ? AND suspended_at IS NULL`, t.UnixMilli(), reason, id)
}

// ResumeKey lifts a suspension; changed is false when there was none.
func (s *DB) ResumeKey(ctx context.Context, id string) (changed bool, err error) {
	return s.transitionKey(ctx, "resume", id, `UPDATE api_keys SET suspended_at = NULL, suspend_reason = '' WHERE id = ? AND suspended_at IS NOT NULL`, id)
}

// transitionKey runs a conditional state change: no row changed means
// the key is already in that state, or (ErrNotFound) does not exist.
func (s *DB) transitionKey(ctx context.Context, op, id, q string, args ...any) (bool, error) {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("%s key %s: %w", op, id, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	if _, err := s.KeyByID(ctx, id); err != nil {
		return false, fmt.Errorf("%s key %s: %w", op, id, err)
	}
	return false, nil
}

// ExpireKeyBy makes a key expire at t unless it already expires earlier
// (rotation overlap).
func (s *DB) ExpireKeyBy(ctx context.Context, id string, t time.Time) error {
	ms := t.UnixMilli()
	return s.updateKey(ctx, "expire", id, `UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < ? THEN expires_at ELSE ? END WHERE id = ?`, ms, ms, id)
}

// SetKeyRole changes an admin key's role; changed is false when it
// already had it, and for a caller key, which has no role and keeps none
// (keys.Service refuses that before it gets here). ErrNotFound: no key.
func (s *DB) SetKeyRole(ctx context.Context, id, role string) (changed bool, err error) {
	return s.transitionKey(ctx, "set role of", id, `UPDATE api_keys SET role = ? WHERE id = ? AND kind = 'admin' AND role <> ?`, role, id, role)
}

// SetKeyMetadata replaces a key's metadata (its response cache policy
// lives there). ErrNotFound: no key.
func (s *DB) SetKeyMetadata(ctx context.Context, id string, meta map[string]string) error {
	return s.updateKey(ctx, "set metadata of", id, `UPDATE api_keys SET metadata = ? WHERE id = ?`, jsonText(nonNilMap(meta)), id)
}

// RehashKey replaces a key's hash after a pepper change.
func (s *DB) RehashKey(ctx context.Context, id, hash string, pepperVersion int) error {
	return s.updateKey(ctx, "rehash", id, `UPDATE api_keys SET hash = ?, pepper_version = ? WHERE id = ?`, hash, pepperVersion, id)
}

func (s *DB) updateKey(ctx context.Context, op, id, q string, args ...any) error {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s key %s: %w", op, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s key %s: %w", op, id, ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(sc scanner) (keys.Record, error) {
	var k keys.Record
	var models, endpoints, cidrs, meta string
	var created int64
	var expires, revoked, suspended sql.NullInt64
	err := sc.Scan(&k.ID, &k.AccountID, &k.Kind, &k.Name, &k.Hash, &k.PepperVersion, &k.Hint, &models, &endpoints, &cidrs,
		&k.RPM, &k.TPM, &k.MaxConcurrent, &meta, &created, &expires, &revoked, &suspended, &k.SuspendReason, &k.RotatedFrom, &k.Role)
	if errors.Is(err, sql.ErrNoRows) {
		return keys.Record{}, ErrNotFound
	}
	if err != nil {
		return keys.Record{}, fmt.Errorf("scan key: %w", err)
	}
	for _, f := range []struct {
		name string
		raw  string
		dst  any
	}{{"allowed_models", models, &k.AllowedModels}, {"allowed_endpoints", endpoints, &k.AllowedEndpoints}, {"allowed_cidrs", cidrs, &k.AllowedCIDRs}, {"metadata", meta, &k.Metadata}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return keys.Record{}, fmt.Errorf("key %s: %s: %w", k.ID, f.name, err)
		}
	}
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.ExpiresAt = msTime(expires)
	k.RevokedAt = msTime(revoked)
	k.SuspendedAt = msTime(suspended)
	return k, nil
}

// CreateAccount inserts an account (an empty Status is keys.AccountActive).
// ErrConflict if the id or name exists.
func (s *DB) CreateAccount(ctx context.Context, a keys.Account) error {
	if a.Status == "" {
		a.Status = keys.AccountActive
	}
	_, err := s.exec(ctx, `INSERT INTO accounts (id, name, status, metadata, created_at) VALUES (?, ?, ?, ?, ?)`,
		a.ID, a.Name, a.Status, jsonText(nonNilMap(a.Metadata)), a.CreatedAt.UnixMilli())
	if isUniqueViolation(err) {
		return fmt.Errorf("create account %q: %w", a.Name, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.Name, err)
	}
	return nil
}

// AccountByID finds an account.
func (s *DB) AccountByID(ctx context.Context, id string) (keys.Account, error) {
	var a keys.Account
	var meta string
	var created int64
	err := s.queryRow(ctx, `SELECT id, name, status, metadata, created_at FROM accounts WHERE id = ?`, id).Scan(&a.ID, &a.Name, &a.Status, &meta, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return keys.Account{}, fmt.Errorf("account %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return keys.Account{}, fmt.Errorf("account %s: %w", id, err)
	}
	json.Unmarshal([]byte(meta), &a.Metadata)
	a.CreatedAt = time.UnixMilli(created).UTC()
	return a, nil
}

// ListAccounts pages through accounts by id.
func (s *DB) ListAccounts(ctx context.Context, after string, limit int) ([]keys.Account, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT id, name, status, metadata, created_at FROM accounts WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []keys.Account
	for rows.Next() {
		var a keys.Account
		var meta string
		var created int64
		if err := rows.Scan(&a.ID, &a.Name, &a.Status, &meta, &created); err != nil {
			return nil, err
		}
		json.Unmarshal([]byte(meta), &a.Metadata)
		a.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

const usageColumns = `request_id, account_id, key_id, model, provider, upstream_model, stream, prompt_tokens, completion_tokens, cached_tokens, latency_us, ttft_us, status, attempts, error_code, created_at, cost_nano, estimated, cache_write_tokens, deployment, endpoint, trace_id, cache_hit, prompt_cache_saved_nano, response_cache_saved_nano`

// usageRowsPerInsert is how many records one INSERT statement carries:
// 32 × 25 parameters stays far below SQLite's and PostgreSQL's limits.
const usageRowsPerInsert = 32

// usageColumnCount is the number of columns in usageColumns.
var usageColumnCount = strings.Count(usageColumns, ",") + 1

// insertUsageSQL is the INSERT of n usage records.
func insertUsageSQL(n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", usageColumnCount), ", ") + ")"
	return `INSERT INTO usage_records (` + usageColumns + `) VALUES ` +
		strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") + ` ON CONFLICT (request_id) DO NOTHING RETURNING request_id`
}

// InsertUsage writes a batch in one transaction (group commit), with the
// ledger debits of the records that cost something. A record whose request
// id is already stored is skipped, with its debit: a retried batch never
// counts or charges a request twice, also when two replicas store the same
// record at once. The same transaction releases the credit hold whose id
// is each stored record's request id (see HoldCredit), so no one ever sees
// a request's credit both unspent and unheld.
func (s *DB) InsertUsage(ctx context.Context, recs []books.UsageRecord) error {
	if len(recs) == 0 {
		return nil
	}
	// Insert in request-id order: two transactions storing overlapping
	// batches then wait on each other's rows in one order (PostgreSQL
	// would otherwise risk a deadlock).
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b books.UsageRecord) int { return strings.Compare(a.RequestID, b.RequestID) })
	// Typed (ErrUnavailable, ErrBadData): the recorder decides from the
	// kind whether to retry, set records aside or start an outage.
	return typed(s.inTx(ctx, func(tx *sql.Tx) error {
		// Many rows per statement: one statement's overhead (the driver's
		// call, SQLite's program start, PostgreSQL's round trip) per
		// usageRowsPerInsert records rather than per record. RETURNING
		// names the rows stored now: a request id stored before is skipped,
		// with its debit.
		isNew := make(map[string]bool, len(sorted))
		stmts := txStmts{s: s, tx: tx, hot: s.hot.usage, text: insertUsageSQL}
		defer stmts.close()
		args := make([]any, 0, usageRowsPerInsert*usageColumnCount)
		for start := 0; start < len(sorted); {
			part := sorted[start : start+piece(len(sorted)-start, usageRowsPerInsert)]
			start += len(part)
			st, err := stmts.get(ctx, len(part))
			if err != nil {
				return fmt.Errorf("insert usage: %w", err)
			}
			args = args[:0]
			for _, r := range part {
				args = append(args, r.RequestID, r.AccountID, r.KeyID, r.Model, r.Provider, r.UpstreamModel, b2i(r.Stream),
					r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.Latency.Microseconds(), r.TTFT.Microseconds(),
					r.Status, r.Attempts, r.ErrorCode, r.CreatedAt.UnixMilli(), r.CostNano, b2i(r.Estimated), r.CacheWriteTokens, r.Deployment, r.Endpoint, r.TraceID, b2i(r.CacheHit), r.PromptCacheSavedNano, r.ResponseCacheSavedNano)
			}
			rows, err := st.QueryContext(ctx, args...)
			if err != nil {
				return fmt.Errorf("insert usage %s…: %w", part[0].RequestID, err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("insert usage %s…: %w", part[0].RequestID, err)
				}
				isNew[id] = true
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("insert usage %s…: %w", part[0].RequestID, err)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("insert usage %s…: %w", part[0].RequestID, err)
			}
		}
		var debits []books.UsageDebit
		var stored []string
		for _, r := range sorted {
			if !isNew[r.RequestID] {
				continue // stored before, with its debit
			}
			delete(isNew, r.RequestID) // a request id twice in one batch: once
			stored = append(stored, r.RequestID)
			// Free requests need no ledger entry (and the write would double
			// the commit's pages); every request that cost something has one.
			if r.AccountID != "" && r.CostNano != 0 {
				debits = append(debits, books.UsageDebit{AccountID: r.AccountID, RequestID: r.RequestID, Amount: r.CostNano, KeyID: r.KeyID, At: r.CreatedAt})
			}
		}
		if len(stored) == 0 {
			return nil
		}
		return s.applyUsage(ctx, tx, debits, stored)
	}))
}

// ListUsage returns matching records, newest first.
func (s *DB) ListUsage(ctx context.Context, f books.UsageFilter) ([]books.UsageRecord, error) {
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
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	var out []books.UsageRecord
	for rows.Next() {
		var r books.UsageRecord
		var lat, ttft, created int64
		if err := rows.Scan(&r.RequestID, &r.AccountID, &r.KeyID, &r.Model, &r.Provider, &r.UpstreamModel, &r.Stream,
			&r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &lat, &ttft, &r.Status, &r.Attempts, &r.ErrorCode, &created, &r.CostNano, &r.Estimated, &r.CacheWriteTokens, &r.Deployment, &r.Endpoint, &r.TraceID, &r.CacheHit, &r.PromptCacheSavedNano, &r.ResponseCacheSavedNano); err != nil {
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
