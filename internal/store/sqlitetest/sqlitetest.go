// Package sqlitetest gives tests outside the store package a fresh SQLite
// store of their own, the same file opened raw (as an attacker or an
// operator with sqlite3 would), and a vault over it. (storetest, the
// PostgreSQL counterpart, cannot import the store: the store's own tests
// import it.)
package sqlitetest

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/vault"
)

// Open opens a fresh SQLite store in the test's temporary directory,
// closed when the test ends, and returns it with its file's path.
func Open(t testing.TB) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xroute.db")
	db, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// Raw opens the database file at path directly, past the store.
func Raw(t testing.TB, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// Vault opens the vault over st with master.
func Vault(t testing.TB, st vault.KeyringStore, master []byte) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), st, master)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
