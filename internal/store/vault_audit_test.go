package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

func TestKeyringCompareAndSwap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if _, _, err := db.Keyring(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("empty: want ErrNotFound, got %v", err)
		}
		gen, err := db.SaveKeyring(ctx, []byte("one"), 0)
		if err != nil || gen != 1 {
			t.Fatalf("first save: gen %d, %v", gen, err)
		}
		if _, err := db.SaveKeyring(ctx, []byte("other"), 0); !errors.Is(err, ErrConflict) {
			t.Fatalf("second insert: want ErrConflict, got %v", err)
		}
		if gen, err = db.SaveKeyring(ctx, []byte("two"), 1); err != nil || gen != 2 {
			t.Fatalf("update: gen %d, %v", gen, err)
		}
		if _, err := db.SaveKeyring(ctx, []byte("stale"), 1); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale generation: want ErrConflict, got %v", err)
		}
		blob, gen, err := db.Keyring(ctx)
		if err != nil || gen != 2 || string(blob) != "two" {
			t.Fatalf("load: %q gen %d, %v", blob, gen, err)
		}
	})
}

func TestProviderKeysStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		mk := func(id, provider, name string, term uint32) keys.ProviderKeyRecord {
			return keys.ProviderKeyRecord{ID: id, Provider: provider, Name: name, Ciphertext: []byte("ct-" + id), Term: term,
				Hint: "sk-…abcd", Weight: 1, Status: keys.ProviderKeyActive, CreatedAt: now, UpdatedAt: now}
		}
		for _, k := range []keys.ProviderKeyRecord{mk("pk_1", "openai", "a", 1), mk("pk_2", "openai", "b", 2), mk("pk_3", "anthropic", "a", 1)} {
			if err := db.CreateProviderKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateProviderKey(ctx, mk("pk_4", "openai", "a", 1)); !errors.Is(err, ErrConflict) {
			t.Fatalf("same provider+name: want ErrConflict, got %v", err)
		}
		if err := db.CreateProviderKey(ctx, mk("pk_1", "x", "y", 1)); !errors.Is(err, ErrConflict) {
			t.Fatalf("same id: want ErrConflict, got %v", err)
		}
		got, err := db.ProviderKeyByID(ctx, "pk_2")
		if err != nil || got.Term != 2 || got.Provider != "openai" || !bytes.Equal(got.Ciphertext, []byte("ct-pk_2")) || !got.CreatedAt.Equal(now) {
			t.Fatalf("by id: %+v, %v", got, err)
		}
		if _, err := db.ProviderKeyByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		if err := db.SetProviderKeyStatus(ctx, "pk_1", keys.ProviderKeyDisabled, "401 upstream", now); err != nil {
			t.Fatal(err)
		}
		if err := db.SetProviderKeyStatus(ctx, "nope", keys.ProviderKeyDisabled, "", now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("status of missing: %v", err)
		}
		if err := db.SetProviderKeyStatus(ctx, "pk_1", "bogus", "", now); err == nil {
			t.Fatal("a status outside active/disabled was accepted")
		}
		count := func(f keys.ProviderKeyFilter) int {
			t.Helper()
			ks, err := db.ListProviderKeys(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return len(ks)
		}
		for _, c := range []struct {
			name string
			f    keys.ProviderKeyFilter
			want int
		}{
			{"all", keys.ProviderKeyFilter{}, 3},
			{"provider", keys.ProviderKeyFilter{Provider: "openai"}, 2},
			{"active in provider", keys.ProviderKeyFilter{Provider: "openai", Status: keys.ProviderKeyActive}, 1},
			{"not term 2", keys.ProviderKeyFilter{NotTerm: 2}, 2},
		} {
			if n := count(c.f); n != c.want {
				t.Errorf("%s: %d keys, want %d", c.name, n, c.want)
			}
		}

		// Compare-and-swap of the ciphertext.
		if err := db.SwapProviderKeyCiphertext(ctx, "pk_1", []byte("wrong"), []byte("new"), 3, now); !errors.Is(err, ErrConflict) {
			t.Fatalf("swap with stale ciphertext: want ErrConflict, got %v", err)
		}
		if err := db.SwapProviderKeyCiphertext(ctx, "pk_1", []byte("ct-pk_1"), []byte("new"), 3, now); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.ProviderKeyByID(ctx, "pk_1"); got.Term != 3 || string(got.Ciphertext) != "new" {
			t.Fatalf("after swap: %+v", got)
		}
		if err := db.SwapProviderKeyCiphertext(ctx, "nope", nil, []byte("x"), 3, now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("swap of missing: want ErrNotFound, got %v", err)
		}
		if err := db.DeleteProviderKey(ctx, "pk_1"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteProviderKey(ctx, "pk_1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestAuditStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		kinds := []string{"key.created", "provider_key.added", "providerXkey.added", "key.revoked"}
		for i, kind := range kinds {
			err := db.AppendAudit(ctx, func(lastSeq int64, lastHash string) (auditlog.Row, error) {
				if lastSeq != int64(i) {
					t.Errorf("append %d: last seq %d", i, lastSeq)
				}
				return auditlog.Row{Seq: lastSeq + 1, At: int64(1000 * (i + 1)), Kind: kind, Actor: "cli", Subject: fmt.Sprint("s", i%2),
					Details: "{}", PrevHash: "p" + lastHash, Hash: fmt.Sprint("h", i)}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// A failing build rolls back and appends nothing.
		boom := errors.New("boom")
		if err := db.AppendAudit(ctx, func(int64, string) (auditlog.Row, error) { return auditlog.Row{}, boom }); !errors.Is(err, boom) {
			t.Fatalf("build error: %v", err)
		}
		seqs := func(f auditlog.Filter) []int64 {
			t.Helper()
			rows, err := db.ListAudit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, r := range rows {
				out = append(out, r.Seq)
			}
			return out
		}
		for _, c := range []struct {
			name string
			f    auditlog.Filter
			want string
		}{
			{"all newest first", auditlog.Filter{}, "[4 3 2 1]"},
			{"kind prefix", auditlog.Filter{Kind: "key."}, "[4 1]"},
			{"underscore is literal", auditlog.Filter{Kind: "provider_key."}, "[2]"},
			{"subject", auditlog.Filter{Subject: "s1"}, "[4 2]"},
			{"since", auditlog.Filter{Since: time.UnixMilli(3000)}, "[4 3]"},
			{"page", auditlog.Filter{BeforeSeq: 4, Limit: 2}, "[3 2]"},
		} {
			if got := fmt.Sprint(seqs(c.f)); got != c.want {
				t.Errorf("%s: %s, want %s", c.name, got, c.want)
			}
		}
		rows, err := db.ScanAudit(ctx, 1, 2)
		if err != nil || len(rows) != 2 || rows[0].Seq != 2 || rows[1].Seq != 3 || rows[1].PrevHash != "ph1" {
			t.Fatalf("scan: %+v, %v", rows, err)
		}
		// Append-only: the triggers refuse edits and deletes.
		if _, err := db.exec(ctx, `UPDATE audit_log SET details = '{"x":1}' WHERE seq = 2`); err == nil {
			t.Fatal("UPDATE of an audit row succeeded")
		}
		if _, err := db.exec(ctx, `DELETE FROM audit_log WHERE seq = 2`); err == nil {
			t.Fatal("DELETE of an audit row succeeded")
		}
	})
}
