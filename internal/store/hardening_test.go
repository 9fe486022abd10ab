package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/xroute/xroute/keys"
)

// TestHoleSQLiteWorldReadable: the database holds key hashes, sealed
// provider keys, balances and the audit log; with the usual umask (022)
// it, its WAL and its shared-memory file were created 0644, readable by
// every local user. They are created 0600, and an existing database left
// readable by an older version is tightened when opened.
func TestHoleSQLiteWorldReadable(t *testing.T) {
	old := syscall.Umask(0o022) // what a shell usually gives a service
	t.Cleanup(func() { syscall.Umask(old) })
	for _, tc := range []struct {
		name     string
		existing os.FileMode // 0: a new database
	}{
		{"new", 0},
		{"existing 0644", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			if tc.existing != 0 {
				db, err := OpenSQLite(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				for _, p := range []string{path, path + "-wal", path + "-shm"} {
					if err := os.Chmod(p, tc.existing); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			}
			db, err := OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// A write makes sure the WAL and the shared memory exist.
			if err := db.CreateAccount(context.Background(), keys.Account{ID: "acct_perm", Name: "perm"}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if m := fi.Mode().Perm(); m != 0o600 {
					t.Errorf("%s has mode %o, want 600", filepath.Base(p), m)
				}
			}
		})
	}
}
