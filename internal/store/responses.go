package store

// Stored Responses API answers (migration 0007): GET /v1/responses/{id},
// DELETE, its input items, and previous_response_id, which rebuilds a
// conversation from the chain of stored turns.
//
// Every read is scoped to the owning account, and a row another account
// owns, a row past its retention end and a row that never existed all
// answer ErrNotFound: a caller cannot probe for other accounts' ids.
//
// Readers decide expiry by the database's clock, as credit holds do: two
// replicas answering for one conversation agree on which turns still
// exist whatever their own clocks say. The sweep takes the time it
// deletes before from its caller; it only reclaims space, and a row it
// has not reached yet is already invisible.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// StoredResponse is one Responses API answer kept for retrieval and for
// continuing its conversation (previous_response_id).
type StoredResponse struct {
	ID         string // "resp_…", primary key
	AccountID  string // owner; every read is scoped to it
	KeyID      string
	PreviousID string // previous_response_id ("" when none)
	Model      string // public model name the caller asked for
	Status     string // completed, incomplete, failed, ...
	Input      []byte // JSON array: this turn's input items (each with an "id")
	Output     []byte // JSON array: the response's output items
	Response   []byte // the whole response object, as answered
	CreatedAt  time.Time
	ExpiresAt  time.Time // retention end; a row past it is gone for readers
}

const responseColumns = `id, account_id, key_id, previous_id, model, status, input_items, output_items, response_body, created_at, expires_at`

// nowMillisExpr is the database's current time in unix milliseconds, as
// SQL (see pgNowMillis).
func (s *DB) nowMillisExpr() string {
	if s.isPostgres() {
		return pgNowMillis
	}
	return sqliteNowMillis
}

// SaveResponse stores r. ErrConflict when the id exists (in any account).
// The payloads must be valid UTF-8 JSON, Input and Output arrays (empty
// means []) and Response an object: PostgreSQL's text refuses what SQLite
// would keep (a NUL byte, invalid UTF-8), so both backends are held to
// what both accept, and a bad payload fails here rather than on a later
// read. The caller checks that PreviousID is r's account's; ResponseChain
// never crosses accounts either way.
func (s *DB) SaveResponse(ctx context.Context, r StoredResponse) error {
	if r.ID == "" || r.AccountID == "" || r.ExpiresAt.IsZero() {
		return fmt.Errorf("save response %q of %q: need an id, an account and a retention end", r.ID, r.AccountID)
	}
	if len(r.Input) == 0 {
		r.Input = []byte("[]")
	}
	if len(r.Output) == 0 {
		r.Output = []byte("[]")
	}
	for _, p := range []struct {
		name string
		data []byte
		open byte
	}{{"input", r.Input, '['}, {"output", r.Output, '['}, {"response", r.Response, '{'}} {
		if err := checkJSONPayload(p.data, p.open); err != nil {
			return fmt.Errorf("save response %s: %s: %w", r.ID, p.name, err)
		}
	}
	// Strings, not []byte: SQLite would store a []byte as a BLOB, and pgx's
	// simple protocol would send it as bytea.
	_, err := s.exec(ctx, `INSERT INTO responses (`+responseColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.AccountID, r.KeyID, r.PreviousID, r.Model, r.Status, string(r.Input), string(r.Output), string(r.Response),
		r.CreatedAt.UnixMilli(), r.ExpiresAt.UnixMilli())
	if isUniqueViolation(err) {
		return fmt.Errorf("save response %s: %w", r.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save response %s: %w", r.ID, err)
	}
	return nil
}

// checkJSONPayload reports whether data is UTF-8 JSON whose value opens
// with open ('[' or '{').
func checkJSONPayload(data []byte, open byte) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	if !json.Valid(data) { // also refuses a raw control character such as NUL
		return errors.New("not valid JSON")
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); t[0] != open {
		return fmt.Errorf("JSON value does not start with %q", open)
	}
	return nil
}

// GetResponse reads the response id of accountID. ErrNotFound when it is
// absent, expired, or another account's (never distinguishable).
func (s *DB) GetResponse(ctx context.Context, accountID, id string) (StoredResponse, error) {
	row := s.queryRow(ctx, `SELECT `+responseColumns+` FROM responses
 WHERE id = ? AND account_id = ? AND expires_at > (SELECT `+s.nowMillisExpr()+`)`, id, accountID)
	r, err := scanResponse(row)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredResponse{}, fmt.Errorf("response %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return StoredResponse{}, fmt.Errorf("response %s: %w", id, err)
	}
	return r, nil
}

