package store

import (
	"context"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testUsage struct {
	account, key, model, provider string
	at                            time.Time
	latency                       time.Duration
	status                        int
	prompt, completion, cached    int
	cost                          int64
}

func insertTestUsage(t *testing.T, db *DB, recs []testUsage) {
	t.Helper()
	for i, r := range recs {
		_, err := db.exec(context.Background(), `INSERT INTO usage_records (request_id, account_id, key_id, model, provider, prompt_tokens, completion_tokens, cached_tokens, latency_us, status, cost_nano, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("req_%d", i), r.account, r.key, r.model, r.provider,
			r.prompt, r.completion, r.cached, r.latency.Microseconds(), r.status, r.cost, r.at.UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

const ms = time.Millisecond

func TestUsageReport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		recs := []testUsage{
			// account a, key a1: two records just before midnight UTC, two after.
			{"acct_a", "key_a1", "gpt-4o", "openai", utc("2026-11-01T23:30:00Z"), 40 * ms, 200, 100, 10, 0, 1000},
			{"acct_a", "key_a1", "gpt-4o", "openai", utc("2026-11-01T23:59:59.999Z"), 10 * ms, 200, 200, 20, 50, 2000},
			{"acct_a", "key_a1", "gpt-4o", "openai", utc("2026-11-02T00:00:00Z"), 30 * ms, 500, 0, 0, 0, 0},
			{"acct_a", "key_a1", "gpt-4o", "openai", utc("2026-11-02T00:10:00Z"), 20 * ms, 200, 300, 30, 0, 3000},
			// account a, key a2: another model and provider.
			{"acct_a", "key_a2", "claude", "anthropic", utc("2026-11-01T23:45:00Z"), 100 * ms, 429, 0, 0, 0, 0},
			{"acct_a", "key_a2", "claude", "anthropic", utc("2026-11-02T00:30:00Z"), 5 * ms, 200, 10, 5, 0, 500},
			// Outside [2026-11-01, 2026-11-03): never counted.
			{"acct_a", "key_a1", "gpt-4o", "openai", utc("2026-10-31T23:59:59.999Z"), 1 * ms, 200, 1000, 1000, 0, 99999},
			{"acct_b", "key_b1", "gpt-4o", "openai", utc("2026-11-03T00:00:00Z"), 1 * ms, 200, 1000, 1000, 0, 99999},
		}
		// account b: 20 requests with latencies 1..20ms, inserted out of order.
		for _, i := range []int{7, 19, 0, 13, 2, 18, 5, 11, 1, 16, 9, 3, 14, 6, 17, 10, 4, 12, 8, 15} {
			recs = append(recs, testUsage{"acct_b", "key_b1", "gpt-4o", "openai", utc("2026-11-02T01:00:00Z").Add(time.Duration(i) * time.Second),
				time.Duration(i+1) * ms, 200, 1, 1, 0, 7})
		}
		insertTestUsage(t, db, recs)

		from, to := utc("2026-11-01T00:00:00Z"), utc("2026-11-03T00:00:00Z")
		nov1, nov2 := utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")
		acctB := books.ReportRow{AccountID: "acct_b", Requests: 20, PromptTokens: 20, CompletionTokens: 20, CostNano: 140, LatencyP50: 10 * ms, LatencyP95: 19 * ms}

		tests := []struct {
			name string
			q    books.ReportQuery
			want []books.ReportRow
		}{
			{
				// 26 latencies in order: 1,2,3,4,5,5,6,7,8,9,10,10,11,…,19,20,20,30,40,100.
				// p50 is rank ceil(13) = 13th = 11ms; p95 rank ceil(24.7) = 25th = 40ms.
				name: "totals",
				q:    books.ReportQuery{From: from, To: to},
				want: []books.ReportRow{{Requests: 26, Errors: 2, PromptTokens: 630, CompletionTokens: 85, CachedTokens: 50, CostNano: 6640, LatencyP50: 11 * ms, LatencyP95: 40 * ms}},
			},
			{
				// acct_a latencies 5,10,20,30,40,100: p50 rank 3, p95 rank 6.
				name: "by account",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByAccount}, From: from, To: to},
				want: []books.ReportRow{
					{AccountID: "acct_a", Requests: 6, Errors: 2, PromptTokens: 610, CompletionTokens: 65, CachedTokens: 50, CostNano: 6500, LatencyP50: 20 * ms, LatencyP95: 100 * ms},
					acctB,
				},
			},
			{
				name: "by account and day, across midnight UTC",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByAccount, books.ByDay}, From: from, To: to},
				want: []books.ReportRow{
					{AccountID: "acct_a", Bucket: nov1, Requests: 3, Errors: 1, PromptTokens: 300, CompletionTokens: 30, CachedTokens: 50, CostNano: 3000, LatencyP50: 40 * ms, LatencyP95: 100 * ms},
					{AccountID: "acct_a", Bucket: nov2, Requests: 3, Errors: 1, PromptTokens: 310, CompletionTokens: 35, CostNano: 3500, LatencyP50: 20 * ms, LatencyP95: 30 * ms},
					func() books.ReportRow { r := acctB; r.Bucket = nov2; return r }(),
				},
			},
			{
				name: "by hour for one key, across midnight UTC",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByHour}, From: from, To: to, KeyID: "key_a1"},
				want: []books.ReportRow{
					{Bucket: utc("2026-11-01T23:00:00Z"), Requests: 2, PromptTokens: 300, CompletionTokens: 30, CachedTokens: 50, CostNano: 3000, LatencyP50: 10 * ms, LatencyP95: 40 * ms},
					{Bucket: utc("2026-11-02T00:00:00Z"), Requests: 2, Errors: 1, PromptTokens: 300, CompletionTokens: 30, CostNano: 3000, LatencyP50: 20 * ms, LatencyP95: 30 * ms},
				},
			},
			{
				name: "by model and provider within one account",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByModel, books.ByProvider}, From: from, To: to, AccountID: "acct_a"},
				want: []books.ReportRow{
					{Model: "claude", Provider: "anthropic", Requests: 2, Errors: 1, PromptTokens: 10, CompletionTokens: 5, CostNano: 500, LatencyP50: 5 * ms, LatencyP95: 100 * ms},
					{Model: "gpt-4o", Provider: "openai", Requests: 4, Errors: 1, PromptTokens: 600, CompletionTokens: 60, CachedTokens: 50, CostNano: 6000, LatencyP50: 20 * ms, LatencyP95: 40 * ms},
				},
			},
			{
				name: "by key, filtered by model and provider",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByKey}, From: from, To: to, Model: "gpt-4o", Provider: "openai"},
				want: []books.ReportRow{
					{KeyID: "key_a1", Requests: 4, Errors: 1, PromptTokens: 600, CompletionTokens: 60, CachedTokens: 50, CostNano: 6000, LatencyP50: 20 * ms, LatencyP95: 40 * ms},
					{KeyID: "key_b1", Requests: 20, PromptTokens: 20, CompletionTokens: 20, CostNano: 140, LatencyP50: 10 * ms, LatencyP95: 19 * ms},
				},
			},
			{
				name: "from is inclusive, to exclusive",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByKey}, From: utc("2026-11-02T00:00:00Z"), To: utc("2026-11-02T00:10:00Z")},
				want: []books.ReportRow{{KeyID: "key_a1", Requests: 1, Errors: 1, LatencyP50: 30 * ms, LatencyP95: 30 * ms}},
			},
			{
				name: "another account's key under an account filter",
				q:    books.ReportQuery{GroupBy: []books.Dimension{books.ByKey}, From: from, To: to, AccountID: "acct_a", KeyID: "key_b1"},
				want: nil,
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.UsageReport(context.Background(), tc.q)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("report:\n got %+v\nwant %+v", got, tc.want)
				}
			})
		}
	})
}

func TestUsageReportRejectsBadDimensions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		for _, g := range [][]books.Dimension{{"color"}, {books.ByModel, books.ByModel}, {books.ByDay, books.ByHour}} {
			if _, err := db.UsageReport(context.Background(), books.ReportQuery{GroupBy: g}); err == nil {
				t.Errorf("group by %v: no error", g)
			}
		}
	})
}

// TestUsageReportUsesIndexes checks the query plan: a range scan of the
// right index, never a scan of the whole table.
func TestUsageReportUsesIndexes(t *testing.T) {
	// SQLite only: the plan's text is SQLite's EXPLAIN QUERY PLAN.
	db, _ := openSQLiteTest(t)
	from, to := utc("2026-11-01T00:00:00Z"), utc("2026-12-01T00:00:00Z")
	tests := []struct {
		name  string
		q     books.ReportQuery
		index string
	}{
		{"time range", books.ReportQuery{GroupBy: []books.Dimension{books.ByModel, books.ByDay}, From: from, To: to}, "usage_records_time_id"},
		{"time range and model", books.ReportQuery{GroupBy: []books.Dimension{books.ByAccount}, From: from, To: to, Model: "gpt-4o"}, "usage_records_time_id"},
		{"account", books.ReportQuery{GroupBy: []books.Dimension{books.ByKey, books.ByHour}, From: from, To: to, AccountID: "acct_a"}, "usage_records_account_time_id"},
		{"key", books.ReportQuery{From: from, To: to, KeyID: "key_a1"}, "usage_records_key_time_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, args, err := reportSQL(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := db.query(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			all := strings.Join(plan, "\n")
			if !strings.Contains(all, "SEARCH usage_records USING INDEX "+tc.index+" ") || strings.Contains(all, "SCAN usage_records") {
				t.Fatalf("plan does not range-scan %s:\n%s", tc.index, all)
			}
		})
	}
}

// TestUsageReportPromptCache: the prompt cache's counts and savings go in
// with the records (migration 0019) and come out summed per account, key
// and model, and on the request log's rows. A session's first turn writes
// 1,332 tokens (costing 999,000 nano-USD more than uncached at 3 vs 3.75
// USD/M), its second reads them (1,332 × 2.7 USD/M saved, less 12 written
// at 0.75 more): 2,588,400 saved in all.
func TestUsageReportPromptCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		at := utc("2026-11-02T10:00:00Z")
		recs := []books.UsageRecord{
			{RequestID: "req_pc1", AccountID: "acct_a", KeyID: "key_a1", Model: "claude", Provider: "anthropic", Status: 200, CreatedAt: at,
				PromptTokens: 1332, CompletionTokens: 16, CacheWriteTokens: 1332, PromptCacheSavedNano: -999_000},
			{RequestID: "req_pc2", AccountID: "acct_a", KeyID: "key_a1", Model: "claude", Provider: "anthropic", Status: 200, CreatedAt: at.Add(time.Second),
				PromptTokens: 1344, CompletionTokens: 16, CachedTokens: 1332, CacheWriteTokens: 12, PromptCacheSavedNano: 3_587_400},
			{RequestID: "req_pc3", AccountID: "acct_a", KeyID: "key_a2", Model: "claude", Provider: "anthropic", Status: 200, CreatedAt: at.Add(2 * time.Second),
				PromptTokens: 500, CompletionTokens: 16},
		}
		if err := db.InsertUsage(ctx, recs); err != nil {
			t.Fatal(err)
		}
		got, err := db.UsageReport(ctx, books.ReportQuery{GroupBy: []books.Dimension{books.ByAccount, books.ByKey, books.ByModel}, From: at.Add(-time.Hour), To: at.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("rows %+v", got)
		}
		k1, k2 := got[0], got[1]
		if k1.KeyID != "key_a1" || k1.PromptTokens != 2676 || k1.CachedTokens != 1332 || k1.CacheWriteTokens != 1344 || k1.PromptCacheSavedNano != 2_588_400 {
			t.Fatalf("key_a1 %+v", k1)
		}
		if k2.KeyID != "key_a2" || k2.CachedTokens != 0 || k2.CacheWriteTokens != 0 || k2.PromptCacheSavedNano != 0 {
			t.Fatalf("key_a2 %+v", k2)
		}
		rows, _, err := db.RequestLog(ctx, RequestLogFilter{RequestID: "req_pc2"}, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].CachedTokens != 1332 || rows[0].CacheWriteTokens != 12 || rows[0].PromptCacheSavedNano != 3_587_400 {
			t.Fatalf("request log %+v", rows)
		}
		listed, err := db.ListUsage(ctx, books.UsageFilter{RequestID: "req_pc1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(listed) != 1 || listed[0].PromptCacheSavedNano != -999_000 {
			t.Fatalf("usage %+v", listed)
		}
	})
}
