package auditlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store/sqlitetest"

	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// auTestClock is a clock that advances one second per reading.
func auTestClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

// auRecordN records n events with varied fields.
func auRecordN(t *testing.T, a *auditlog.Auditor, n int) {
	t.Helper()
	kinds := []string{auditlog.KeyCreated, auditlog.ProviderKeyAdded, "admin.login", auditlog.KeyRevoked, auditlog.CreditsChanged}
	for i := 0; i < n; i++ {
		err := a.Record(context.Background(), auditlog.Event{
			Kind: kinds[i%len(kinds)], Actor: "admin:key_x", AccountID: fmt.Sprint("acct_", i%2),
			Subject: fmt.Sprint("key_", i), IP: "203.0.113.7",
			Details: map[string]any{"i": i, "amount_nano": int64(9_007_199_254_740_993), "name": "ci"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// auDropTriggers removes the append-only triggers, as someone with raw
// database access could.
func auDropTriggers(t *testing.T, path string) {
	t.Helper()
	raw := sqlitetest.Raw(t, path)
	for _, q := range []string{`DROP TRIGGER audit_log_no_update`, `DROP TRIGGER audit_log_no_delete`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditChainGrowsAndVerifies(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	a := auditlog.NewAuditor(db, auTestClock())
	if n, err := a.Verify(ctx); n != 0 || err != nil {
		t.Fatalf("empty log: %d, %v", n, err)
	}
	auRecordN(t, a, 10)
	if n, err := a.Verify(ctx); n != 10 || err != nil {
		t.Fatalf("verify: %d, %v", n, err)
	}
	evs, err := a.List(ctx, auditlog.Filter{})
	if err != nil || len(evs) != 10 {
		t.Fatalf("list: %d, %v", len(evs), err)
	}
	first, last := evs[9], evs[0]
	if first.Seq != 1 || first.PrevHash != strings.Repeat("0", 64) || last.Seq != 10 || len(last.Hash) != 64 {
		t.Fatalf("chain ends: first %+v, last %+v", first, last)
	}
	if evs[1].Hash != last.PrevHash {
		t.Fatal("rows are not linked")
	}
	if !last.At.After(first.At) || last.At.Location() != time.UTC {
		t.Fatalf("times: %v .. %v", first.At, last.At)
	}
	if n, ok := first.Details["amount_nano"].(json.Number); !ok || n.String() != "9007199254740993" {
		t.Fatalf("big integer in details: %#v", first.Details["amount_nano"])
	}

	seqs := func(f auditlog.Filter) string {
		t.Helper()
		evs, err := a.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, fmt.Sprint(e.Seq))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name string
		f    auditlog.Filter
		want string
	}{
		{"kind prefix", auditlog.Filter{Kind: "key."}, "9,6,4,1"},
		{"exact kind", auditlog.Filter{Kind: auditlog.ProviderKeyAdded}, "7,2"},
		{"admin.*", auditlog.Filter{Kind: auditlog.AdminPrefix}, "8,3"},
		{"subject", auditlog.Filter{Subject: "key_4"}, "5"},
		{"account", auditlog.Filter{AccountID: "acct_1", Limit: 2}, "10,8"},
		{"since", auditlog.Filter{Since: first.At.Add(7 * time.Second)}, "10,9,8"},
		{"page 1", auditlog.Filter{Limit: 4}, "10,9,8,7"},
		{"page 2", auditlog.Filter{Limit: 4, BeforeSeq: 7}, "6,5,4,3"},
		{"page 3", auditlog.Filter{Limit: 4, BeforeSeq: 3}, "2,1"},
	} {
		if got := seqs(c.f); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestAuditVerifyFindsEditedRow(t *testing.T) {
	ctx := context.Background()
	db, path := sqlitetest.Open(t)
	a := auditlog.NewAuditor(db, auTestClock())
	auRecordN(t, a, 10)
	auDropTriggers(t, path)
	raw := sqlitetest.Raw(t, path)
	if _, err := raw.Exec(`UPDATE audit_log SET details = '{"i":4,"amount_nano":0,"name":"ci"}' WHERE seq = 5`); err != nil {
		t.Fatal(err)
	}
	n, err := a.Verify(ctx)
	var ce *auditlog.ChainError
	if !errors.As(err, &ce) || ce.Seq != 5 || !strings.Contains(ce.Reason, "edited") || n != 4 {
		t.Fatalf("edited row: %d rows, %v", n, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "seq 5") {
		t.Fatalf("message does not name the row: %s", msg)
	}
}

func TestAuditVerifyFindsRewrittenHash(t *testing.T) {
	ctx := context.Background()
	db, path := sqlitetest.Open(t)
	a := auditlog.NewAuditor(db, auTestClock())
	auRecordN(t, a, 10)
	auDropTriggers(t, path)
	// The attacker edits seq 5 and recomputes its hash; seq 6 still points
	// at the old one.
	rows, err := db.ScanAudit(ctx, 4, 1)
	if err != nil || len(rows) != 1 {
		t.Fatal(rows, err)
	}
	r := rows[0]
	r.Actor = "cli"
	r.Hash = auditlog.Hash(r)
	if _, err := sqlitetest.Raw(t, path).Exec(`UPDATE audit_log SET actor = ?, hash = ? WHERE seq = 5`, r.Actor, r.Hash); err != nil {
		t.Fatal(err)
	}
	n, err := a.Verify(ctx)
	var ce *auditlog.ChainError
	if !errors.As(err, &ce) || ce.Seq != 6 || !strings.Contains(ce.Reason, "seq 5") || n != 5 {
		t.Fatalf("want the break at seq 6 naming seq 5, got %d rows, %v", n, err)
	}
}

func TestAuditVerifyFindsDeletedRow(t *testing.T) {
	tests := []struct {
		name    string
		del     string
		wantSeq int64
		reason  string
	}{
		{"middle row", `DELETE FROM audit_log WHERE seq = 5`, 5, "row 5 is missing"},
		{"several rows", `DELETE FROM audit_log WHERE seq BETWEEN 3 AND 6`, 3, "rows 3..6 are missing"},
		{"first row", `DELETE FROM audit_log WHERE seq = 1`, 1, "row 1 is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := sqlitetest.Open(t)
			a := auditlog.NewAuditor(db, auTestClock())
			auRecordN(t, a, 10)
			auDropTriggers(t, path)
			if _, err := sqlitetest.Raw(t, path).Exec(tt.del); err != nil {
				t.Fatal(err)
			}
			_, err := a.Verify(context.Background())
			var ce *auditlog.ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("got %v; want seq %d, %q", err, tt.wantSeq, tt.reason)
			}
		})
	}
}

func TestAuditVerifyFindsRenumberedRow(t *testing.T) {
	// Deleting seq 5 and renumbering 6 -> 5 leaves no gap, but the moved
	// row's prev_hash (and its hash, which covers seq) give it away.
	db, path := sqlitetest.Open(t)
	a := auditlog.NewAuditor(db, auTestClock())
	auRecordN(t, a, 6)
	auDropTriggers(t, path)
	raw := sqlitetest.Raw(t, path)
	if _, err := raw.Exec(`DELETE FROM audit_log WHERE seq = 5`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE audit_log SET seq = 5 WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	_, err := a.Verify(context.Background())
	var ce *auditlog.ChainError
	if !errors.As(err, &ce) || ce.Seq != 5 {
		t.Fatalf("renumbered row: %v", err)
	}
}

func TestAuditConcurrentRecord(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	clock := auTestClock()
	// Two auditors on one database stand for two replicas: their mutexes
	// are separate, the transaction alone keeps the chain linear.
	auditors := []*auditlog.Auditor{auditlog.NewAuditor(db, clock), auditlog.NewAuditor(db, clock)}
	var wg sync.WaitGroup
	for g := 0; g < 20; g++ {
		wg.Go(func() {
			a := auditors[g%2]
			for i := 0; i < 10; i++ {
				if err := a.Record(ctx, auditlog.Event{Kind: auditlog.KeyCreated, Actor: "system", Subject: fmt.Sprintf("key_%d_%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	n, err := auditors[0].Verify(ctx)
	if n != 200 || err != nil {
		t.Fatalf("verify after concurrent records: %d, %v", n, err)
	}
}

func TestAuditRecordValidates(t *testing.T) {
	db, _ := sqlitetest.Open(t)
	a := auditlog.NewAuditor(db, auTestClock())
	callerKey := keys.Generate()
	tests := []struct {
		name string
		e    auditlog.Event
		want error
	}{
		{"no kind", auditlog.Event{Actor: "cli"}, nil},
		{"bad kind", auditlog.Event{Kind: "Key Created", Actor: "cli"}, nil},
		{"kind without dot", auditlog.Event{Kind: "created", Actor: "cli"}, nil},
		{"no actor", auditlog.Event{Kind: auditlog.KeyCreated}, nil},
		{"key in details", auditlog.Event{Kind: auditlog.KeyCreated, Actor: "cli", Details: map[string]any{"key": callerKey}}, auditlog.ErrSecretInDetails},
		{"bearer key nested", auditlog.Event{Kind: auditlog.KeyCreated, Actor: "cli", Details: map[string]any{"req": map[string]any{"h": []any{"Bearer " + callerKey}}}}, auditlog.ErrSecretInDetails},
		{"admin key in list", auditlog.Event{Kind: auditlog.KeyCreated, Actor: "cli", Details: map[string]any{"k": []string{keys.GenerateAdmin()}}}, auditlog.ErrSecretInDetails},
		{"unencodable", auditlog.Event{Kind: auditlog.KeyCreated, Actor: "cli", Details: map[string]any{"f": func() {}}}, nil},
		{"huge details", auditlog.Event{Kind: auditlog.KeyCreated, Actor: "cli", Details: map[string]any{"s": strings.Repeat("x", 20<<10)}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Record(context.Background(), tt.e)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want an error (%v)", err, tt.want)
			}
			if strings.Contains(err.Error(), callerKey) {
				t.Fatal("error echoes the key")
			}
		})
	}
	if n, err := a.Verify(context.Background()); n != 0 || err != nil {
		t.Fatalf("rejected events were written: %d, %v", n, err)
	}
	ok := auditlog.Event{Kind: "anomaly.new_ip", Actor: "system", Details: map[string]any{"hint": keys.Hint(callerKey)}}
	if err := a.Record(context.Background(), ok); err != nil {
		t.Fatalf("a hint is not a secret: %v", err)
	}
}

func TestAuditHashIsUnambiguous(t *testing.T) {
	// Moving a character from one field to the next must change the hash.
	db, _ := sqlitetest.Open(t)
	a := auditlog.NewAuditor(db, func() time.Time { return time.UnixMilli(1000) })
	ctx := context.Background()
	a.Record(ctx, auditlog.Event{Kind: "admin.x", Actor: "ab", Subject: "c"})
	a.Record(ctx, auditlog.Event{Kind: "admin.x", Actor: "a", Subject: "bc"})
	evs, _ := a.List(ctx, auditlog.Filter{})
	r1, r2 := evs[1], evs[0]
	// Same seq and prev_hash on both sides isolates the fields.
	h1 := auditlog.Hash(auRowOf(r1, 1, r1.PrevHash))
	h2 := auditlog.Hash(auRowOf(r2, 1, r1.PrevHash))
	if h1 == h2 {
		t.Fatal("field boundaries are not part of the hash")
	}
}

func auRowOf(e auditlog.Event, seq int64, prev string) auditlog.Row {
	return auditlog.Row{Seq: seq, At: e.At.UnixMilli(), Kind: e.Kind, Actor: e.Actor, AccountID: e.AccountID,
		Subject: e.Subject, IP: e.IP, Details: "{}", PrevHash: prev}
}
