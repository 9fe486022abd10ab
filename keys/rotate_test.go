package keys_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

// TestHoleRotateSuspendedKey: rotating a suspended key returned an active
// key, undoing the suspension. The successor is suspended too, with the
// same reason; the old key stays suspended; resuming the new key makes it
// work.
func TestHoleRotateSuspendedKey(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, time.Now)
	oldPlain, old, _ := svc.Create(ctx, keys.CreateParams{Name: "leaked"})
	if err := svc.Suspend(ctx, old.ID, "test", "anomaly: new_ip"); err != nil {
		t.Fatal(err)
	}
	newPlain, nk, err := svc.Rotate(ctx, old.ID, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if nk.Status(time.Now()) != "suspended" || nk.SuspendReason != "anomaly: new_ip" || nk.RotatedFrom != old.ID {
		t.Fatalf("the successor of a suspended key: status %s, %+v", nk.Status(time.Now()), nk)
	}
	for name, plain := range map[string]string{"old": oldPlain, "new": newPlain} {
		if _, err := svc.Verify(ctx, plain); !errors.Is(err, keys.ErrSuspended) {
			t.Fatalf("%s key after rotating a suspended key: %v", name, err)
		}
	}
	if err := svc.Resume(ctx, nk.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, newPlain); err != nil {
		t.Fatalf("the new key once resumed: %v", err)
	}
	if _, err := svc.Verify(ctx, oldPlain); !errors.Is(err, keys.ErrSuspended) {
		t.Fatalf("resuming the new key let the old one in: %v", err)
	}
}

// TestHoleRotateDuringOverlap: a second rotation of a key living out its
// overlap returned a key that died with that overlap while the answer
// said active. It is refused (rotate the successor); the successor
// rotates normally, its own successor keeping the operator's expiry.
func TestHoleRotateDuringOverlap(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	svc, _ := newService(t, clock)
	expires := now.Add(30 * 24 * time.Hour)
	_, a, _ := svc.Create(ctx, keys.CreateParams{Name: "app", ExpiresAt: &expires})
	_, b, err := svc.Rotate(ctx, a.ID, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute)
	if _, k, err := svc.Rotate(ctx, a.ID, "test", time.Hour); !errors.Is(err, keys.ErrNotRotatable) || !strings.Contains(err.Error(), b.ID) {
		t.Fatalf("second rotation of a key in its overlap: %+v %v", k, err)
	}
	cPlain, c, err := svc.Rotate(ctx, b.ID, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExpiresAt == nil || !c.ExpiresAt.Equal(expires.UTC().Truncate(time.Millisecond)) || c.Status(now) != "active" {
		t.Fatalf("the successor's successor: expires %v, status %s", c.ExpiresAt, c.Status(now))
	}
	now = now.Add(2 * time.Hour) // past every overlap
	if _, err := svc.Verify(ctx, cPlain); err != nil {
		t.Fatalf("the key the answer called active died with an overlap: %v", err)
	}
}

// TestRotateRevokedOrExpiredKeyIsRefused: rotation never brings a dead key
// back.
func TestRotateRevokedOrExpiredKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	svc, _ := newService(t, func() time.Time { return now })
	_, revoked, _ := svc.Create(ctx, keys.CreateParams{Name: "revoked"})
	if err := svc.Revoke(ctx, revoked.ID, "test"); err != nil {
		t.Fatal(err)
	}
	soon := now.Add(time.Minute)
	_, expired, _ := svc.Create(ctx, keys.CreateParams{Name: "expired", ExpiresAt: &soon})
	now = now.Add(time.Hour)
	for name, id := range map[string]string{"revoked": revoked.ID, "expired": expired.ID} {
		if _, _, err := svc.Rotate(ctx, id, "test", 0); !errors.Is(err, keys.ErrNotRotatable) || !strings.Contains(err.Error(), name) {
			t.Errorf("rotating a %s key: %v", name, err)
		}
	}
	if _, _, err := svc.Rotate(ctx, "key_nope", "test", 0); errors.Is(err, keys.ErrNotRotatable) || err == nil {
		t.Errorf("rotating an unknown key: %v", err)
	}
}

// TestConcurrentRotationsYieldOneSuccessor: two rotations of one key at
// once cannot both succeed.
func TestConcurrentRotationsYieldOneSuccessor(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, time.Now)
	_, k, _ := svc.Create(ctx, keys.CreateParams{Name: "app"})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = svc.Rotate(ctx, k.ID, "test", time.Hour)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, keys.ErrNotRotatable):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d rotations succeeded", ok)
	}
}
