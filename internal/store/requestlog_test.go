package store

import (
	"context"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

var logT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// seedRequestLog stores 30 requests of two accounts and three keys, with
// several sharing a created_at (the cursor's id half must break the tie),
// and returns them newest first as the log orders them.
func seedRequestLog(t *testing.T, db *DB) []books.UsageRecord {
	t.Helper()
	ctx := context.Background()
	for _, a := range []keys.Account{{ID: "acct_a", Name: "Alpha"}, {ID: "acct_b", Name: "Beta"}} {
		a.CreatedAt = logT0
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []keys.Record{
		{ID: "key_a1", Name: "alpha one", AccountID: "acct_a"},
		{ID: "key_a2", Name: "alpha two", AccountID: "acct_a"},
		{ID: "key_b1", Name: "beta one", AccountID: "acct_b"},
	} {
		k.Hash, k.Hint, k.CreatedAt = "h-"+k.ID, "xr-…", logT0
		if err := db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	keyIDs := []string{"key_a1", "key_a2", "key_b1"}
	statuses := []int{200, 200, 429, 502, 200, 400}
	var recs []books.UsageRecord
	for i := range 30 {
		k := keyIDs[i%3]
		r := books.UsageRecord{
			RequestID: fmt.Sprintf("req_%02d", i), KeyID: k, AccountID: map[string]string{"key_a1": "acct_a", "key_a2": "acct_a", "key_b1": "acct_b"}[k],
			Model: []string{"gpt-4o", "claude"}[i%2], Provider: []string{"openai", "anthropic", "mock"}[i%3], UpstreamModel: "up",
			Status: statuses[i%len(statuses)], Attempts: 1 + i%2, PromptTokens: i, CompletionTokens: 2 * i,
			Latency: time.Duration(i) * time.Millisecond, TTFT: time.Duration(i) * 100 * time.Microsecond,
			// Pairs of requests share a millisecond.
			CreatedAt: logT0.Add(time.Duration(i/2) * time.Second), CostNano: int64(i) * 1000,
			Deployment: "openai/up", Endpoint: "chat", TraceID: fmt.Sprintf("%032x", i+1), Stream: i%4 == 0,
		}
		recs = append(recs, r)
	}
	// Stored in an order other than time's: ids do not follow created_at.
	shuffled := slices.Clone(recs)
	slices.Reverse(shuffled[10:20])
	for _, r := range shuffled {
		if err := db.InsertUsage(ctx, []books.UsageRecord{r}); err != nil {
			t.Fatal(err)
		}
	}
	// Newest first: by created_at, then by id (insertion order) descending.
	order := make(map[string]int, len(shuffled))
	for i, r := range shuffled {
		order[r.RequestID] = i
	}
	slices.SortFunc(recs, func(a, b books.UsageRecord) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return order[b.RequestID] - order[a.RequestID]
	})
	return recs
}

func TestRequestLogPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		all := seedRequestLog(t, db)
		ctx := context.Background()
		tests := []struct {
			name  string
			f     RequestLogFilter
			match func(books.UsageRecord) bool
		}{
			{"all", RequestLogFilter{}, func(books.UsageRecord) bool { return true }},
			{"account", RequestLogFilter{AccountID: "acct_a"}, func(r books.UsageRecord) bool { return r.AccountID == "acct_a" }},
			{"key", RequestLogFilter{KeyID: "key_b1"}, func(r books.UsageRecord) bool { return r.KeyID == "key_b1" }},
			{"model and provider", RequestLogFilter{Model: "gpt-4o", Provider: "openai"}, func(r books.UsageRecord) bool { return r.Model == "gpt-4o" && r.Provider == "openai" }},
			{"status 5xx", RequestLogFilter{StatusMin: 500, StatusMax: 599}, func(r books.UsageRecord) bool { return r.Status >= 500 }},
			{"errors of an account", RequestLogFilter{AccountID: "acct_a", StatusMin: 400, StatusMax: 999}, func(r books.UsageRecord) bool { return r.AccountID == "acct_a" && r.Status >= 400 }},
			{"time window", RequestLogFilter{From: logT0.Add(3 * time.Second), To: logT0.Add(11 * time.Second)}, func(r books.UsageRecord) bool {
				return !r.CreatedAt.Before(logT0.Add(3*time.Second)) && r.CreatedAt.Before(logT0.Add(11*time.Second))
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var want []string
				for _, r := range all {
					if tc.match(r) {
						want = append(want, r.RequestID)
					}
				}
				var got []string
				cursor, pages := "", 0
				for {
					rows, next, err := db.RequestLog(ctx, tc.f, cursor, 4)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					if len(rows) > 4 || (next != "" && len(rows) != 4) {
						t.Fatalf("page %d: %d rows, next %q", pages, len(rows), next)
					}
					for _, r := range rows {
						got = append(got, r.RequestID)
					}
					if next == "" {
						break
					}
					cursor = next
				}
				if !slices.Equal(got, want) {
					t.Fatalf("pages read\n %v\nwant\n %v", got, want)
				}
				if wantPages := max(1, (len(want)+3)/4); pages != wantPages {
					t.Errorf("%d pages, want %d", pages, wantPages)
				}
			})
		}
	})
}

