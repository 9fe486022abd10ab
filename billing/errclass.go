// Error classification: what a failed write says about the store. The
// driver knowledge (SQLSTATE classes, pgconn, SQLite codes) lives in
// internal/store, which marks the errors of the writes billing branches
// on (InsertUsage) with a dberr kind; billing only maps the kind onto
// what the recorder does, and never learns which driver failed.

package billing

import (
	"errors"

	"github.com/xroute/xroute/internal/dberr"
)

// errKind is what a failed write says about the store.
type errKind int

const (
	errUnknown     errKind = iota // blames no record: retried, the records kept meanwhile
	errUnreachable                // the store cannot be reached: an outage, reported
	errBadData                    // the store refuses what the records hold: set aside
)

func classify(err error) errKind {
	switch {
	case IsUnreachable(err):
		return errUnreachable
	case isBadData(err):
		return errBadData
	}
	return errUnknown
}

// isBadData reports an error that blames what was written, not the store
// (dberr.ErrBadData): the same records fail again however often they are
// retried.
func isBadData(err error) bool { return dberr.IsBadData(err) }

// IsUnreachable reports whether err, from a store call, means the store
// cannot be reached, on either backend (dberr.ErrUnavailable, which the
// store sets from the driver's error; see store.IsUnavailable): a
// connection that could not be made, a network error on an open one, a
// server shutting down or refusing connections. A context that ended is
// not one by itself: a busy store is not a gone one.
func IsUnreachable(err error) bool { return errors.Is(err, dberr.ErrUnavailable) }
