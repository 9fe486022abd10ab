// Package dberr holds the errors a storage backend returns and its callers
// branch on. It knows no driver and no SQL: the domain packages (keys,
// billing) define the storage interfaces they need and compare the errors
// those interfaces return against these, so they never import the store
// or its drivers. internal/store produces them.
package dberr

import "errors"

var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write would break a uniqueness rule (the row, or
	// its idempotency key, already exists).
	ErrConflict = errors.New("already exists")
	// ErrUnavailable: the store cannot be reached (a connection refused,
	// reset or given up on; the server shutting down). The same write may
	// succeed later.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrBadData: the store refuses what was written (a constraint, a data
	// exception); the same write fails again however often it is retried.
	ErrBadData = errors.New("store: data refused")
)

// Error is a store error whose kind a caller branches on: it matches its
// Kind (ErrUnavailable or ErrBadData) with errors.Is, reads as its cause,
// and keeps the driver's error in the chain for errors.As.
type Error struct {
	Kind error // ErrUnavailable or ErrBadData
	Err  error // the cause, from the driver
}

func (e *Error) Error() string        { return e.Err.Error() }
func (e *Error) Unwrap() error        { return e.Err }
func (e *Error) Is(target error) bool { return target == e.Kind }

// IsUnavailable reports whether err says the store cannot be reached.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsBadData reports whether err says the store refused what was written.
func IsBadData(err error) bool { return errors.Is(err, ErrBadData) }
