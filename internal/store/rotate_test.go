package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

// TestRotateKeyIsOneTransaction: the decision sees the successor of an
// already rotated key, a refusal writes nothing, and of concurrent
// rotations of one key exactly one succeeds, on both backends.
func TestRotateKeyIsOneTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
		if err := db.CreateKey(ctx, keys.Record{ID: "key_a", Name: "a", Hash: "ha", Hint: "x", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		refused := errors.New("refused")
		var mu sync.Mutex
		n := 0
		next := func(old keys.Record, successor string) (keys.Record, time.Time, error) {
			if successor != "" {
				return keys.Record{}, time.Time{}, refused
			}
			mu.Lock()
			n++
			id := "key_b" + string(rune('0'+n))
			mu.Unlock()
			k := old
			k.ID, k.Hash, k.RotatedFrom, k.CreatedAt = id, "h"+id, old.ID, t0.Add(time.Minute)
			return k, t0.Add(time.Hour), nil
		}
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.RotateKey(ctx, "key_a", next)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, refused):
				t.Fatalf("rotation: %v", err)
			}
		}
		keys, err := db.ListKeys(ctx, keys.KeyFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if ok != 1 || len(keys) != 2 {
			t.Fatalf("%d rotations succeeded, %d keys", ok, len(keys))
		}
		old, err := db.KeyByID(ctx, "key_a")
		if err != nil || old.ExpiresAt == nil || !old.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("old key: %+v %v", old, err)
		}
		if _, err := db.RotateKey(ctx, "key_nope", next); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	})
}
