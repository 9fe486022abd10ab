package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/xroute/xroute/billing/books"
)

// TestUsageReportPages: with limit the admin report answers one page of
// rows, largest cost first, and next_after walks the rest exactly once.
func TestUsageReportPages(t *testing.T) {
	t.Parallel()
	src := newUsageSource()
	src.rows = append(src.rows,
		books.ReportRow{AccountID: "acct_c", KeyID: "key_c1", Requests: 1, CostNano: 9_000_000},
		books.ReportRow{AccountID: "acct_d", KeyID: "key_d1", Requests: 3, CostNano: 140})
	h := usageEngine(t, src, adminKey)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("the cursor does not end")
		}
		url := "/admin/v1/usage/report?group_by=key&limit=1"
		if after != "" {
			url += "&after=" + after
		}
		w := usageGet(t, h, url)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", url, w.Code, w.Body)
		}
		var page struct {
			Object string `json:"object"`
			Data   []struct {
				KeyID string `json:"key_id"`
			}
			HasMore   bool   `json:"has_more"`
			NextAfter string `json:"next_after"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		if page.Object != "usage.report" || len(page.Data) != 1 {
			t.Fatalf("%s: page %s", url, w.Body)
		}
		got = append(got, page.Data[0].KeyID)
		if !page.HasMore {
			break
		}
		after = page.NextAfter
	}
	// Cost first; the two 140-nano rows by requests (20 before 3).
	want := []string{"key_c1", "key_a1", "key_b1", "key_d1"}
	if len(got) != len(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rows %v, want %v", got, want)
		}
	}

	for _, tc := range []struct{ name, query, param string }{
		{"limit 0", "limit=0", "limit"},
		{"limit too big", "limit=1001", "limit"},
		{"bad cursor", "after=x", "after"},
		{"csv pages not", "format=csv&limit=5", "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := usageGet(t, h, "/admin/v1/usage/report?"+tc.query)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if b := decodeUsageError(t, w); b.Error.Param == nil || *b.Error.Param != tc.param {
				t.Fatalf("error %s", w.Body)
			}
		})
	}
	// Without limit and after the report is whole, as before.
	w := usageGet(t, h, "/admin/v1/usage/report?group_by=key")
	var whole struct {
		Data    []json.RawMessage `json:"data"`
		HasMore *bool             `json:"has_more"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &whole); err != nil || len(whole.Data) != 4 || whole.HasMore != nil {
		t.Fatalf("whole report: %v %s", err, w.Body)
	}
}
