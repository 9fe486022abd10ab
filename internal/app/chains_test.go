package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/vault"
)

// TestSealChainsOnUpgrade: a database written by an older version (plain
// audit rows, ledger entries without MACs) is keyed at the first start:
// both verify, the old rows are covered from then on, and a restart does
// not seal again (the epochs are in the sealed keyring).
func TestSealChainsOnUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The older version: unkeyed.
	old := auditlog.NewAuditor(db, time.Now)
	for _, kind := range []string{"key.created", "credits.changed"} {
		if err := old.Record(ctx, auditlog.Event{Kind: kind, Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := billing.NewLedger(db, time.Now).TopUp(ctx, keys.DefaultAccountID, 5*billing.NanoPerUSD, "inv-1", "cli"); err != nil {
		t.Fatal(err)
	}

	v, err := vault.Open(ctx, db, vault.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	for start := 1; start <= 2; start++ {
		audit := KeyChains(db, v)
		if err := SealChains(ctx, db, v, audit, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Check(ctx, nil)
		// Start 1 appends audit.keyed (seq 3) and ledger.keyed (seq 4).
		if err != nil || rep.Rows != 4 || rep.LegacyRows != 2 || !rep.Keyed {
			t.Fatalf("start %d: audit %+v %v", start, rep, err)
		}
		if mm, err := billing.NewLedger(db, time.Now).Verify(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("start %d: ledger %+v %v", start, mm, err)
		}
	}
	if e, ok := v.ChainKeys("audit").Epoch(); !ok || e != 3 {
		t.Fatalf("audit epoch %d %v, want 3", e, ok)
	}
	if e, ok := v.ChainKeys("ledger").Epoch(); !ok || e != 1 {
		t.Fatalf("ledger epoch %d %v, want 1 (the one old entry)", e, ok)
	}
}
