package store

// The request log (migration 0010): usage_records read one row per
// request, newest first, with the key's and the account's names, and the
// opt-in captures of request and response bodies.
//
// Pages are keyset-paginated on (created_at, id), the order of the
// usage_records_*_time_id indexes, so every page is one range scan
// however deep it is, and rows written while someone pages never shift
// a page (they are newer than its cursor, or older than where it stops).

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor is returned (wrapped) for a cursor RequestLog did not make.
var ErrBadCursor = errors.New("bad cursor")

// RequestLogFilter selects rows of the request log; zero fields do not
// filter.
type RequestLogFilter struct {
	AccountID string
	KeyID     string
	Model     string // the public model the caller asked for
	Provider  string
	RequestID string
	// StatusMin and StatusMax bound the status, both inclusive; a zero
	// StatusMax does not filter.
	StatusMin, StatusMax int
	From                 time.Time // created_at at or after
	To                   time.Time // created_at before
	// Tail turns the list around: rows recorded after the row whose Seq
	// is AfterSeq (0: from the first), oldest first — the order they were
	// written in, which is the order requests finished. It is how a
	// follower tails the log: created_at is when a request started, so a
	// long request lands behind rows already shown.
	Tail     bool
	AfterSeq int64
}

// RequestLogRow is one request as the log shows it.
type RequestLogRow struct {
	books.UsageRecord
	KeyName     string // "" when the key no longer exists
	AccountName string
	// Captured: a capture of the request's bodies is kept (and not past
	// its retention).
	Captured bool

	// Seq is the row's id, in the order rows were recorded: the second
	// half of the cursor, and what AfterSeq continues from.
	Seq int64
}

// requestLogSelect reads a RequestLogRow; the caller appends WHERE and
// ORDER BY. The capture flag is a primary-key probe per row returned.
func (s *DB) requestLogSelect() string {
	return `SELECT u.id, ` + prefixed("u.", usageColumns) + `, COALESCE(k.name, ''), COALESCE(a.name, ''),
 CASE WHEN EXISTS (SELECT 1 FROM request_captures c WHERE c.request_id = u.request_id AND c.expires_at > (SELECT ` + s.nowMillisExpr() + `)) THEN 1 ELSE 0 END
 FROM usage_records u
 LEFT JOIN api_keys k ON k.id = u.key_id
 LEFT JOIN accounts a ON a.id = u.account_id`
}

// prefixed qualifies each column of a comma-separated list with p.
func prefixed(p, cols string) string {
	return p + strings.ReplaceAll(cols, ", ", ", "+p)
}

// RequestLog returns up to limit rows matching f, newest first (by
// created_at, then id), continuing after cursor ("" for the first page).
// next is the cursor of the following page, "" when this one is the last.
// A cursor is opaque: what next was, never anything built by hand
// (ErrBadCursor).
func (s *DB) RequestLog(ctx context.Context, f RequestLogFilter, cursor string, limit int) (rows []RequestLogRow, next string, err error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("request log: limit %d, want at least 1", limit)
	}
	q, args, err := s.requestLogSQL(f, cursor, limit+1)
	if err != nil {
		return nil, "", err
	}
	rs, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("request log: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		r, err := scanRequestLog(rs)
		if err != nil {
			return nil, "", fmt.Errorf("request log: %w", err)
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, "", fmt.Errorf("request log: %w", err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		if f.Tail {
			next = strconv.FormatInt(last.Seq, 10) // more after this one
		} else {
			next = encodeCursor(last.CreatedAt.UnixMilli(), last.Seq)
		}
	}
	return rows, next, nil
}

// requestLogSQL builds RequestLog's statement (fetching up to limit rows).
func (s *DB) requestLogSQL(f RequestLogFilter, cursor string, limit int) (string, []any, error) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("u.request_id", f.RequestID)
	eq("u.account_id", f.AccountID)
	eq("u.key_id", f.KeyID)
	eq("u.model", f.Model)
	eq("u.provider", f.Provider)
	if f.StatusMax > 0 {
		where = append(where, "u.status BETWEEN ? AND ?")
		args = append(args, f.StatusMin, f.StatusMax)
	}
	if !f.From.IsZero() {
		where = append(where, "u.created_at >= ?")
		args = append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		where = append(where, "u.created_at < ?")
		args = append(args, f.To.UnixMilli())
	}
	if f.Tail {
		where = append(where, "u.id > ?")
		args = append(args, f.AfterSeq)
		cursor = "" // the sequence is the cursor
	}
	if cursor != "" {
		ms, id, err := decodeCursor(cursor)
		if err != nil {
			return "", nil, err
		}
		// A row value: both backends range-scan the (…, created_at, id)
		// index from the cursor on.
		where = append(where, "(u.created_at, u.id) < (?, ?)")
		args = append(args, ms, id)
	}
	q := s.requestLogSelect()
	if len(where) > 0 {
		q += "\n WHERE " + strings.Join(where, " AND ")
	}
	if f.Tail {
		q += "\n ORDER BY u.id LIMIT ?"
	} else {
		q += "\n ORDER BY u.created_at DESC, u.id DESC LIMIT ?"
	}
	args = append(args, limit)
	return q, args, nil
}

