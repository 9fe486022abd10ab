package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/xroute/xroute/internal/dberr"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The errors callers branch on live in internal/dberr, which knows no
// driver; the store's names for them are the same values.
var (
	ErrUnavailable = dberr.ErrUnavailable
	ErrBadData     = dberr.ErrBadData
)

// Error is dberr.Error: a kind a caller branches on, around the driver's
// error.
type Error = dberr.Error

// typed marks err with its kind when it has one: a store unreachable, or
// data it refuses; any other error is returned as it is.
func typed(err error) error {
	switch {
	case err == nil:
		return nil
	case IsUnavailable(err):
		return &Error{Kind: ErrUnavailable, Err: err}
	case IsBadData(err):
		return &Error{Kind: ErrBadData, Err: err}
	}
	return err
}

// IsBadData reports an error that blames what was written, not the store:
// on PostgreSQL a data exception or an integrity constraint violation
// (SQLSTATE classes 22 and 23, e.g. 22021 for a NUL byte in a text
// column); on SQLite a constraint, a datatype mismatch or a value too big.
// The same records fail again however often they are retried.
func IsBadData(err error) bool {
	if errors.Is(err, ErrBadData) {
		return true
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		code := st.SQLState()
		return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23")
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
			return true
		}
	}
	return false
}

// isBusy reports SQLite's SQLITE_BUSY (another connection holds the lock
// this one needs).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// IsUnavailable reports whether err, from a store call, means the store
// cannot be reached, on either backend: a connection that could not be
// made (refused, timed out while dialing, rejected at start-up), a network
// error on an open connection, a connection the pool gave up on, a server
// shutting down or refusing connections (SQLSTATE classes 08 and 57P,
// 53300). A context that ended is not one by itself: a caller that went
// away, or a deadline that passed waiting for a pooled connection or a
// slow query, says the store is busy, not gone.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ce *pgconn.ConnectError
	var op *net.OpError
	var ne net.Error
	var st interface{ SQLState() string }
	switch {
	case errors.Is(err, ErrUnavailable):
		return true
	case errors.As(err, &ce): // pgx could not open a connection, for whatever reason
		return true
	case errors.As(err, &op) && op.Op == "dial": // timed out dialing included
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &ne): // I/O errors on an open connection
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &st):
		code := st.SQLState()
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P") || code == "53300"
	}
	return false
}
