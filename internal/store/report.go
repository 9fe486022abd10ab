package store

import (
	"context"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"strings"
	"time"
)

// dimExpr is each dimension's SQL expression. created_at is unix ms, so a
// UTC day or hour starts where the remainder is zero: plain integer
// arithmetic, the same on both backends (no date functions, no time zone).
// Text sorts bytewise on both (PostgreSQL's columns are COLLATE "C").
var dimExpr = map[books.Dimension]string{
	books.ByAccount:  "account_id",
	books.ByKey:      "key_id",
	books.ByModel:    "model",
	books.ByProvider: "provider",
	books.ByDay:      "(created_at - created_at % 86400000)",
	books.ByHour:     "(created_at - created_at % 3600000)",
}

// UsageReport aggregates usage records per group, ordered by the group
// values. Percentiles are exact: one window pass sorts each group's
// latencies inside the database and only the two rows at the p50 and p95
// ranks come back, so the answer is at most two rows per group whatever the
// number of records. The range and account/key filters use the
// (created_at), (account_id, created_at) and (key_id, created_at) indexes.
func (s *DB) UsageReport(ctx context.Context, q books.ReportQuery) ([]books.ReportRow, error) {
	query, args, err := reportSQL(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	defer rows.Close()

	var out []books.ReportRow
	strs := make([]string, len(q.GroupBy))
	var bucket int64
	var n, rn, latency int64
	var r books.ReportRow
	dest := make([]any, 0, len(q.GroupBy)+11)
	for i, d := range q.GroupBy {
		if d == books.ByDay || d == books.ByHour {
			dest = append(dest, &bucket)
		} else {
			dest = append(dest, &strs[i])
		}
	}
	dest = append(dest, &n, &r.Errors, &r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &r.CacheWriteTokens, &r.CostNano, &r.PromptCacheSavedNano, &r.CacheHits, &r.ResponseCacheSavedNano, &rn, &latency)
	for rows.Next() {
		r = books.ReportRow{}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("usage report: scan: %w", err)
		}
		r.Requests = n
		for i, d := range q.GroupBy {
			switch d {
			case books.ByAccount:
				r.AccountID = strs[i]
			case books.ByKey:
				r.KeyID = strs[i]
			case books.ByModel:
				r.Model = strs[i]
			case books.ByProvider:
				r.Provider = strs[i]
			case books.ByDay, books.ByHour:
				r.Bucket = time.UnixMilli(bucket).UTC()
			}
		}
		// A group comes back as one row (both ranks equal) or two in a row.
		if k := len(out); k > 0 && sameGroup(out[k-1], r) {
			r = out[k-1]
			out = out[:k-1]
		}
		lat := time.Duration(latency) * time.Microsecond
		if rn == rank(n, 50) {
			r.LatencyP50 = lat
		}
		if rn == rank(n, 95) {
			r.LatencyP95 = lat
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return out, nil
}

// rank is the nearest-rank position of percentile p among n values,
// ceil(p·n/100); the SQL computes the same with integers.
func rank(n, p int64) int64 { return (n*p + 99) / 100 }

func sameGroup(a, b books.ReportRow) bool {
	return a.AccountID == b.AccountID && a.KeyID == b.KeyID && a.Model == b.Model && a.Provider == b.Provider && a.Bucket.Equal(b.Bucket)
}

// reportSQL builds the report query: the inner query computes, per row,
// its rank by latency in its group and the group's totals (one window, so
// one sort); the outer keeps the rows at the p50 and p95 ranks.
func reportSQL(q books.ReportQuery) (string, []any, error) {
	seen := map[books.Dimension]bool{}
	var groups, aliases []string
	for i, d := range q.GroupBy {
		expr, ok := dimExpr[d]
		if !ok {
			return "", nil, fmt.Errorf("usage report: unknown dimension %q", d)
		}
		if seen[d] {
			return "", nil, fmt.Errorf("usage report: dimension %q listed twice", d)
		}
		seen[d] = true
		groups = append(groups, expr)
		aliases = append(aliases, fmt.Sprintf("g%d", i))
	}
	if seen[books.ByDay] && seen[books.ByHour] {
		return "", nil, fmt.Errorf("usage report: group by day or by hour, not both")
	}

	var where []string
	var args []any
	for _, f := range []struct{ col, val string }{
		{"account_id", q.AccountID}, {"key_id", q.KeyID}, {"model", q.Model}, {"provider", q.Provider},
	} {
		if f.val != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.val)
		}
	}
	if !q.From.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, q.To.UnixMilli())
	}

	var b strings.Builder
	b.WriteString("SELECT ")
	for _, a := range aliases {
		b.WriteString(a + ", ")
	}
	b.WriteString("n, errors, prompt, completion, cached, cache_write, cost, cache_saved, hits, saved, rn, latency_us FROM (SELECT ")
	for i, g := range groups {
		b.WriteString(g + " AS " + aliases[i] + ", ")
	}
	b.WriteString(`latency_us,
  ROW_NUMBER() OVER w AS rn,
  COUNT(*) OVER w AS n,
  CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) OVER w AS BIGINT) AS errors,
  CAST(SUM(prompt_tokens) OVER w AS BIGINT) AS prompt,
  CAST(SUM(completion_tokens) OVER w AS BIGINT) AS completion,
  CAST(SUM(cached_tokens) OVER w AS BIGINT) AS cached,
  CAST(SUM(cache_write_tokens) OVER w AS BIGINT) AS cache_write,
  CAST(SUM(cost_nano) OVER w AS BIGINT) AS cost,
  CAST(SUM(prompt_cache_saved_nano) OVER w AS BIGINT) AS cache_saved,
  CAST(SUM(cache_hit) OVER w AS BIGINT) AS hits,
  CAST(SUM(response_cache_saved_nano) OVER w AS BIGINT) AS saved
FROM usage_records`)
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" WINDOW w AS (")
	if len(groups) > 0 {
		b.WriteString("PARTITION BY " + strings.Join(groups, ", ") + " ")
	}
	b.WriteString("ORDER BY latency_us ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
	b.WriteString(") AS ranked WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 95 + 99) / 100 ORDER BY ")
	for _, a := range aliases {
		b.WriteString(a + ", ")
	}
	b.WriteString("rn")
	return b.String(), args, nil
}
