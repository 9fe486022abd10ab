package auditlog_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/xroute/xroute/internal/store/sqlitetest"

	"github.com/xroute/xroute/internal/dberr"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/vault"
)

// auKeyed is a keyed auditor over a fresh database and vault, as the
// gateway builds it, and the database's path for raw access.
func auKeyed(t *testing.T) (*auditlog.Auditor, *vault.Vault, *store.DB, string) {
	t.Helper()
	db, path := sqlitetest.Open(t)
	v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	a := auditlog.NewAuditor(db, auTestClock(), auditlog.KeyedBy(v.ChainKeys("audit")))
	if _, err := a.Seal(context.Background()); err != nil { // as the gateway does at start
		t.Fatal(err)
	}
	return a, v, db, path
}

// auForge rewrites rows from seq `from` to seq `to` (0: the last) as someone with database write
// access and the source code (but not the vault's master key) would: each
// row edited by edit (may be nil), then re-hashed with the published
// SHA-256 form and re-linked, so the chain is consistent again. asLegacy
// also marks the rows as plain SHA-256 (key_term 0); otherwise the key
// term is left and only the hash recomputed.
func auForge(t *testing.T, path string, from, to int64, asLegacy bool, edit func(r *auditlog.Row)) {
	t.Helper()
	raw := sqlitetest.Raw(t, path)
	for _, q := range []string{`DROP TRIGGER IF EXISTS audit_log_no_update`, `DROP TRIGGER IF EXISTS audit_log_no_delete`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rows := auRawRows(t, raw)
	prev := auditlog.GenesisHash
	for _, r := range rows {
		if r.Seq >= from && (to == 0 || r.Seq <= to) {
			if edit != nil {
				edit(&r)
			}
			if asLegacy {
				r.KeyTerm = 0
			}
			r.PrevHash = prev
			r.Hash = auditlog.Hash(r)
			if _, err := raw.Exec(`UPDATE audit_log SET details = ?, prev_hash = ?, hash = ?, key_term = ? WHERE seq = ?`,
				r.Details, r.PrevHash, r.Hash, r.KeyTerm, r.Seq); err != nil {
				t.Fatal(err)
			}
		}
		prev = r.Hash
	}
}

func auRawRows(t *testing.T, raw *sql.DB) []auditlog.Row {
	t.Helper()
	rs, err := raw.Query(`SELECT seq, at, kind, actor, account_id, subject, ip, details, prev_hash, hash, key_term FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []auditlog.Row
	for rs.Next() {
		var r auditlog.Row
		if err := rs.Scan(&r.Seq, &r.At, &r.Kind, &r.Actor, &r.AccountID, &r.Subject, &r.IP, &r.Details, &r.PrevHash, &r.Hash, &r.KeyTerm); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestHoleAuditChainRecomputedAfterEdit: the chain was plain SHA-256, so
// whoever could write the database edited a row and recomputed every hash
// after it, and `audit verify` said intact. Keyed rows are HMACs under a
// key derived from the vault: no recomputation without the master key
// passes, whichever way the forger goes about it.
func TestHoleAuditChainRecomputedAfterEdit(t *testing.T) {
	ctx := context.Background()
	hide := func(r *auditlog.Row) {
		if r.Seq == 4 {
			r.Details = `{"name":"innocent"}`
		}
	}
	for _, tc := range []struct {
		name     string
		from     int64
		asLegacy bool
		edit     func(*auditlog.Row)
		wantSeq  int64 // 0: ErrAuditNotKeyed
	}{
		{"edit a row, recompute the rest", 4, false, hide, 4},
		{"edit a row, recompute the rest as plain SHA-256", 4, true, hide, 4},
		{"rewrite the whole chain as plain SHA-256", 1, true, hide, 1},
		{"recompute without an edit", 7, false, nil, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _, path := auKeyed(t)
			auRecordN(t, a, 10)
			if n, err := a.Verify(ctx); n != 10 || err != nil {
				t.Fatalf("untouched: %d %v", n, err)
			}
			auForge(t, path, tc.from, 0, tc.asLegacy, tc.edit)
			if sealed, err := a.Seal(ctx); sealed || err != nil { // a restart does not re-seal
				t.Fatalf("seal after forging: %v %v", sealed, err)
			}
			_, err := a.Verify(ctx)
			var ce *auditlog.ChainError
			switch {
			case tc.wantSeq == 0 && errors.Is(err, auditlog.ErrAuditNotKeyed):
			case tc.wantSeq != 0 && errors.As(err, &ce) && ce.Seq == tc.wantSeq:
			default:
				t.Fatalf("forged chain: %v, want broken at seq %d", err, tc.wantSeq)
			}
		})
	}

	t.Run("append a forged row", func(t *testing.T) {
		a, _, db, _ := auKeyed(t)
		auRecordN(t, a, 3)
		plain := auditlog.NewAuditor(db, auTestClock()) // the published algorithm, no key
		if err := plain.Record(ctx, auditlog.Event{Kind: auditlog.CreditsChanged, Actor: "cli", Details: map[string]any{"amount_usd": "1000000.00"}}); err != nil {
			t.Fatal(err)
		}
		var ce *auditlog.ChainError
		if _, err := a.Verify(ctx); !errors.As(err, &ce) || ce.Seq != 4 || !strings.Contains(ce.Reason, "plain SHA-256") {
			t.Fatalf("forged tail: %v", err)
		}
	})

	t.Run("rows from before the upgrade", func(t *testing.T) {
		// A database written by an older version: plain rows 1..3. The
		// keyed auditor seals it (row 4, audit.keyed), and from then on
		// the old rows cannot be rewritten either.
		db, path := sqlitetest.Open(t)
		v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
		a := auditlog.NewAuditor(db, auTestClock(), auditlog.KeyedBy(v.ChainKeys("audit")))
		auRecordN(t, auditlog.NewAuditor(db, auTestClock()), 3)
		if _, err := a.Verify(ctx); !errors.Is(err, auditlog.ErrAuditNotKeyed) {
			t.Fatalf("an unsealed old chain: %v", err)
		}
		if sealed, err := a.Seal(ctx); !sealed || err != nil {
			t.Fatalf("seal: %v %v", sealed, err)
		}
		if sealed, err := a.Seal(ctx); sealed || err != nil {
			t.Fatalf("a second seal: %v %v", sealed, err)
		}
		auRecordN(t, a, 2)
		rep, err := a.Check(ctx, nil)
		if err != nil || rep.Rows != 6 || rep.LegacyRows != 3 || !rep.Keyed {
			t.Fatalf("sealed chain: %+v %v", rep, err)
		}
		auForge(t, path, 2, 3, true, func(r *auditlog.Row) {
			if r.Seq == 2 {
				r.Details = `{"name":"innocent"}`
			}
		})
		var ce *auditlog.ChainError
		if _, err := a.Verify(ctx); !errors.As(err, &ce) || ce.Seq != 4 {
			t.Fatalf("an old row rewritten after the seal: %v", err)
		}
		// Cut back to the old rows: the vault knows the chain was keyed
		// from seq 4, so this truncation shows even without a head.
		raw := sqlitetest.Raw(t, path)
		if _, err := raw.Exec(`DELETE FROM audit_log WHERE seq >= 4`); err != nil {
			t.Fatal(err)
		}
		auForge(t, path, 2, 3, true, nil) // a consistent plain chain 1..3, as a forger would leave it
		if _, err := a.Verify(ctx); !errors.As(err, &ce) || ce.Seq != 4 || !strings.Contains(ce.Reason, "truncated") {
			t.Fatalf("cut back to the plain rows: %v", err)
		}
	})

	t.Run("an auditor without the key cannot vouch for a keyed chain", func(t *testing.T) {
		a, _, db, _ := auKeyed(t)
		auRecordN(t, a, 2)
		if _, err := auditlog.NewAuditor(db, auTestClock()).Verify(ctx); !errors.Is(err, auditlog.ErrAuditKeyRequired) {
			t.Fatalf("unkeyed verify of a keyed chain: %v", err)
		}
	})

	t.Run("another vault's key does not verify", func(t *testing.T) {
		a, _, db, _ := auKeyed(t)
		auRecordN(t, a, 2)
		other := sqlitetest.Vault(t, &memKeyring{}, vault.GenerateMasterKey())
		var ce *auditlog.ChainError
		if _, err := auditlog.NewAuditor(db, auTestClock(), auditlog.KeyedBy(other.ChainKeys("audit"))).Verify(ctx); !errors.As(err, &ce) || ce.Seq != 1 {
			t.Fatalf("verify under another vault: %v", err)
		}
	})
}

// TestHoleAuditTruncationCaughtByHead: removing the newest rows left a
// shorter chain that verified. `audit head` signs the newest (seq, hash);
// checked against it, a truncated or rewritten chain fails, a chain that
// only grew passes, and a head that was altered is refused.
func TestHoleAuditTruncationCaughtByHead(t *testing.T) {
	ctx := context.Background()
	a, v, _, path := auKeyed(t)
	auRecordN(t, a, 5)
	head, err := a.Head(ctx)
	if err != nil || head.Seq != 5 || head.Term != 1 {
		t.Fatalf("head: %+v %v", head, err)
	}
	parsed, err := auditlog.ParseHead(head.String())
	if err != nil || !parsed.At.Equal(head.At) || parsed.Signature != head.Signature {
		t.Fatalf("head round trip: %+v %v", parsed, err)
	}
	// The chain grows, across a vault rotation: the head still holds.
	if _, err := v.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	auRecordN(t, a, 2)
	if rep, err := a.Check(ctx, &parsed); err != nil || !rep.HeadChecked || rep.Rows != 7 {
		t.Fatalf("grown chain against the head: %+v %v", rep, err)
	}
	if h2, err := a.Head(ctx); err != nil || h2.Term != 2 || h2.Seq != 7 {
		t.Fatalf("head after rotation: %+v %v", h2, err)
	}

	for _, tc := range []struct {
		name   string
		mutate func(h *auditlog.Head)
		want   error
	}{
		{"seq lowered", func(h *auditlog.Head) { h.Seq = 3 }, auditlog.ErrHeadSignature},
		{"hash replaced", func(h *auditlog.Head) { h.Hash = strings.Repeat("ab", 32) }, auditlog.ErrHeadSignature},
		{"another key", func(h *auditlog.Head) {
			other := sqlitetest.Vault(t, &memKeyring{}, vault.GenerateMasterKey())
			o := auditlog.NewAuditor(&memAudit{}, auTestClock(), auditlog.KeyedBy(other.ChainKeys("audit")))
			oh, err := o.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h.PublicKey, h.Signature = oh.PublicKey, oh.Signature
		}, auditlog.ErrHeadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := parsed
			tc.mutate(&h)
			if _, err := a.Check(ctx, &h); !errors.Is(err, tc.want) {
				t.Fatalf("altered head: %v, want %v", err, tc.want)
			}
		})
	}

	// Truncation: rows 4..7 go. Without the head the rest still verifies
	// (nothing in the database says they existed); with it, it fails.
	raw := sqlitetest.Raw(t, path)
	for _, q := range []string{`DROP TRIGGER IF EXISTS audit_log_no_delete`, `DELETE FROM audit_log WHERE seq >= 4`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.Verify(ctx); n != 3 || err != nil {
		t.Fatalf("truncated chain without a head: %d %v", n, err)
	}
	var ce *auditlog.ChainError
	if _, err := a.Check(ctx, &parsed); !errors.As(err, &ce) || ce.Seq != 4 || !strings.Contains(ce.Reason, "truncated") {
		t.Fatalf("truncated chain against the head: %v", err)
	}
	// Regrown to the same length with other rows: the head's hash differs.
	auRecordN(t, a, 3)
	if _, err := a.Check(ctx, &parsed); !errors.As(err, &ce) || ce.Seq != 5 || !strings.Contains(ce.Reason, "rewritten") {
		t.Fatalf("regrown chain against the head: %v", err)
	}
}

// memKeyring is a KeyringStore in memory, for a second, unrelated vault.
type memKeyring struct {
	blob []byte
	gen  int64
}

func (m *memKeyring) Keyring(context.Context) ([]byte, int64, error) {
	if m.blob == nil {
		return nil, 0, dberr.ErrNotFound
	}
	return m.blob, m.gen, nil
}

func (m *memKeyring) SaveKeyring(_ context.Context, blob []byte, gen int64) (int64, error) {
	if gen != m.gen {
		return 0, dberr.ErrConflict
	}
	m.blob, m.gen = blob, m.gen+1
	return m.gen, nil
}

// memAudit is an AuditStore in memory.
type memAudit struct{ rows []auditlog.Row }

func (m *memAudit) AppendAudit(_ context.Context, build func(int64, string) (auditlog.Row, error)) error {
	var seq int64
	var hash string
	if n := len(m.rows); n > 0 {
		seq, hash = m.rows[n-1].Seq, m.rows[n-1].Hash
	}
	r, err := build(seq, hash)
	if err == nil {
		m.rows = append(m.rows, r)
	}
	return err
}

func (m *memAudit) ListAudit(_ context.Context, f auditlog.Filter) ([]auditlog.Row, error) {
	return nil, fmt.Errorf("not used")
}

func (m *memAudit) FirstKeyedAudit(context.Context) (int64, error) {
	for _, r := range m.rows {
		if r.KeyTerm > 0 {
			return r.Seq, nil
		}
	}
	return 0, nil
}

func (m *memAudit) ScanAudit(_ context.Context, after int64, limit int) ([]auditlog.Row, error) {
	var out []auditlog.Row
	for _, r := range m.rows {
		if r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}
