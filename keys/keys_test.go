package keys_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

func TestGenerateIsWellFormedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := keys.Generate()
		if !keys.WellFormed(k) {
			t.Fatalf("generated key not well formed: %q", k)
		}
		if seen[k] {
			t.Fatalf("duplicate key after %d", i)
		}
		seen[k] = true
	}
}

func TestWellFormedRejects(t *testing.T) {
	good := keys.Generate()
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
			if keys.WellFormed(tt.key) {
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

func (c *countingStore) KeyByHash(ctx context.Context, h string) (keys.Record, error) {
	c.lookups.Add(1)
	return c.DB.KeyByHash(ctx, h)
}

func newService(t *testing.T, now func() time.Time) (*keys.Service, *countingStore) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs := &countingStore{DB: db}
	svc, err := keys.NewService(cs, keys.Options{Peppers: [][]byte{[]byte(strings.Repeat("p", 32))}, CacheTTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, cs
}

func TestCreateVerifyRevoke(t *testing.T) {
	ctx := context.Background()
	svc, cs := newService(t, time.Now)
	plain, k, err := svc.Create(ctx, keys.CreateParams{Name: "app", AllowedModels: []string{"gpt-4o*"}})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := cs.ListKeys(ctx, keys.KeyFilter{})
	if len(rows) != 1 || strings.Contains(rows[0].Hash, plain) || rows[0].Hash != svc.Hash(plain) || rows[0].Hint != keys.Hint(plain) {
		t.Fatalf("stored row must hold only the HMAC and a hint: %+v", rows[0])
	}
	got, err := svc.Verify(ctx, plain)
	if err != nil || got.ID != k.ID {
		t.Fatalf("verify: %v %v", got, err)
	}
	if !got.AllowsModel("gpt-4o-mini") || got.AllowsModel("claude-3") {
		t.Fatal("model globs")
	}
	svc.WaitFound()
	before := cs.lookups.Load()
	for i := 0; i < 10; i++ {
		if _, err := svc.Verify(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	if cs.lookups.Load() != before {
		t.Fatalf("cached key hit the store %d times", cs.lookups.Load()-before)
	}
	if err := svc.Revoke(ctx, k.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, plain); !errors.Is(err, keys.ErrRevoked) {
		t.Fatalf("after revoke: want ErrRevoked on the very next request, got %v", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	svc, cs := newService(t, clock)
	past := now.Add(-time.Second)
	expired, _, err := svc.Create(ctx, keys.CreateParams{Name: "old", ExpiresAt: &past})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  string
		want error
	}{
		{"malformed", "xr-nope", keys.ErrMalformed},
		{"well formed but unknown", keys.Generate(), keys.ErrUnknown},
		{"expired", expired, keys.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := svc.Verify(ctx, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
		})
	}
	// Malformed keys never reach the store; an unknown key reaches it once.
	unknown := keys.Generate()
	before := cs.lookups.Load()
	svc.Verify(ctx, "xr-garbage")
	svc.Verify(ctx, unknown)
	svc.WaitMissing()
	svc.Verify(ctx, unknown)
	if n := cs.lookups.Load() - before; n != 1 {
		t.Fatalf("store lookups = %d, want 1", n)
	}
}

func TestLoadPepperCreatesPrivateFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pepper")
	a, err := keys.LoadPepper(config.Auth{PepperFile: p})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pepper file mode: %v %v", st, err)
	}
	b, err := keys.LoadPepper(config.Auth{PepperFile: p})
	if err != nil || string(a) != string(b) || len(a) < 32 {
		t.Fatalf("pepper must be stable across loads: %q %q %v", a, b, err)
	}
	env, _ := keys.LoadPepper(config.Auth{Pepper: strings.Repeat("e", 40), PepperFile: p})
	if string(env) != strings.Repeat("e", 40) {
		t.Fatal("configured pepper must win over the file")
	}
}

func TestRotateKeepsPropertiesAndOverlaps(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	svc, _ := newService(t, clock)
	acct, err := svc.CreateAccount(ctx, "acme", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	oldPlain, old, err := svc.Create(ctx, keys.CreateParams{AccountID: acct.ID, Name: "app", AllowedModels: []string{"gpt-*"}, AllowedCIDRs: []string{"10.0.0.0/8"}, RPM: 60, Metadata: map[string]string{"team": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		overlap time.Duration
		// at is when the old key is tried, relative to the rotation.
		at      time.Duration
		wantOld error
	}{
		{"old key works during the overlap", time.Hour, 59 * time.Minute, nil},
		{"old key expires after the overlap", time.Hour, time.Hour, keys.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = time.Now()
			plain, k, err := svc.Create(ctx, keys.CreateParams{AccountID: acct.ID, Name: "tmp"})
			if err != nil {
				t.Fatal(err)
			}
			svc.Verify(ctx, plain) // cached before rotation
			svc.WaitFound()
			newPlain, nk, err := svc.Rotate(ctx, k.ID, "test", tt.overlap)
			if err != nil {
				t.Fatal(err)
			}
			now = now.Add(tt.at)
			if _, err := svc.Verify(ctx, plain); !errors.Is(err, tt.wantOld) {
				t.Fatalf("old key: got %v, want %v", err, tt.wantOld)
			}
			got, err := svc.Verify(ctx, newPlain)
			if err != nil || got.ID != nk.ID || got.RotatedFrom != k.ID || got.AccountID != acct.ID {
				t.Fatalf("new key: %+v %v", got, err)
			}
		})
	}
	now = time.Now()
	newPlain, nk, err := svc.Rotate(ctx, old.ID, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, oldPlain); !errors.Is(err, keys.ErrExpired) {
		t.Fatalf("overlap 0 must stop the old key at once: %v", err)
	}
	got, _ := svc.Verify(ctx, newPlain)
	if got.RPM != 60 || got.AllowedModels[0] != "gpt-*" || got.Networks[0].String() != "10.0.0.0/8" || got.Metadata["team"] != "x" || nk.Hint == old.Hint {
		t.Fatalf("rotation must keep properties: %+v", got)
	}
	if _, _, err := svc.Rotate(ctx, old.ID, "test", 0); err == nil {
		t.Fatal("an expired key cannot be rotated again")
	}
}

func TestSuspendResume(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, time.Now)
	plain, k, _ := svc.Create(ctx, keys.CreateParams{Name: "app"})
	svc.Verify(ctx, plain)
	svc.WaitFound()
	if err := svc.Suspend(ctx, k.ID, "test", "anomaly"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, plain); !errors.Is(err, keys.ErrSuspended) {
		t.Fatalf("suspended: %v", err)
	}
	if err := svc.Resume(ctx, k.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, plain); err != nil {
		t.Fatalf("resumed: %v", err)
	}
}

func TestPepperRotationRehashesOnUse(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	oldPepper, newPepper := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	before, _ := keys.NewService(db, keys.Options{Peppers: [][]byte{oldPepper}, CacheTTL: time.Minute})
	plain, k, _ := before.Create(ctx, keys.CreateParams{Name: "app"})
	before.Close()

	onlyNew, _ := keys.NewService(db, keys.Options{Peppers: [][]byte{newPepper}, CacheTTL: time.Minute})
	if _, err := onlyNew.Verify(ctx, plain); !errors.Is(err, keys.ErrUnknown) {
		t.Fatalf("without the old pepper the key is unknown: %v", err)
	}
	onlyNew.Close()
	both, _ := keys.NewService(db, keys.Options{Peppers: [][]byte{newPepper, oldPepper}, CacheTTL: time.Minute})
	defer both.Close()
	if got, err := both.Verify(ctx, plain); err != nil || got.ID != k.ID {
		t.Fatalf("old pepper still accepted: %v", err)
	}
	row, _ := db.KeyByID(ctx, k.ID)
	if row.Hash != both.Hash(plain) {
		t.Fatal("the key was not re-hashed under the current pepper")
	}
}

func TestScopes(t *testing.T) {
	k, err := keys.FromRow(keys.Record{ID: "k", AllowedEndpoints: []string{keys.EndpointChat}, AllowedCIDRs: []string{"10.1.0.0/16", "192.0.2.7"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"endpoint chat", k.AllowsEndpoint(keys.EndpointChat)},
		{"endpoint embeddings refused", !k.AllowsEndpoint(keys.EndpointEmbeddings)},
		{"ip in cidr", k.AllowsIP(netip.MustParseAddr("10.1.2.3"))},
		{"ipv4-mapped ipv6 in cidr", k.AllowsIP(netip.MustParseAddr("::ffff:10.1.2.3"))},
		{"single ip", k.AllowsIP(netip.MustParseAddr("192.0.2.7"))},
		{"ip outside refused", !k.AllowsIP(netip.MustParseAddr("10.2.0.1"))},
		{"invalid ip refused", !k.AllowsIP(netip.Addr{})},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s", tt.name)
		}
	}
	if _, _, err := (&keys.Service{}).Create(context.Background(), keys.CreateParams{Name: "x", AllowedCIDRs: []string{"nope"}}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

func TestAdminAndCallerPrefixes(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, time.Now)
	plain, k, err := svc.Create(ctx, keys.CreateParams{Name: "ops", Kind: keys.KindAdmin})
	if err != nil || !strings.HasPrefix(plain, keys.AdminPrefix) || k.Kind != keys.KindAdmin {
		t.Fatalf("admin key: %q %+v %v", plain, k, err)
	}
	got, err := svc.Verify(ctx, plain)
	if err != nil || got.Kind != keys.KindAdmin {
		t.Fatalf("verify admin: %+v %v", got, err)
	}
}

// BenchmarkVerifyCacheHit is the hot path of every request: checksum,
// HMAC, cache lookup, constant-time compare.
func BenchmarkVerifyCacheHit(b *testing.B) {
	db, _ := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "k.db"))
	defer db.Close()
	svc, _ := keys.NewService(db, keys.Options{Peppers: [][]byte{[]byte(strings.Repeat("p", 32))}, CacheTTL: time.Hour})
	defer svc.Close()
	plain, _, _ := svc.Create(context.Background(), keys.CreateParams{Name: "bench"})
	svc.Verify(context.Background(), plain)
	svc.WaitFound()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := svc.Verify(ctx, plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyMalformed(b *testing.B) {
	svc := &keys.Service{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		svc.Verify(context.Background(), "xr-0000000000000000000000000000000000000A")
	}
}
