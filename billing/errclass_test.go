package billing

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/xroute/xroute/internal/dberr"
)

// The driver's errors are classified by the store (internal/store's
// classify_test.go); billing reads only the dberr kind the store set.
func TestClassifyStoreErrors(t *testing.T) {
	unavailable := &dberr.Error{Kind: dberr.ErrUnavailable, Err: errors.New("dial tcp: connection refused")}
	badData := &dberr.Error{Kind: dberr.ErrBadData, Err: errors.New("invalid byte sequence")}
	tests := []struct {
		name string
		err  error
		want errKind
	}{
		{"unavailable", unavailable, errUnreachable},
		{"unavailable, wrapped", fmt.Errorf("insert usage: %w", unavailable), errUnreachable},
		{"the sentinel itself", dberr.ErrUnavailable, errUnreachable},
		{"bad data", badData, errBadData},
		{"bad data, wrapped", fmt.Errorf("insert usage r1: %w", badData), errBadData},
		{"untyped", errors.New("database is locked"), errUnknown},
		{"caller went away", fmt.Errorf("query: %w", context.Canceled), errUnknown},
		{"not found is no failure of the store", dberr.ErrNotFound, errUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := classify(tt.err); got != tt.want {
				t.Fatalf("classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if got, want := IsUnreachable(tt.err), tt.want == errUnreachable; got != want {
				t.Fatalf("IsUnreachable(%v) = %v, want %v", tt.err, got, want)
			}
		})
	}
	if IsUnreachable(nil) || classify(nil) != errUnknown {
		t.Fatal("nil is no failure")
	}
}
