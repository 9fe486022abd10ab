package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

// listAll follows next_after from a list URL to the end, one page of
// limit rows at a time, and returns every row and the number of pages.
func listAll(t *testing.T, admin, base string, limit int) ([]map[string]any, int) {
	t.Helper()
	var rows []map[string]any
	pages := 0
	for cursor := ""; ; {
		u := fmt.Sprintf("%s&limit=%d", base, limit)
		if cursor != "" {
			u += "&after=" + url.QueryEscape(cursor)
		}
		st, b, _ := call(t, "GET", u, admin, "")
		if st != 200 {
			t.Fatalf("GET %s: %d %v", u, st, b)
		}
		pages++
		data, _ := b["data"].([]any)
		if len(data) > limit {
			t.Fatalf("GET %s: %d rows on a page of %d", u, len(data), limit)
		}
		for _, d := range data {
			rows = append(rows, d.(map[string]any))
		}
		if b["has_more"] != true {
			return rows, pages
		}
		cursor, _ = b["next_after"].(string)
		if cursor == "" || pages > 50 {
			t.Fatalf("GET %s: has_more without a usable next_after: %v", u, b)
		}
	}
}

// TestLedgerListFiltersAndPages: the ledger the dashboard pages through
// narrows by key, kind and date range on the server, and its cursor walks
// every matching entry exactly once, newest first.
func TestLedgerListFiltersAndPages(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: priced})
	admin := g.adminKey(t)
	ctx := context.Background()
	base := g.srv.URL + "/admin/v1/accounts/" + keys.DefaultAccountID + "/ledger?"
	for i, amount := range []string{"1.00", "2.00", "3.00"} {
		if st, b, _ := call(t, "POST", g.srv.URL+"/admin/v1/accounts/"+keys.DefaultAccountID+"/credits", admin,
			fmt.Sprintf(`{"amount":%q,"idempotency_key":"top-%d"}`, amount, i)); st != 201 {
			t.Fatalf("top-up: %d %v", st, b)
		}
	}
	plainA, keyA, err := g.app.Keys.Create(ctx, keys.CreateParams{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	plainB, keyB, err := g.app.Keys.Create(ctx, keys.CreateParams{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{plainA, plainA, plainB} {
		if st, b, _ := call(t, "POST", g.base+"/chat/completions", k, chatBody); st != 200 {
			t.Fatalf("chat: %d %v", st, b)
		}
	}
	g.usage() // every debit flushed

	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format(time.DateOnly)
	tests := []struct {
		name, query string
		want        int
		check       func(row map[string]any) bool
	}{
		{"everything", "x=", 6, nil},
		{"top-ups", "kind=top_up", 3, func(r map[string]any) bool { return r["kind"] == "top_up" }},
		{"one key's usage", "kind=usage&key_id=" + keyA.ID, 2, func(r map[string]any) bool { return r["key_id"] == keyA.ID && r["kind"] == "usage" }},
		{"another key", "key_id=" + keyB.ID, 1, func(r map[string]any) bool { return r["key_id"] == keyB.ID }},
		{"today", "from=" + today + "&to=" + tomorrow, 6, nil},
		{"from tomorrow", "from=" + tomorrow, 0, nil},
		{"before 2000", "to=2000-01-01", 0, nil},
		{"RFC 3339 bounds", "from=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), 6, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{1, 4, 100} {
				rows, pages := listAll(t, admin, base+tc.query, limit)
				if len(rows) != tc.want {
					t.Fatalf("limit %d: %d rows, want %d", limit, len(rows), tc.want)
				}
				if wantPages := max(1, (tc.want+limit-1)/limit); pages != wantPages && pages != wantPages+1 {
					t.Fatalf("limit %d: %d pages for %d rows", limit, pages, tc.want)
				}
				prev := int64(1 << 62)
				for _, r := range rows {
					id := int64(r["id"].(float64))
					if id >= prev {
						t.Fatalf("limit %d: ids not strictly newest first: %d after %d", limit, id, prev)
					}
					prev = id
					if tc.check != nil && !tc.check(r) {
						t.Fatalf("limit %d: row outside the filter: %v", limit, r)
					}
				}
			}
		})
	}

	bad := []struct{ query, param string }{
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"from=" + tomorrow + "&to=" + today, "from"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"before=x", "before"},
	}
	for _, tc := range bad {
		st, b, _ := call(t, "GET", base+tc.query, admin, "")
		e, _ := b["error"].(map[string]any)
		if st != 400 || e["param"] != tc.param || e["type"] != "invalid_request_error" {
			t.Errorf("%s: %d %v, want 400 naming %s", tc.query, st, b, tc.param)
		}
	}
}

// TestAuditListDateRange: the audit log takes the same from/to range as
// the other lists.
func TestAuditListDateRange(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t) // itself an audited key.created
	base := g.srv.URL + "/admin/v1/audit?"
	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format(time.DateOnly)
	all, _ := listAll(t, admin, base+"x=", 100)
	if len(all) == 0 {
		t.Fatal("no audit events to filter")
	}
	tests := []struct {
		name, query string
		want        int
	}{
		{"today", "from=" + today + "&to=" + tomorrow, len(all)},
		{"from tomorrow", "from=" + tomorrow, 0},
		{"before 2000", "to=2000-01-01", 0},
		{"one at a time", "from=" + today, len(all)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, _ := listAll(t, admin, base+tc.query, 1)
			if len(rows) != tc.want {
				t.Fatalf("%d rows, want %d", len(rows), tc.want)
			}
		})
	}
	if st, b, _ := call(t, "GET", base+"to=soon", admin, ""); st != 400 || errCode(b) != "invalid_value" {
		t.Fatalf("a bad to: %d %v", st, b)
	}
}
