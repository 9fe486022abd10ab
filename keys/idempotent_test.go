package keys_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/dberr"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// TestTransitionsAreIdempotent: revoke, suspend and resume each emit one
// lifecycle event (one audit row) for the change, none for a repeat, even
// when the repeats race; the key's state is the first change's.
func TestTransitionsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mu sync.Mutex
	events := map[string]int{}
	svc, err := keys.NewService(db, keys.Options{Peppers: [][]byte{[]byte(strings.Repeat("p", 32))}, CacheTTL: time.Minute, Now: time.Now,
		OnEvent: func(_ context.Context, ev keys.LifecycleEvent) {
			mu.Lock()
			events[ev.Kind+" "+ev.Subject]++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)

	for _, tc := range []struct {
		name  string
		setup []func(id string) error
		act   func(id string) error
		kind  string
		check func(k keys.Key) error
	}{
		{"revoke", nil, func(id string) error { return svc.Revoke(ctx, id, "t") }, "key.revoked",
			func(k keys.Key) error {
				if k.RevokedAt == nil {
					return errors.New("not revoked")
				}
				return nil
			}},
		{"suspend", nil, func(id string) error { return svc.Suspend(ctx, id, "t", "why") }, "key.suspended",
			func(k keys.Key) error {
				if k.SuspendedAt == nil || k.SuspendReason != "why" {
					return errors.New("not suspended with the first reason")
				}
				return nil
			}},
		{"resume an active key", nil, func(id string) error { return svc.Resume(ctx, id, "t") }, "key.resumed",
			func(k keys.Key) error {
				if k.SuspendedAt != nil || k.RevokedAt != nil {
					return errors.New("not active")
				}
				return nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, k, err := svc.Create(ctx, keys.CreateParams{Name: tc.name})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = tc.act(k.ID) }()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			want := 1
			if tc.kind == "key.resumed" {
				want = 0 // an active key: nothing to resume
			}
			mu.Lock()
			got := events[tc.kind+" "+k.ID]
			mu.Unlock()
			if got != want {
				t.Fatalf("%d %s events for 4 calls, want %d", got, tc.kind, want)
			}
			after, err := svc.Get(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(after); err != nil {
				t.Fatalf("%v: %+v", err, after)
			}
		})
	}
	if err := svc.Revoke(ctx, "key_missing", "t"); !errors.Is(err, dberr.ErrNotFound) {
		t.Fatalf("revoking a missing key: want ErrNotFound, got %v", err)
	}
}
