package vault_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/internal/store/sqlitetest"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/vault"
)

// TestChainKeys: keys per purpose and term, stable across a reload and a
// rotation, unknown terms refused, and the epoch recorded once.
func TestChainKeys(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	master := vault.GenerateMasterKey()
	v := sqlitetest.Vault(t, db, master)
	audit, ledger := v.ChainKeys("audit"), v.ChainKeys("ledger")
	msg := []byte("row")
	a1, err := audit.MAC(1, msg)
	if err != nil {
		t.Fatal(err)
	}
	if l1, _ := ledger.MAC(1, msg); bytes.Equal(a1, l1) {
		t.Fatal("two purposes share a key")
	}
	if _, err := audit.MAC(2, msg); !errors.Is(err, vault.ErrUnknownTerm) {
		t.Fatalf("unknown term: %v", err)
	}
	if _, err := v.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if audit.ActiveTerm() != 2 {
		t.Fatalf("active term %d after rotation", audit.ActiveTerm())
	}
	// Another process (same master key) derives the same keys, for both
	// terms: old rows keep verifying.
	other := sqlitetest.Vault(t, db, master).ChainKeys("audit")
	for term := uint32(1); term <= 2; term++ {
		got, err := other.MAC(term, msg)
		want, _ := audit.MAC(term, msg)
		if err != nil || !hmac.Equal(got, want) {
			t.Fatalf("term %d differs across processes: %v", term, err)
		}
	}
	// A replica that has not reloaded finds a new term in the store.
	stale := sqlitetest.Vault(t, db, master)
	if _, err := v.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.ChainKeys("audit").MAC(3, msg); err != nil {
		t.Fatalf("a term another replica added: %v", err)
	}
	// The epoch: recorded once, first writer wins, kept in the keyring.
	if _, ok := audit.Epoch(); ok {
		t.Fatal("an epoch before any was set")
	}
	if e, err := audit.SetEpoch(ctx, 7); err != nil || e != 7 {
		t.Fatalf("set epoch: %d %v", e, err)
	}
	if e, err := other.SetEpoch(ctx, 9); err != nil || e != 7 {
		t.Fatalf("a second epoch: %d %v (want the first, 7)", e, err)
	}
	if e, ok := sqlitetest.Vault(t, db, master).ChainKeys("audit").Epoch(); !ok || e != 7 {
		t.Fatalf("epoch after a reload: %d %v", e, ok)
	}
	if _, ok := ledger.Epoch(); ok {
		t.Fatal("the audit epoch leaked into the ledger's")
	}
	if err := v.RewrapMaster(ctx, vault.GenerateMasterKey()); err != nil {
		t.Fatal(err)
	}
	if e, ok := audit.Epoch(); !ok || e != 7 {
		t.Fatalf("epoch after a master rewrap: %d %v", e, ok)
	}
}

// BenchmarkChainKeysMAC is the cost a keyed row adds: one HMAC-SHA256 of
// a ledger entry's size.
func BenchmarkChainKeysMAC(b *testing.B) {
	db, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v, err := vault.Open(context.Background(), db, vault.GenerateMasterKey())
	if err != nil {
		b.Fatal(err)
	}
	c := v.ChainKeys("ledger")
	msg := bytes.Repeat([]byte("x"), 200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.MAC(1, msg); err != nil {
			b.Fatal(err)
		}
	}
}
