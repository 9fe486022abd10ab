package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/xroute/xroute/keys"
)

func TestEphemeralKeysAndCORS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)
		parent := keys.Record{ID: "key_parent", Name: "p", Hash: "aa", Hint: "xr-p", CreatedAt: now}
		if err := db.CreateKey(ctx, parent); err != nil {
			t.Fatal(err)
		}
		exp := now.Add(time.Minute)
		child := keys.Record{ID: "key_child", Name: "c", Hash: "bb", Hint: "xr-c", CreatedAt: now, ExpiresAt: &exp}
		if err := db.CreateEphemeralKey(ctx, child, keys.ChildRecord{ParentID: parent.ID, SpendCap: 100, MaxRequests: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.EphemeralByKey(ctx, parent.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the parent is no child: %v", err)
		}
		if ok, err := db.CountEphemeralRequest(ctx, child.ID); !ok || err != nil {
			t.Fatalf("first request: %v %v", ok, err)
		}
		if ok, err := db.CountEphemeralRequest(ctx, child.ID); ok || err != nil {
			t.Fatalf("second request past max_requests 1: %v %v", ok, err)
		}
		if ok, err := db.HoldEphemeralSpend(ctx, child.ID, 80); !ok || err != nil {
			t.Fatalf("hold 80 of 100: %v %v", ok, err)
		}
		if ok, _ := db.HoldEphemeralSpend(ctx, child.ID, 30); ok {
			t.Fatal("hold 30 more: past the cap")
		}
		if err := db.SettleEphemeralSpend(ctx, child.ID, 80, 50); err != nil {
			t.Fatal(err)
		}
		e, err := db.EphemeralByKey(ctx, child.ID)
		if err != nil || e != (keys.ChildRecord{KeyID: child.ID, ParentID: parent.ID, SpendCap: 100, MaxRequests: 1, Requests: 1, Spent: 50}) {
			t.Fatalf("row: %+v %v", e, err)
		}
		hashes, err := db.RevokeChildren(ctx, parent.ID, now)
		if err != nil || !reflect.DeepEqual(hashes, []string{"bb"}) {
			t.Fatalf("revoke children: %v %v", hashes, err)
		}
		if again, _ := db.RevokeChildren(ctx, parent.ID, now); len(again) != 0 {
			t.Fatalf("revoked twice: %v", again)
		}
		if row, _ := db.KeyByID(ctx, child.ID); row.RevokedAt == nil {
			t.Fatal("child not revoked")
		}

		if err := db.SetCORSOrigins(ctx, keys.DefaultAccountID, []string{"https://app.example"}, now); err != nil {
			t.Fatal(err)
		}
		if err := db.SetCORSOrigins(ctx, keys.DefaultAccountID, []string{"https://a.example", "http://localhost:5173"}, now); err != nil {
			t.Fatal(err)
		}
		got, err := db.CORSOrigins(ctx)
		if err != nil || !reflect.DeepEqual(got, map[string][]string{keys.DefaultAccountID: {"https://a.example", "http://localhost:5173"}}) {
			t.Fatalf("origins: %v %v", got, err)
		}
		if err := db.SetCORSOrigins(ctx, keys.DefaultAccountID, nil, now); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.CORSOrigins(ctx); len(got) != 0 {
			t.Fatalf("cleared: %v", got)
		}
	})
}