// DeleteResponse deletes the response id of accountID. ErrNotFound when
// it is absent, expired, or another account's. An expired row is left to
// the sweep.
func (s *DB) DeleteResponse(ctx context.Context, accountID, id string) error {
	res, err := s.exec(ctx, `DELETE FROM responses
 WHERE id = ? AND account_id = ? AND expires_at > (SELECT `+s.nowMillisExpr()+`)`, id, accountID)
	if err != nil {
		return fmt.Errorf("delete response %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete response %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete response %s: %w", id, ErrNotFound)
	}
	return nil
}

// ResponseChain returns the conversation ending at id, oldest first: id's
// row and its ancestors through PreviousID, at most maxDepth rows (the
// newest ones). ErrNotFound when id itself is not readable by accountID.
// The walk stops at an ancestor that is missing, expired or another
// account's (a deleted earlier turn drops that part of the context, it
// does not break the conversation). One query (WITH RECURSIVE), not one
// per turn.
//
// The walk carries only ids, reads the clock once, and never takes more
// than maxDepth steps, so a cycle (which callers never create, but an
// edit of the database could) ends it; each row is returned once, at its
// first (newest) position, which keeps exactly the turns before the cycle
// closes.
func (s *DB) ResponseChain(ctx context.Context, accountID, id string, maxDepth int) ([]StoredResponse, error) {
	if maxDepth < 1 {
		return nil, fmt.Errorf("response chain %s: maxDepth %d, want at least 1", id, maxDepth)
	}
	rows, err := s.query(ctx, `WITH RECURSIVE chain (id, previous_id, depth, now_ms) AS (
    SELECT r.id, r.previous_id, 1, n.ms
      FROM responses r, (SELECT `+s.nowMillisExpr()+` AS ms) n
     WHERE r.id = ? AND r.account_id = ? AND r.expires_at > n.ms
    UNION ALL
    SELECT r.id, r.previous_id, c.depth + 1, c.now_ms
      FROM chain c JOIN responses r ON r.id = c.previous_id
     WHERE c.depth < ? AND r.account_id = ? AND r.expires_at > c.now_ms
)
SELECT `+responseColumns+`
  FROM (SELECT id AS chain_id, MIN(depth) AS chain_depth FROM chain GROUP BY id) c
  JOIN responses ON id = c.chain_id
 ORDER BY c.chain_depth DESC`, id, accountID, maxDepth, accountID)
	if err != nil {
		return nil, fmt.Errorf("response chain %s: %w", id, err)
	}
	defer rows.Close()
	var out []StoredResponse
	for rows.Next() {
		r, err := scanResponse(rows)
		if err != nil {
			return nil, fmt.Errorf("response chain %s: %w", id, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("response chain %s: %w", id, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("response chain %s: %w", id, ErrNotFound)
	}
	return out, nil
}

// SweepResponses deletes rows whose retention ended before now, at most
// batch rows per statement, until a batch comes back short; it returns
// the number deleted. Replicas may sweep concurrently.
//
// Each batch is one statement, committed alone, so a sweep never holds
// many row locks for long. On PostgreSQL a batch passes over rows another
// transaction has locked (SKIP LOCKED): two sweepers take disjoint rows,
// and neither waits on a DeleteResponse. A sweeper that comes back short
// stops: the rows it passed over are being deleted by whoever holds them
// (or, after a rollback, by the next sweep).
func (s *DB) SweepResponses(ctx context.Context, now time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("sweep responses: batch %d, want at least 1", batch)
	}
	q := `DELETE FROM responses WHERE id IN (
    SELECT id FROM responses WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`
	if s.isPostgres() {
		// The ids as an array (computed once, before the delete) keep the
		// delete on the primary key whatever the planner's statistics say;
		// with IN, a narrow or freshly loaded table can get a full scan.
		q = `DELETE FROM responses WHERE id = ANY(ARRAY(
    SELECT id FROM responses WHERE expires_at < ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED))`
	}
	total := 0
	for {
		res, err := s.exec(ctx, q, now.UnixMilli(), batch)
		if err != nil {
			return total, fmt.Errorf("sweep responses: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sweep responses: %w", err)
		}
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}

func scanResponse(sc scanner) (StoredResponse, error) {
	var r StoredResponse
	var created, expires int64
	// database/sql copies the text into each []byte.
	if err := sc.Scan(&r.ID, &r.AccountID, &r.KeyID, &r.PreviousID, &r.Model, &r.Status, &r.Input, &r.Output, &r.Response, &created, &expires); err != nil {
		return StoredResponse{}, err
	}
	r.CreatedAt = time.UnixMilli(created).UTC()
	r.ExpiresAt = time.UnixMilli(expires).UTC()
	return r, nil
}
