package main

import (
	"context"
	"database/sql"
	"io"
	"os"
	"strings"
	"testing"
)

// rawExec runs statements on the SQLite file directly, as someone with
// write access to the database (and sqlite3) would.
func rawExec(t *testing.T, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:xroute.db?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := run(context.Background(), args, &out, io.Discard)
	return out.String(), err
}

// TestHoleForgedTopUpPassesCLIVerify: the red team's steps. Write access
// to the database, a forged 1,000 USD top-up and the balance raised to
// match: `xroute credits verify` said every balance was right.
func TestHoleForgedTopUpPassesCLIVerify(t *testing.T) {
	t.Chdir(t.TempDir())
	if out, err := runOut(t, "credits", "topup", "--account", "acct_default", "--amount", "10.00", "--idempotency-key", "inv-1"); err != nil {
		t.Fatalf("topup: %v %s", err, out)
	}
	if out, err := runOut(t, "credits", "verify"); err != nil || !strings.Contains(out, "every balance") {
		t.Fatalf("untouched ledger: %v %q", err, out)
	}
	rawExec(t,
		`DROP TRIGGER IF EXISTS ledger_entries_no_update`,
		`INSERT INTO ledger_entries (account_id, kind, amount_nano, idempotency_key, actor, created_at) VALUES ('acct_default', 'top_up', 1000000000000, 'inv-2', 'cli', 0)`,
		`UPDATE accounts SET balance_nano = balance_nano + 1000000000000 WHERE id = 'acct_default'`)
	out, err := runOut(t, "credits", "verify")
	if err == nil || !strings.Contains(out, "account acct_default, entry 2: an entry without a MAC") || !strings.Contains(out, "does not match the balance") {
		t.Fatalf("forged top-up: %v %q", err, out)
	}
	if bal, _ := runOut(t, "credits", "balance", "--account", "acct_default"); !strings.Contains(bal, "balance 1010.00") {
		t.Fatalf("the forgery is in the balance (%q): the test forged the wrong thing", bal)
	}
}

// TestHoleAuditTruncationCaughtByCLIHead: removing the newest audit rows
// left a chain that verified. `xroute audit head` prints a signed head;
// `xroute audit verify --head` catches the rows removed since.
func TestHoleAuditTruncationCaughtByCLIHead(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, name := range []string{"a", "b", "c"} {
		if err := run(context.Background(), []string{"keys", "create", "--name", name, "--quiet"}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	head, err := runOut(t, "audit", "head")
	if err != nil || !strings.Contains(head, `"seq":3`) || !strings.Contains(head, `"signature":`) {
		t.Fatalf("audit head: %v %q", err, head)
	}
	if err := os.WriteFile("head.json", []byte(head), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"keys", "create", "--name", "d", "--quiet"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out, err := runOut(t, "audit", "verify", "--head", "head.json"); err != nil || !strings.Contains(out, "intact: 4 rows") || !strings.Contains(out, "anchored head (seq 3)") {
		t.Fatalf("grown chain against the head: %v %q", err, out)
	}
	rawExec(t, `DROP TRIGGER IF EXISTS audit_log_no_delete`, `DELETE FROM audit_log WHERE seq >= 3`)
	if out, err := runOut(t, "audit", "verify"); err != nil || !strings.Contains(out, "intact: 2 rows") {
		t.Fatalf("truncated chain without the head still verifies (the database alone cannot tell): %v %q", err, out)
	}
	out, err := runOut(t, "audit", "verify", "--head", strings.TrimSpace(head)) // the JSON itself works too
	if err == nil || !strings.Contains(out, "BROKEN at seq 3") || !strings.Contains(out, "truncated") {
		t.Fatalf("truncated chain against the head: %v %q", err, out)
	}
	forged := strings.Replace(head, `"seq":3`, `"seq":2`, 1)
	if out, err := runOut(t, "audit", "verify", "--head", forged); err == nil || !strings.Contains(out, "signature") {
		t.Fatalf("an altered head: %v %q", err, out)
	}
}
