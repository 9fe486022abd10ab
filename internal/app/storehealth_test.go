package app

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

type sqlStateErr string

func (e sqlStateErr) Error() string    { return "server error " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

func TestUnreachable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("keys: lookup: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"connection reset", fmt.Errorf("insert: %w", syscall.ECONNRESET), true},
		{"pool gave up on the connection", fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{"store call timed out", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"server shutting down (57P01)", sqlStateErr("57P01"), true},
		{"connection exception (08006)", fmt.Errorf("wrapped: %w", sqlStateErr("08006")), true},
		{"too many connections (53300)", sqlStateErr("53300"), true},
		{"unique violation (23505)", sqlStateErr("23505"), false},
		{"caller went away", fmt.Errorf("query: %w", context.Canceled), false},
		{"plain error", errors.New("database is locked"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unreachable(tt.err); got != tt.want {
				t.Fatalf("unreachable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestStoreHealthFollowsPingsAndFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	var failing atomic.Bool
	ping := func(context.Context) error {
		if failing.Load() {
			return &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		return nil
	}
	h := newStoreHealth(ping, zap.NewNop(), 5*time.Millisecond, 50*time.Millisecond)
	h.start()
	defer h.close()
	wait := func(what string, up bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for h.StoreUp() != up {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if !h.StoreUp() || h.SpoolFull() {
		t.Fatal("a fresh monitor reports the store up and no spool")
	}
	failing.Store(true)
	wait("a failed ping to take the store down", false)
	if !h.Unreachable(errors.New("any error while down")) {
		t.Fatal("while the store is down every store error is taken as that")
	}
	failing.Store(false)
	wait("a successful ping to bring it up", true)

	// A failure on the request path takes it down at once; the next ping
	// brings it back.
	if h.Unreachable(errors.New("constraint violated")) || !h.StoreUp() {
		t.Fatal("an error that is not a connection failure must not take the store down")
	}
	h.markDown()
	if h.StoreUp() {
		t.Fatal("markDown must take the store down at once")
	}
	wait("the next ping", true)
	h.close()
	h.close() // idempotent
}
