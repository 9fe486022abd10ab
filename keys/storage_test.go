package keys_test

// The SQLite store and vault the key service's tests run against (the vault
// package's tests have their own copies).

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/vault"
)

// vtDB opens a fresh SQLite store and returns it with its file path.
func vtDB(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.db")
	db, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// vtRaw opens the same database file directly, as an attacker (or an
// operator with sqlite3) would.
func vtRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func vtVault(t *testing.T, st vault.KeyringStore, master []byte) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), st, master)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