// RequestLogEntry reads one request by its id. ErrNotFound when no such
// request was recorded.
func (s *DB) RequestLogEntry(ctx context.Context, requestID string) (RequestLogRow, error) {
	r, err := scanRequestLog(s.queryRow(ctx, s.requestLogSelect()+"\n WHERE u.request_id = ?", requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return RequestLogRow{}, fmt.Errorf("request %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return RequestLogRow{}, fmt.Errorf("request %s: %w", requestID, err)
	}
	return r, nil
}

func scanRequestLog(sc scanner) (RequestLogRow, error) {
	var r RequestLogRow
	var lat, ttft, created int64
	var captured int64
	if err := sc.Scan(&r.Seq, &r.RequestID, &r.AccountID, &r.KeyID, &r.Model, &r.Provider, &r.UpstreamModel, &r.Stream,
		&r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &lat, &ttft, &r.Status, &r.Attempts, &r.ErrorCode, &created,
		&r.CostNano, &r.Estimated, &r.CacheWriteTokens, &r.Deployment, &r.Endpoint, &r.TraceID, &r.CacheHit, &r.PromptCacheSavedNano, &r.ResponseCacheSavedNano,
		&r.KeyName, &r.AccountName, &captured); err != nil {
		return RequestLogRow{}, err
	}
	r.Latency = time.Duration(lat) * time.Microsecond
	r.TTFT = time.Duration(ttft) * time.Microsecond
	r.CreatedAt = time.UnixMilli(created).UTC()
	r.Captured = captured != 0
	return r, nil
}

// encodeCursor and decodeCursor: "<created_at ms>:<id>", base64url, so
// that callers treat it as the opaque token it is.
func encodeCursor(ms, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ms, 10) + ":" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (ms, id int64, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, fmt.Errorf("request log cursor: %w", ErrBadCursor)
	}
	a, b, ok := strings.Cut(string(raw), ":")
	ms, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || id < 1 {
		return 0, 0, fmt.Errorf("request log cursor: %w", ErrBadCursor)
	}
	return ms, id, nil
}

// PutCaptureSetting creates or replaces an account's setting.
func (s *DB) PutCaptureSetting(ctx context.Context, c books.CaptureSetting) error {
	if c.AccountID == "" || c.Retention <= 0 || c.MaxBytes < 1 {
		return fmt.Errorf("capture setting of %q: need an account, a retention and max bytes", c.AccountID)
	}
	_, err := s.exec(ctx, `INSERT INTO capture_settings (account_id, enabled, retention_ms, max_bytes, updated_at) VALUES (?, ?, ?, ?, ?)
 ON CONFLICT (account_id) DO UPDATE SET enabled = excluded.enabled, retention_ms = excluded.retention_ms, max_bytes = excluded.max_bytes, updated_at = excluded.updated_at`,
		c.AccountID, b2i(c.Enabled), c.Retention.Milliseconds(), c.MaxBytes, c.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("capture setting of %s: %w", c.AccountID, err)
	}
	return nil
}

const captureSettingColumns = `account_id, enabled, retention_ms, max_bytes, updated_at`

// CaptureSetting reads an account's setting. ErrNotFound when it has none
// (capture is off).
func (s *DB) CaptureSetting(ctx context.Context, accountID string) (books.CaptureSetting, error) {
	c, err := scanCaptureSetting(s.queryRow(ctx, `SELECT `+captureSettingColumns+` FROM capture_settings WHERE account_id = ?`, accountID))
	if errors.Is(err, sql.ErrNoRows) {
		return books.CaptureSetting{}, fmt.Errorf("capture setting of %s: %w", accountID, ErrNotFound)
	}
	if err != nil {
		return books.CaptureSetting{}, fmt.Errorf("capture setting of %s: %w", accountID, err)
	}
	return c, nil
}

// CaptureSettings lists the accounts whose capture is on (a handful at
// most: the gateway keeps them in memory).
func (s *DB) CaptureSettings(ctx context.Context) ([]books.CaptureSetting, error) {
	rows, err := s.query(ctx, `SELECT `+captureSettingColumns+` FROM capture_settings WHERE enabled = 1 ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("capture settings: %w", err)
	}
	defer rows.Close()
	var out []books.CaptureSetting
	for rows.Next() {
		c, err := scanCaptureSetting(rows)
		if err != nil {
			return nil, fmt.Errorf("capture settings: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func scanCaptureSetting(sc scanner) (books.CaptureSetting, error) {
	var c books.CaptureSetting
	var enabled, retention, updated int64
	if err := sc.Scan(&c.AccountID, &enabled, &retention, &c.MaxBytes, &updated); err != nil {
		return books.CaptureSetting{}, err
	}
	c.Enabled = enabled != 0
	c.Retention = time.Duration(retention) * time.Millisecond
	c.UpdatedAt = time.UnixMilli(updated).UTC()
	return c, nil
}

// InsertCaptures writes a batch of captures in one transaction; a capture
// whose request id is stored already is skipped (a retried batch). Text
// PostgreSQL would refuse (invalid UTF-8, NUL) is replaced, on both
// backends alike.
func (s *DB) InsertCaptures(ctx context.Context, caps []books.RequestCapture) error {
	if len(caps) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := s.txPrepare(ctx, tx, `INSERT INTO request_captures (request_id, account_id, request_body, response_body, truncated, created_at, expires_at)
 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("insert captures: %w", err)
		}
		defer stmt.Close()
		for _, c := range caps {
			if _, err := stmt.ExecContext(ctx, c.RequestID, c.AccountID, storableText(c.Request), storableText(c.Response), b2i(c.Truncated),
				c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli()); err != nil {
				return fmt.Errorf("insert capture %s: %w", c.RequestID, err)
			}
		}
		return nil
	})
}

