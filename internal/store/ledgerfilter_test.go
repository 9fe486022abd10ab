package store

import (
	"context"
	"github.com/xroute/xroute/billing/books"
	"testing"
	"time"

	"github.com/xroute/xroute/keys/auditlog"
)

// TestFindLedgerEntriesFilters: the dashboard's ledger filters (key,
// kind, [from, to)) narrow in SQL, combine with the id cursor, and a page
// never exceeds 1000 rows.
func TestFindLedgerEntriesFilters(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a", "acct_b")
		if _, _, err := db.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "acct_a", Kind: books.LedgerTopUp, Amount: 1000, IdempotencyKey: "top", CreatedAt: ledgerT0}); err != nil {
			t.Fatal(err)
		}
		var debits []books.UsageDebit
		for i := range 6 {
			key := "k1"
			if i%2 == 1 {
				key = "k2"
			}
			debits = append(debits, books.UsageDebit{AccountID: "acct_a", RequestID: string(rune('a' + i)), Amount: 1, KeyID: key, At: ledgerT0.Add(time.Duration(i) * time.Hour)})
		}
		debits = append(debits, books.UsageDebit{AccountID: "acct_b", RequestID: "other", Amount: 1, KeyID: "k1", At: ledgerT0})
		if err := db.DebitUsage(ctx, debits); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			f    books.LedgerFilter
			want int
		}{
			{"all", books.LedgerFilter{}, 7},
			{"kind", books.LedgerFilter{Kind: books.LedgerUsage}, 6},
			{"key", books.LedgerFilter{KeyID: "k2"}, 3},
			{"key and kind", books.LedgerFilter{KeyID: "k1", Kind: books.LedgerUsage}, 3},
			{"from", books.LedgerFilter{From: ledgerT0.Add(3 * time.Hour)}, 3},
			{"to", books.LedgerFilter{To: ledgerT0.Add(time.Hour)}, 2},
			{"window", books.LedgerFilter{From: ledgerT0.Add(time.Hour), To: ledgerT0.Add(3 * time.Hour)}, 2},
			{"limit", books.LedgerFilter{Limit: 2}, 2},
			{"limit capped", books.LedgerFilter{Limit: 5000}, 7},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.FindLedgerEntries(ctx, "acct_a", tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.want {
					t.Fatalf("%d entries, want %d", len(got), tc.want)
				}
				for _, e := range got {
					if e.AccountID != "acct_a" || (tc.f.KeyID != "" && e.KeyID != tc.f.KeyID) || (tc.f.Kind != "" && e.Kind != tc.f.Kind) ||
						(!tc.f.From.IsZero() && e.CreatedAt.Before(tc.f.From)) || (!tc.f.To.IsZero() && !e.CreatedAt.Before(tc.f.To)) {
						t.Fatalf("entry outside the filter: %+v", e)
					}
				}
			})
		}
		// The cursor with a filter: k1's three debits, one page at a time.
		var seen []int64
		for before := int64(0); ; {
			page, err := db.FindLedgerEntries(ctx, "acct_a", books.LedgerFilter{KeyID: "k1", Limit: 1, BeforeID: before})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			seen = append(seen, page[0].ID)
			before = page[0].ID
		}
		if len(seen) != 3 || seen[0] <= seen[1] || seen[1] <= seen[2] {
			t.Fatalf("k1 pages gave ids %v", seen)
		}
	})
}

// TestListAuditUntil: Until bounds the audit list from above (the
// dashboard's "to").
func TestListAuditUntil(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		for i := range 3 {
			err := db.AppendAudit(ctx, func(seq int64, _ string) (auditlog.Row, error) {
				return auditlog.Row{Seq: seq + 1, At: ledgerT0.Add(time.Duration(i) * time.Hour).UnixMilli(), Kind: "key.created", Actor: "t", Details: "{}", Hash: string(rune('a' + i))}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			f    auditlog.Filter
			want int
		}{
			{auditlog.Filter{}, 3},
			{auditlog.Filter{Until: ledgerT0.Add(time.Hour)}, 1},
			{auditlog.Filter{Since: ledgerT0.Add(time.Hour), Until: ledgerT0.Add(2 * time.Hour)}, 1},
			{auditlog.Filter{Until: ledgerT0}, 0},
		} {
			got, err := db.ListAudit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%+v: %d rows, want %d", tc.f, len(got), tc.want)
			}
		}
	})
}
