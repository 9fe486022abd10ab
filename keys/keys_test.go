package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
)

func TestGenerateIsWellFormedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := Generate()
		if !WellFormed(k) {
			t.Fatalf("generated key not well formed: %q", k)
		}
		if seen[k] {
			t.Fatalf("duplicate key after %d", i)
		}
		seen[k] = true
	}
}

func TestWellFormedRejects(t *testing.T) {
	good := Generate()
	flip := []byte(good)
	if flip[10] == 'a' {
		flip[10] = 'b'
	} else {
		flip[10] = 'a'
	}
	tests := []struct{ name, key string }{
		{"empty", ""},
		{"wrong prefix", "sk-" + good[3:]},
		{"typo in body", string(flip)},
		{"truncated", good[:len(good)-1]},
		{"extra char", good + "A"},
		{"bad alphabet", good[:5] + "-" + good[6:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if WellFormed(tt.key) {
				t.Fatalf("accepted %q", tt.key)
			}
		})
	}
}

// countingStore counts lookups so tests can see what reached the database.
type countingStore struct {
	*store.DB
	lookups atomic.Int64
}

func (c *countingStore) KeyByHash(ctx context.Context, h string) (store.APIKey, error) {
	c.lookups.Add(1)
	return c.DB.KeyByHash(ctx, h)
}

func newService(t *testing.T, now func() time.Time) (*Service, *countingStore) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs := &countingStore{DB: db}
	svc, err := NewService(cs, []byte(strings.Repeat("p", 32)), time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, cs
}

func TestCreateVerifyRevoke(t *testing.T) {
	ctx := context.Background()
	svc, cs := newService(t, time.Now)
	plain, k, err := svc.Create(ctx, CreateParams{Name: "app", AllowedModels: []string{"gpt-4o*"}})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := cs.ListKeys(ctx)
	if len(rows) != 1 || strings.Contains(rows[0].Hash, plain) || rows[0].Hash != svc.Hash(plain) || rows[0].Hint != Hint(plain) {
		t.Fatalf("stored row must hold only the HMAC and a hint: %+v", rows[0])
	}
	got, err := svc.Verify(ctx, plain)
	if err != nil || got.ID != k.ID {
		t.Fatalf("verify: %v %v", got, err)
	}
	if !got.AllowsModel("gpt-4o-mini") || got.AllowsModel("claude-3") {
		t.Fatal("model globs")
	}
	svc.found.Wait()
	before := cs.lookups.Load()
	for i := 0; i < 10; i++ {
		if _, err := svc.Verify(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	if cs.lookups.Load() != before {
		t.Fatalf("cached key hit the store %d times", cs.lookups.Load()-before)
	}
	if err := svc.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, plain); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after revoke: want ErrRevoked on the very next request, got %v", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	svc, cs := newService(t, clock)
	past := now.Add(-time.Second)
	expired, _, err := svc.Create(ctx, CreateParams{Name: "old", ExpiresAt: &past})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  string
		want error
	}{
		{"malformed", "xr-nope", ErrMalformed},
		{"well formed but unknown", Generate(), ErrUnknown},
		{"expired", expired, ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := svc.Verify(ctx, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
		})
	}
	// Malformed keys never reach the store; an unknown key reaches it once.
	unknown := Generate()
	before := cs.lookups.Load()
	svc.Verify(ctx, "xr-garbage")
	svc.Verify(ctx, unknown)
	svc.missing.Wait()
	svc.Verify(ctx, unknown)
	if n := cs.lookups.Load() - before; n != 1 {
		t.Fatalf("store lookups = %d, want 1", n)
	}
}

func TestLoadPepperCreatesPrivateFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pepper")
	a, err := LoadPepper(config.Auth{PepperFile: p})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pepper file mode: %v %v", st, err)
	}
	b, err := LoadPepper(config.Auth{PepperFile: p})
	if err != nil || string(a) != string(b) || len(a) < 32 {
		t.Fatalf("pepper must be stable across loads: %q %q %v", a, b, err)
	}
	env, _ := LoadPepper(config.Auth{Pepper: strings.Repeat("e", 40), PepperFile: p})
	if string(env) != strings.Repeat("e", 40) {
		t.Fatal("configured pepper must win over the file")
	}
}