// TestRequestLogTail: a follower reads rows in the order they were
// recorded, whatever their created_at, continuing from the last seq it
// read, with the filters applied.
func TestRequestLogTail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		all := seedRequestLog(t, db)
		ctx := context.Background()
		head, _, err := db.RequestLog(ctx, RequestLogFilter{}, "", len(all))
		if err != nil {
			t.Fatal(err)
		}
		bySeq := slices.Clone(head)
		slices.SortFunc(bySeq, func(a, b RequestLogRow) int { return int(a.Seq - b.Seq) })
		for _, tc := range []struct {
			name  string
			f     RequestLogFilter
			match func(RequestLogRow) bool
		}{
			{"all", RequestLogFilter{}, func(RequestLogRow) bool { return true }},
			{"one key", RequestLogFilter{KeyID: "key_a2"}, func(r RequestLogRow) bool { return r.KeyID == "key_a2" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []string
				for _, r := range bySeq {
					if tc.match(r) {
						want = append(want, r.RequestID)
					}
				}
				var got []string
				f := tc.f
				f.Tail = true
				for pages := 0; ; pages++ {
					rows, next, err := db.RequestLog(ctx, f, "", 3)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range rows {
						got = append(got, r.RequestID)
						f.AfterSeq = r.Seq
					}
					if next == "" {
						break
					}
					if pages > 20 {
						t.Fatal("the tail does not end")
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("tail read\n %v\nwant, in recording order,\n %v", got, want)
				}
			})
		}
		// The recording order is not created_at's: the seed stored ten rows
		// in reverse, so a follower going by time would miss or repeat them.
		byTime := slices.Clone(head)
		slices.Reverse(byTime) // oldest first
		if slices.EqualFunc(bySeq, byTime, func(a, b RequestLogRow) bool { return a.RequestID == b.RequestID }) {
			t.Fatal("seed: recording order equals time order; the test proves nothing")
		}
	})
}

func TestRequestLogRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		all := seedRequestLog(t, db)
		ctx := context.Background()
		var want books.UsageRecord
		for _, r := range all {
			if r.RequestID == "req_07" {
				want = r
			}
		}
		rows, next, err := db.RequestLog(ctx, RequestLogFilter{RequestID: "req_07"}, "", 100)
		if err != nil || len(rows) != 1 || next != "" {
			t.Fatalf("by request id: %d rows, next %q, %v", len(rows), next, err)
		}
		one, err := db.RequestLogEntry(ctx, "req_07")
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []RequestLogRow{rows[0], one} {
			if got.UsageRecord != want {
				t.Errorf("row\n %+v\nwant\n %+v", got.UsageRecord, want)
			}
			if got.KeyName != "alpha two" || got.AccountName != "Alpha" || got.Captured {
				t.Errorf("key %q account %q captured %v", got.KeyName, got.AccountName, got.Captured)
			}
		}
		if _, err := db.RequestLogEntry(ctx, "req_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown request: %v, want ErrNotFound", err)
		}
		for _, bad := range []string{"nope!", "bm9wZQ", encodeCursor(5, 0)} {
			if _, _, err := db.RequestLog(ctx, RequestLogFilter{}, bad, 10); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
			}
		}
	})
}

