// Package storetest gives tests outside the store package a PostgreSQL
// database of their own.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgresURL names the environment variable holding the URL of a
// PostgreSQL database that tests may create schemas in, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvPostgresURL = "XROUTE_TEST_POSTGRES_URL"

// Postgres creates a fresh, empty schema in the database EnvPostgresURL
// names, drops it (with everything in it) when the test ends, and returns
// a URL that selects it (search_path): every store.Open of that URL, from
// as many simulated replicas as the test likes, shares that schema and no
// other test's. It skips the test when EnvPostgresURL is unset.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgresURL)
	if base == "" {
		t.Skip("set " + EnvPostgresURL + " to run against PostgreSQL")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", EnvPostgresURL)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "xr_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, base, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, base, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// adminExec runs one statement on a connection of its own (this package
// must not import store, whose tests use it).
func adminExec(ctx context.Context, rawURL, stmt string) error {
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, stmt)
	return err
}
