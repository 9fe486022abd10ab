package keys_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newChildService(t *testing.T, clk *clock) (*keys.Service, *store.DB) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := keys.NewService(db, keys.Options{Peppers: [][]byte{[]byte(strings.Repeat("p", 32))}, CacheTTL: time.Minute, Now: clk.now,
		Children: db, EphemeralMaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, db
}

func mintParent(t *testing.T, svc *keys.Service, p keys.CreateParams) (string, *keys.Key) {
	t.Helper()
	if p.Name == "" {
		p.Name = "server"
	}
	plain, _, err := svc.Create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	k, err := svc.Verify(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	return plain, k
}

func TestMintRefusesWiderThanParent(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, _ := newChildService(t, clk)
	_, parent := mintParent(t, svc, keys.CreateParams{AllowedModels: []string{"gpt-4o*"}, AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointModels, keys.EndpointMint},
		AllowedCIDRs: []string{"10.0.0.0/8"}, RPM: 60, TPM: 1000, MaxConcurrent: 2})
	tests := []struct {
		name  string
		p     keys.MintParams
		field string // "" when allowed
	}{
		{"inherits everything", keys.MintParams{}, ""},
		{"narrower everything", keys.MintParams{Models: []string{"gpt-4o-mini"}, Endpoints: []string{keys.EndpointChat}, CIDRs: []string{"10.1.0.0/16"}, RPM: 10, TPM: 100, MaxConcurrent: 1, TTL: time.Minute}, ""},
		{"wider model", keys.MintParams{Models: []string{"claude-3"}}, "models"},
		{"wider model glob", keys.MintParams{Models: []string{"gpt-*"}}, "models"},
		{"wider endpoint", keys.MintParams{Endpoints: []string{keys.EndpointEmbeddings}}, "endpoints"},
		{"mint for a child", keys.MintParams{Endpoints: []string{keys.EndpointMint}}, "endpoints"},
		{"star endpoint", keys.MintParams{Endpoints: []string{"*"}}, "endpoints"},
		{"wider cidr", keys.MintParams{CIDRs: []string{"0.0.0.0/0"}}, "allowed_cidrs"},
		{"outside cidr", keys.MintParams{CIDRs: []string{"192.168.1.1"}}, "allowed_cidrs"},
		{"wider rpm", keys.MintParams{RPM: 61}, "rpm"},
		{"wider tpm", keys.MintParams{TPM: 1001}, "tpm"},
		{"wider concurrency", keys.MintParams{MaxConcurrent: 3}, "max_concurrent"},
		{"ttl past the cap", keys.MintParams{TTL: 2 * time.Hour}, "ttl_seconds"},
		{"negative spend", keys.MintParams{SpendCap: -1}, "max_spend_usd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, k, err := svc.Mint(context.Background(), parent, tt.p)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if k.Child == nil || k.Child.ParentID != parent.ID || k.RPM > 60 || len(k.AllowedEndpoints) == 0 || k.AllowsEndpoint(keys.EndpointMint) || k.CanMint() {
					t.Fatalf("child not narrowed: %+v", k)
				}
				return
			}
			var ve *keys.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("want a refusal naming %q, got %v", tt.field, err)
			}
		})
	}
}

func TestMintNeedsTheScope(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, _ := newChildService(t, clk)
	for _, eps := range [][]string{nil, {"*"}, {keys.EndpointChat}} {
		_, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: eps})
		if _, _, err := svc.Mint(context.Background(), parent, keys.MintParams{}); err == nil {
			t.Fatalf("a key with endpoints %v minted a child", eps)
		}
	}
	// A child never mints, even when its parent may.
	_, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointMint}})
	plain, _, err := svc.Mint(context.Background(), parent, keys.MintParams{})
	if err != nil {
		t.Fatal(err)
	}
	child, err := svc.Verify(context.Background(), plain)
	if err != nil || child.Child == nil {
		t.Fatalf("verify child: %+v %v", child, err)
	}
	if _, _, err := svc.Mint(context.Background(), child, keys.MintParams{}); err == nil {
		t.Fatal("a child minted a grandchild")
	}
}