// TestRequestLogUsesIndexes checks the plan of a deep page: a range scan
// of the index in the listing's order, no sort and no scan of the table.
func TestRequestLogUsesIndexes(t *testing.T) {
	db, _ := openSQLiteTest(t)
	cursor := encodeCursor(logT0.UnixMilli(), 42)
	tests := []struct {
		name  string
		f     RequestLogFilter
		index string
	}{
		{"all", RequestLogFilter{}, "usage_records_time_id"},
		{"model and status", RequestLogFilter{Model: "gpt-4o", StatusMin: 500, StatusMax: 599}, "usage_records_time_id"},
		{"time window", RequestLogFilter{From: logT0.Add(-time.Hour), To: logT0}, "usage_records_time_id"},
		{"account", RequestLogFilter{AccountID: "acct_a"}, "usage_records_account_time_id"},
		{"account and window", RequestLogFilter{AccountID: "acct_a", From: logT0.Add(-time.Hour)}, "usage_records_account_time_id"},
		{"key", RequestLogFilter{KeyID: "key_a1"}, "usage_records_key_time_id"},
		{"request id", RequestLogFilter{RequestID: "req_1"}, "usage_records_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, args, err := db.requestLogSQL(tc.f, cursor, 101)
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
			if !strings.Contains(all, "SEARCH u USING INDEX "+tc.index+" ") && !strings.Contains(all, "SEARCH u USING COVERING INDEX "+tc.index+" ") ||
				strings.Contains(all, "SCAN u") || strings.Contains(all, "TEMP B-TREE") {
				t.Fatalf("plan does not range-scan %s in order:\n%s", tc.index, all)
			}
		})
	}
}

func TestCaptureSettings(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if _, err := db.CaptureSetting(ctx, "acct_a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no setting: %v, want ErrNotFound", err)
		}
		on := books.CaptureSetting{AccountID: "acct_a", Enabled: true, Retention: 7 * 24 * time.Hour, MaxBytes: 65536, UpdatedAt: logT0}
		off := books.CaptureSetting{AccountID: "acct_b", Enabled: false, Retention: time.Hour, MaxBytes: 10, UpdatedAt: logT0}
		for _, c := range []books.CaptureSetting{off, {AccountID: "acct_a", Retention: time.Hour, MaxBytes: 1, UpdatedAt: logT0}, on} {
			if err := db.PutCaptureSetting(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := db.CaptureSetting(ctx, "acct_a"); err != nil || got != on {
			t.Errorf("setting %+v, %v; want %+v", got, err, on)
		}
		list, err := db.CaptureSettings(ctx)
		if err != nil || len(list) != 1 || list[0] != on {
			t.Errorf("enabled settings %+v, %v; want only acct_a's", list, err)
		}
		if err := db.PutCaptureSetting(ctx, books.CaptureSetting{AccountID: "acct_c"}); err == nil {
			t.Error("a setting without retention or max bytes was stored")
		}
	})
}

func TestRequestCaptures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedRequestLog(t, db)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		caps := []books.RequestCapture{
			{RequestID: "req_03", AccountID: "acct_b", Request: `{"model":"m"}`, Response: "data: x\n\n", Truncated: true, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			{RequestID: "req_04", AccountID: "acct_a", Request: "bad \xff utf-8 and a NUL \x00", Response: "{}", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
		}
		if err := db.InsertCaptures(ctx, caps); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertCaptures(ctx, caps[:1]); err != nil { // a retried batch
			t.Fatal(err)
		}
		got, err := db.RequestCaptureOf(ctx, "req_03")
		if err != nil || got != caps[0] {
			t.Errorf("capture %+v, %v; want %+v", got, err, caps[0])
		}
		if _, err := db.RequestCaptureOf(ctx, "req_04"); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired capture: %v, want ErrNotFound", err)
		}
		row, err := db.RequestLogEntry(ctx, "req_03")
		if err != nil || !row.Captured {
			t.Errorf("req_03 captured %v, %v; want true", row.Captured, err)
		}
		if row, _ := db.RequestLogEntry(ctx, "req_04"); row.Captured {
			t.Error("an expired capture is shown as captured")
		}
		n, err := db.SweepCaptures(ctx, now, 1)
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d, %v; want 1", n, err)
		}
		var left int
		if err := db.queryRow(ctx, `SELECT COUNT(*) FROM request_captures`).Scan(&left); err != nil || left != 1 {
			t.Errorf("%d captures left, %v; want 1 (the live one)", left, err)
		}
	})
}
