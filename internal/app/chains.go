package app

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/vault"
)

// KeyChains makes the store's records tamper-evident against someone who
// can write the database: the ledger's entries and account heads, and the
// audit log's rows, are authenticated with keys derived from the vault
// (sealed under the master key, never in the database in the clear). It
// returns the keyed auditor. Call it before anything writes.
func KeyChains(db *store.DB, v *vault.Vault) *auditlog.Auditor { return keyChainsOn(db, db, v) }

// keyChainsOn is KeyChains with the audit log written through audit (db,
// or db wrapped to nudge the audit sinks).
func keyChainsOn(db *store.DB, audit auditlog.Store, v *vault.Vault) *auditlog.Auditor {
	db.KeyLedger(v.ChainKeys("ledger"))
	return auditlog.NewAuditor(audit, time.Now, auditlog.KeyedBy(v.ChainKeys("audit")))
}

// SealChains records, once, where the audit log and the ledger become
// keyed, in the vault's sealed keyring (so a database writer cannot move
// it), and covers what older versions wrote: the audit log gets an
// audit.keyed event chained to its last plain row, every account with
// entries gets a head over its balance and the digest of its entries.
// From then on a row without a MAC is a forgery. serve calls it at start.
func SealChains(ctx context.Context, db *store.DB, v *vault.Vault, audit *auditlog.Auditor, log *zap.Logger) error {
	sealed, err := audit.Seal(ctx)
	if err != nil {
		return err
	}
	if sealed {
		log.Warn("audit log keyed: rows written by older versions stay plain SHA-256 and are covered from now on, not before")
	}
	lk := v.ChainKeys("ledger")
	if _, ok := lk.Epoch(); ok {
		return nil
	}
	n, through, err := db.SealLedger(ctx)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if _, err := lk.SetEpoch(ctx, through); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if n == 0 {
		return nil // a fresh ledger: nothing written before keying
	}
	log.Warn("ledger keyed: the balances and entries of accounts written by older versions are covered from now on, not before", zap.Int("accounts", n))
	return audit.Record(ctx, auditlog.Event{Kind: "ledger.keyed", Actor: "system",
		Details: map[string]any{"accounts_sealed": n, "entries_through_id": through}})
}