func TestChildExpiresAfterTTL(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, _ := newChildService(t, clk)
	_, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointMint}})
	ctx := context.Background()
	plain, k, err := svc.Mint(ctx, parent, keys.MintParams{})
	if err != nil {
		t.Fatal(err)
	}
	if got := k.ExpiresAt.Sub(clk.now()); got > keys.DefaultChildTTL || got < keys.DefaultChildTTL-time.Second {
		t.Fatalf("default ttl: expires in %v", got)
	}
	if _, err := svc.Verify(ctx, plain); err != nil {
		t.Fatalf("fresh child: %v", err)
	}
	clk.add(keys.DefaultChildTTL)
	if _, err := svc.Verify(ctx, plain); !errors.Is(err, keys.ErrExpired) {
		t.Fatalf("after its ttl: want ErrExpired, got %v", err)
	}
}

func TestParentEndsItsChildren(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		end  func(svc *keys.Service, parentID string) error
	}{
		{"revoked", func(svc *keys.Service, id string) error { return svc.Revoke(ctx, id, "t") }},
		{"suspended", func(svc *keys.Service, id string) error { return svc.Suspend(ctx, id, "t", "leak") }},
		{"rotated out", func(svc *keys.Service, id string) error { _, _, err := svc.Rotate(ctx, id, "t", time.Hour); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: time.Now()}
			svc, _ := newChildService(t, clk)
			parentPlain, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointMint}})
			plain, _, err := svc.Mint(ctx, parent, keys.MintParams{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Verify(ctx, plain); err != nil { // cached now
				t.Fatal(err)
			}
			svc.WaitFound()
			if err := tt.end(svc, parent.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Verify(ctx, plain); !errors.Is(err, keys.ErrRevoked) {
				t.Fatalf("child after its parent was %s: want ErrRevoked, got %v", tt.name, err)
			}
			if tt.name == "rotated out" {
				if _, err := svc.Verify(ctx, parentPlain); err != nil {
					t.Fatalf("the parent itself lives out its overlap: %v", err)
				}
			}
		})
	}
}

// The parent's state is read at auth even when the fan-out did not reach
// this replica's cache entry of the child: a parent revoked in the store
// and dropped from the cache ends the child.
func TestChildChecksParentAtAuth(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	svc, db := newChildService(t, clk)
	_, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointMint}})
	plain, _, err := svc.Mint(ctx, parent, keys.MintParams{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, plain); err != nil {
		t.Fatal(err)
	}
	svc.WaitFound()
	// Another replica revoked the parent: the store changed, and its
	// invalidation (the parent's hash) arrives here.
	if _, err := db.RevokeKey(ctx, parent.ID, clk.now()); err != nil {
		t.Fatal(err)
	}
	row, _ := db.KeyByID(ctx, parent.ID)
	svc.InvalidateHash(row.Hash)
	if _, err := svc.Verify(ctx, plain); !errors.Is(err, keys.ErrRevoked) {
		t.Fatalf("want ErrRevoked, got %v", err)
	}
}

func TestChildCannotBeRotated(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	svc, _ := newChildService(t, clk)
	_, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointMint}})
	_, k, err := svc.Mint(ctx, parent, keys.MintParams{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Rotate(ctx, k.ID, "t", 0); !errors.Is(err, keys.ErrNotRotatable) {
		t.Fatalf("want ErrNotRotatable, got %v", err)
	}
}

func TestChildCaps(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	svc, _ := newChildService(t, clk)
	_, parent := mintParent(t, svc, keys.CreateParams{AllowedEndpoints: []string{keys.EndpointChat, keys.EndpointMint}})
	plain, _, err := svc.Mint(ctx, parent, keys.MintParams{MaxRequests: 2, SpendCap: 1000})
	if err != nil {
		t.Fatal(err)
	}
	child, err := svc.Verify(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := svc.AdmitChild(ctx, child); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	if err := svc.AdmitChild(ctx, child); !errors.Is(err, keys.ErrChildCap) {
		t.Fatalf("third request: want ErrChildCap, got %v", err)
	}
	settle, err := svc.HoldChildSpend(ctx, child, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.HoldChildSpend(ctx, child, 600); !errors.Is(err, keys.ErrChildCap) {
		t.Fatalf("held 600 of 1000: another 600 must be refused, got %v", err)
	}
	if err := settle(ctx, 700); err != nil { // the answer cost more than held: it counts
		t.Fatal(err)
	}
	if _, err := svc.HoldChildSpend(ctx, child, 301); !errors.Is(err, keys.ErrChildCap) {
		t.Fatalf("spent 700 of 1000: 301 must be refused, got %v", err)
	}
	if _, err := svc.HoldChildSpend(ctx, child, 300); err != nil {
		t.Fatalf("spent 700 of 1000: 300 fits, got %v", err)
	}
}
