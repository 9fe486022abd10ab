// Package drivertest makes real database driver errors for tests of the
// code that classifies them (the store) and that branches on the
// classification (billing's recorder). It imports the SQLite driver and
// nothing of xroute, so the store's own tests can use it too.
package drivertest

import (
	"database/sql"
	"testing"

	_ "modernc.org/sqlite" // the driver under test
)

// SQLiteErr runs stmts on a fresh in-memory SQLite database and returns
// the error of the last one: a real driver error, not a lookalike.
func SQLiteErr(t testing.TB, stmts ...string) error {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	for i, s := range stmts {
		_, err = db.Exec(s)
		if i < len(stmts)-1 && err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err == nil {
		t.Fatalf("%s: no error", stmts[len(stmts)-1])
	}
	return err
}