// storableText is s as both backends store it: valid UTF-8 without NUL.
func storableText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

// RequestCaptureOf reads the capture of a request. ErrNotFound when there
// is none or it is past its retention.
func (s *DB) RequestCaptureOf(ctx context.Context, requestID string) (books.RequestCapture, error) {
	var c books.RequestCapture
	var truncated, created, expires int64
	err := s.queryRow(ctx, `SELECT request_id, account_id, request_body, response_body, truncated, created_at, expires_at
 FROM request_captures WHERE request_id = ? AND expires_at > (SELECT `+s.nowMillisExpr()+`)`, requestID).
		Scan(&c.RequestID, &c.AccountID, &c.Request, &c.Response, &truncated, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return books.RequestCapture{}, fmt.Errorf("capture of %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return books.RequestCapture{}, fmt.Errorf("capture of %s: %w", requestID, err)
	}
	c.Truncated = truncated != 0
	c.CreatedAt = time.UnixMilli(created).UTC()
	c.ExpiresAt = time.UnixMilli(expires).UTC()
	return c, nil
}

// SweepCaptures deletes captures whose retention ended before now, at
// most batch rows per statement, until a batch comes back short; it
// returns the number deleted. Replicas may sweep concurrently (as
// SweepResponses).
func (s *DB) SweepCaptures(ctx context.Context, now time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("sweep captures: batch %d, want at least 1", batch)
	}
	q := `DELETE FROM request_captures WHERE request_id IN (
    SELECT request_id FROM request_captures WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`
	if s.isPostgres() {
		q = `DELETE FROM request_captures WHERE request_id = ANY(ARRAY(
    SELECT request_id FROM request_captures WHERE expires_at < ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED))`
	}
	total := 0
	for {
		res, err := s.exec(ctx, q, now.UnixMilli(), batch)
		if err != nil {
			return total, fmt.Errorf("sweep captures: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sweep captures: %w", err)
		}
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}
