package store

import (
	"context"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

// TestMigrationMakesAdminKeysOwners: migration 0012 gives every admin key
// that existed before roles the owner role, and caller keys none. The
// database is put back to its state before 0012 (column dropped, version
// forgotten) with one key of each kind, then opened again.
func TestMigrationMakesAdminKeysOwners(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		for _, k := range []keys.Record{
			{ID: "key_admin", Kind: "admin", Name: "ops", Hash: "h-admin", Hint: "xra-…", CreatedAt: now},
			{ID: "key_caller", Kind: "caller", Name: "app", Hash: "h-caller", Hint: "xr-…", CreatedAt: now},
		} {
			if err := db.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []string{`ALTER TABLE api_keys DROP COLUMN role`, `DELETE FROM schema_migrations WHERE version = 12`} {
			if _, err := db.exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.Close()
		again := openAgain(t, dsn)
		for id, want := range map[string]string{"key_admin": "owner", "key_caller": ""} {
			k, err := again.KeyByID(ctx, id)
			if err != nil || k.Role != want {
				t.Errorf("%s after migration: role %q, %v; want %q", id, k.Role, err, want)
			}
		}
	})
}

// TestSetKeyRole: only an admin key's role changes; setting the role it
// has reports no change.
func TestSetKeyRole(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		db.CreateKey(ctx, keys.Record{ID: "key_a", Kind: "admin", Role: "viewer", Name: "a", Hash: "h-a", Hint: "xra-…", CreatedAt: now})
		db.CreateKey(ctx, keys.Record{ID: "key_c", Kind: "caller", Name: "c", Hash: "h-c", Hint: "xr-…", CreatedAt: now})
		cases := []struct {
			name, id, role string
			changed        bool
			err            error
		}{
			{"admin key", "key_a", "billing", true, nil},
			{"same role", "key_a", "billing", false, nil},
			{"caller key", "key_c", "owner", false, nil},
			{"missing key", "key_nope", "owner", false, ErrNotFound},
		}
		for _, tc := range cases {
			changed, err := db.SetKeyRole(ctx, tc.id, tc.role)
			if changed != tc.changed || (tc.err == nil) != (err == nil) {
				t.Errorf("%s: changed %v, %v", tc.name, changed, err)
			}
		}
		if k, _ := db.KeyByID(ctx, "key_a"); k.Role != "billing" {
			t.Errorf("role %q after the change", k.Role)
		}
		if k, _ := db.KeyByID(ctx, "key_c"); k.Role != "" {
			t.Errorf("a caller key got the role %q", k.Role)
		}
	})
}
