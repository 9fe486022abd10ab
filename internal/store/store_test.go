package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestMigrationsAreIdempotent(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	v1, err := db.SchemaVersion(ctx)
	if err != nil || v1 < 1 {
		t.Fatalf("version %d, %v", v1, err)
	}
	db.Close()
	db2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db2.Close()
	if v2, _ := db2.SchemaVersion(ctx); v2 != v1 {
		t.Fatalf("version changed on reopen: %d -> %d", v1, v2)
	}
	var mode string
	if err := db2.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestKeysRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	exp := now.Add(time.Hour)
	k := APIKey{ID: "key_1", Name: "ci", Hash: "abc", PepperVersion: 1, Hint: "xr-ab…yz", AllowedModels: []string{"gpt-*"}, CreatedAt: now, ExpiresAt: &exp}
	if err := db.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateKey(ctx, k); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate: want ErrConflict, got %v", err)
	}
	got, err := db.KeyByHash(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || got.AllowedModels[0] != "gpt-*" || !got.CreatedAt.Equal(now) || !got.ExpiresAt.Equal(exp) || got.RevokedAt != nil {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := db.KeyByHash(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: want ErrNotFound, got %v", err)
	}
	if err := db.RevokeKey(ctx, "key_1", now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeKey(ctx, "key_x", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke missing: %v", err)
	}
	got, _ = db.KeyByID(ctx, "key_1")
	if got.RevokedAt == nil {
		t.Fatal("revoked_at not set")
	}
	list, err := db.ListKeys(ctx, KeyFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestInsertUsageSkipsReplayedRequests(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	now := time.Now()
	batch := []UsageRecord{
		{RequestID: "r1", KeyID: "k", Model: "m", Provider: "p", PromptTokens: 10, CompletionTokens: 5, Latency: 1500 * time.Microsecond, Status: 200, Attempts: 1, CreatedAt: now},
		{RequestID: "r2", KeyID: "k", Model: "m", Status: 502, ErrorCode: "upstream_error", CreatedAt: now},
	}
	if err := db.InsertUsage(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertUsage(ctx, batch); err != nil { // a retried batch
		t.Fatal(err)
	}
	recs, err := db.ListUsage(ctx, UsageFilter{KeyID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("want 2 records after replay, got %d", len(recs))
	}
	r1, _ := db.ListUsage(ctx, UsageFilter{RequestID: "r1"})
	if r1[0].PromptTokens != 10 || r1[0].Latency != 1500*time.Microsecond || r1[0].Attempts != 1 {
		t.Fatalf("round trip: %+v", r1[0])
	}
}
