package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestIssuersCRUD: stored issuers are created, read, replaced and
// deleted; a second one with the same iss is a conflict on create and on
// update, and a missing one is not found.
func TestIssuersCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.UnixMilli(1_700_000_000_000).UTC()
		a := StoredIssuer{ID: "iss_a", Issuer: "https://a.example", Definition: []byte(`{"issuer":"https://a.example"}`), CreatedAt: now, CreatedBy: "admin:k1", UpdatedAt: now, UpdatedBy: "admin:k1"}
		if err := db.CreateIssuer(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateIssuer(ctx, StoredIssuer{ID: "iss_b", Issuer: a.Issuer, Definition: []byte(`{}`), CreatedAt: now, UpdatedAt: now}); !errors.Is(err, ErrConflict) {
			t.Fatalf("same iss twice: %v, want ErrConflict", err)
		}
		b := StoredIssuer{ID: "iss_b", Issuer: "https://b.example", Definition: []byte(`{}`), CreatedAt: now.Add(time.Second), UpdatedAt: now.Add(time.Second)}
		if err := db.CreateIssuer(ctx, b); err != nil {
			t.Fatal(err)
		}
		got, err := db.Issuer(ctx, "iss_a")
		if err != nil || got.Issuer != a.Issuer || string(got.Definition) != string(a.Definition) || !got.CreatedAt.Equal(now) || got.CreatedBy != "admin:k1" {
			t.Fatalf("read back %+v, %v", got, err)
		}
		b.Issuer = a.Issuer
		if err := db.UpdateIssuer(ctx, b); !errors.Is(err, ErrConflict) {
			t.Fatalf("update onto another's iss: %v, want ErrConflict", err)
		}
		a.Definition, a.UpdatedAt, a.UpdatedBy = []byte(`{"v":2}`), now.Add(time.Minute), "cli"
		if err := db.UpdateIssuer(ctx, a); err != nil {
			t.Fatal(err)
		}
		list, err := db.Issuers(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "iss_a" || string(list[0].Definition) != `{"v":2}` || list[0].UpdatedBy != "cli" || list[1].ID != "iss_b" {
			t.Fatalf("list %+v, %v", list, err)
		}
		if err := db.DeleteIssuer(ctx, "iss_a"); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"get":    func() error { _, err := db.Issuer(ctx, "iss_a"); return err }(),
			"update": db.UpdateIssuer(ctx, a),
			"delete": db.DeleteIssuer(ctx, "iss_a"),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s of a deleted issuer: %v, want ErrNotFound", name, err)
			}
		}
	})
}
