package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store/drivertest"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgConnectErr is what pgx returns when it cannot open a connection: here
// to a port nothing listens on.
func pgConnectErr(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pgconn.Connect(ctx, "postgres://u@"+addr+"/db?sslmode=disable")
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connect to a closed port: %v, want a *pgconn.ConnectError", err)
	}
	return err
}

// errKind is what a failed write says about the store, as billing reads
// it from the kind typed() gives the error.
type errKind int

const (
	errUnknown     errKind = iota // blames no record: retried
	errUnreachable                // the store cannot be reached: an outage
	errBadData                    // the store refuses what was written
)

// classify is billing's reading of a store error (billing.classify): only
// the dberr kind typed() set.
func classify(err error) errKind {
	switch err := typed(err); {
	case errors.Is(err, ErrUnavailable):
		return errUnreachable
	case errors.Is(err, ErrBadData):
		return errBadData
	}
	return errUnknown
}

type sqlStateErr string

func (e sqlStateErr) Error() string    { return "server error " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

func TestClassifyStoreErrors(t *testing.T) {
	dialTimeout := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	tests := []struct {
		name string
		err  error
		want errKind
	}{
		// Unreachable: the store cannot be reached.
		{"connection refused", fmt.Errorf("keys: lookup: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), errUnreachable},
		{"pgx could not connect", fmt.Errorf("insert usage: %w", pgConnectErr(t)), errUnreachable},
		{"deadline while dialing", fmt.Errorf("query: %w", dialTimeout), errUnreachable},
		{"connection reset", fmt.Errorf("insert: %w", syscall.ECONNRESET), errUnreachable},
		{"connection closed mid-answer", fmt.Errorf("query: %w", io.EOF), errUnreachable},
		{"pool gave up on the connection", fmt.Errorf("query: %w", driver.ErrBadConn), errUnreachable},
		{"server shutting down (57P01)", &pgconn.PgError{Code: "57P01"}, errUnreachable},
		{"connection exception (08006)", fmt.Errorf("wrapped: %w", sqlStateErr("08006")), errUnreachable},
		{"too many connections (53300)", sqlStateErr("53300"), errUnreachable},

		// Bad data: the store refuses what the records hold.
		{"NUL byte in a text column (22021)", fmt.Errorf("insert usage r1: %w", &pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`}), errBadData},
		{"value out of range (22003)", &pgconn.PgError{Code: "22003"}, errBadData},
		{"check constraint (23514)", &pgconn.PgError{Code: "23514"}, errBadData},
		{"unique violation (23505)", sqlStateErr("23505"), errBadData},
		{"sqlite check constraint", drivertest.SQLiteErr(t, "CREATE TABLE t (x INTEGER CHECK (x > 0))", "INSERT INTO t VALUES (-1)"), errBadData},
		{"sqlite not null constraint", drivertest.SQLiteErr(t, "CREATE TABLE t (x INTEGER NOT NULL)", "INSERT INTO t VALUES (NULL)"), errBadData},
		{"sqlite datatype mismatch", drivertest.SQLiteErr(t, "CREATE TABLE t (x INTEGER)", "INSERT INTO t (rowid) VALUES ('abc')"), errBadData},

		// Unknown: blames no record; retried, the records kept meanwhile.
		{"store call timed out (a lock wait)", fmt.Errorf("query: %w", context.DeadlineExceeded), errUnknown},
		{"caller went away", fmt.Errorf("query: %w", context.Canceled), errUnknown},
		{"caller went away while dialing", fmt.Errorf("query: %w", &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}), errUnknown},
		{"serialization failure (40001)", &pgconn.PgError{Code: "40001"}, errUnknown},
		{"deadlock detected (40P01)", &pgconn.PgError{Code: "40P01"}, errUnknown},
		{"lock not available (55P03)", &pgconn.PgError{Code: "55P03"}, errUnknown},
		{"disk full (53100)", fmt.Errorf("insert usage r1: %w", &pgconn.PgError{Code: "53100"}), errUnknown},
		{"out of memory (53200)", &pgconn.PgError{Code: "53200"}, errUnknown},
		{"query cancelled by statement_timeout (57014)", &pgconn.PgError{Code: "57014"}, errUnknown},
		{"sqlite syntax error", drivertest.SQLiteErr(t, "INSERT INTO nowhere VALUES (1)"), errUnknown},
		{"plain error", errors.New("database is locked"), errUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Fatalf("classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if got, want := IsUnavailable(tt.err), tt.want == errUnreachable; got != want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", tt.err, got, want)
			}
			if got, want := IsBadData(tt.err), tt.want == errBadData; got != want {
				t.Fatalf("IsBadData(%v) = %v, want %v", tt.err, got, want)
			}
		})
	}
	if IsUnavailable(nil) || classify(nil) == errBadData || typed(nil) != nil {
		t.Fatal("nil is no failure")
	}
}
