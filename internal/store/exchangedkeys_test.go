package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/keys"
)

// TestSweepExchangedKeys: the sweep deletes exchanged keys expired before
// the cutoff, in batches, and keeps every other key: one not yet past
// the cutoff, one a refresh token still names, one an admin extended,
// and an ordinary key with the same expiry. Usage records of a deleted
// key stay, and the request log shows its id with no name.
func TestSweepExchangedKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		t0 := time.UnixMilli(1_800_000_000_000).UTC()
		cutoff := t0.Add(time.Hour)
		mk := func(id string, exp time.Time, exchanged bool) {
			t.Helper()
			k := keys.Record{ID: id, Name: "exchange:r:" + id, Hash: "h-" + id, Hint: "xr-…", CreatedAt: t0.Add(-time.Hour), ExpiresAt: &exp,
				Metadata: map[string]string{"exchange_issuer": "https://idp.example"}}
			if err := db.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			if exchanged {
				if err := db.RecordExchangedKey(ctx, id, exp); err != nil {
					t.Fatal(err)
				}
			}
		}
		var gone []string
		for i := range 5 { // more than one batch of 2
			id := fmt.Sprintf("key_old%d", i)
			mk(id, t0.Add(time.Duration(i)*time.Minute), true)
			gone = append(gone, id)
		}
		mk("key_recent", cutoff.Add(time.Minute), true)
		mk("key_refresh", t0, true)
		mk("key_extended", t0, true)
		mk("key_plain", t0, false) // same marks in name and metadata, but not minted by the exchange
		if err := db.CreateRefreshToken(ctx, RefreshToken{Hash: "rt1", Family: "fam", KeyID: "key_refresh", AccountID: keys.DefaultAccountID,
			Issuer: "https://idp.example", Rule: "r", CreatedAt: t0, ExpiresAt: cutoff.Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		later := cutoff.Add(time.Hour)
		if _, err := db.exec(ctx, `UPDATE api_keys SET expires_at = ? WHERE id = ?`, later.UnixMilli(), "key_extended"); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertUsage(ctx, []books.UsageRecord{{RequestID: "req_1", KeyID: "key_old0", AccountID: keys.DefaultAccountID, Model: "m",
			Status: 200, CreatedAt: t0.Add(-time.Minute)}}); err != nil {
			t.Fatal(err)
		}

		n, err := db.SweepExchangedKeys(ctx, cutoff, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(gone) {
			t.Fatalf("swept %d keys, want %d", n, len(gone))
		}
		for _, id := range gone {
			if _, err := db.KeyByID(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: err %v, want ErrNotFound", id, err)
			}
		}
		for _, id := range []string{"key_recent", "key_refresh", "key_extended", "key_plain"} {
			if _, err := db.KeyByID(ctx, id); err != nil {
				t.Errorf("%s was swept (or unreadable): %v", id, err)
			}
		}
		row, err := db.RequestLogEntry(ctx, "req_1")
		if err != nil {
			t.Fatal(err)
		}
		if row.KeyID != "key_old0" || row.KeyName != "" {
			t.Errorf("request log row names key %q %q, want the id and no name", row.KeyID, row.KeyName)
		}

		// Nothing more until the refresh family is swept; then its key goes.
		if n, err := db.SweepExchangedKeys(ctx, cutoff, 2); err != nil || n != 0 {
			t.Fatalf("second sweep: %d, %v; want 0", n, err)
		}
		if _, err := db.SweepRefreshTokens(ctx, cutoff.Add(25*time.Hour), 10); err != nil {
			t.Fatal(err)
		}
		if n, err := db.SweepExchangedKeys(ctx, cutoff, 2); err != nil || n != 1 {
			t.Fatalf("sweep after the family ended: %d, %v; want 1", n, err)
		}
		if _, err := db.KeyByID(ctx, "key_refresh"); !errors.Is(err, ErrNotFound) {
			t.Errorf("key_refresh: err %v, want ErrNotFound", err)
		}
		if _, err := db.SweepExchangedKeys(ctx, cutoff, 0); err == nil {
			t.Error("batch 0 accepted")
		}
	})
}

// TestMigrationMarksExchangedKeys: migration 0016 marks the keys the
// exchange minted before it (the "exchange:" name and the
// exchange_issuer metadata, both), and no other key. The database is put
// back to its state before 0016 (table dropped, version forgotten).
func TestMigrationMarksExchangedKeys(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		exp := now.Add(time.Hour)
		meta := map[string]string{"exchange_issuer": "https://idp.example", "exchange_rule": "r"}
		for _, k := range []keys.Record{
			{ID: "key_x", Name: "exchange:r:alice", Metadata: meta, ExpiresAt: &exp},
			{ID: "key_name_only", Name: "exchange:r:bob", ExpiresAt: &exp},
			{ID: "key_meta_only", Name: "app", Metadata: meta, ExpiresAt: &exp},
			{ID: "key_no_expiry", Name: "exchange:r:carol", Metadata: meta},
		} {
			k.Hash, k.Hint, k.CreatedAt = "h-"+k.ID, "xr-…", now
			if err := db.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []string{`DROP INDEX refresh_tokens_key`, `DROP TABLE exchanged_keys`, `DELETE FROM schema_migrations WHERE version = 16`} {
			if _, err := db.exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.Close()
		again := openAgain(t, dsn)
		rows, err := again.query(ctx, `SELECT key_id, expires_at FROM exchanged_keys ORDER BY key_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var id string
			var at int64
			if err := rows.Scan(&id, &at); err != nil {
				t.Fatal(err)
			}
			if at != exp.UnixMilli() {
				t.Errorf("%s marked with expiry %d, want %d", id, at, exp.UnixMilli())
			}
			got = append(got, id)
		}
		if len(got) != 1 || got[0] != "key_x" {
			t.Errorf("marked %v, want [key_x]", got)
		}
	})
}
