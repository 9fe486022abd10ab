package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"strings"
	"sync"
	"testing"
)

// testKeys stand in for the vault's chain keys: one HMAC key per term,
// and an epoch as the sealed keyring would record it.
type testKeys struct {
	mu       sync.Mutex
	active   uint32
	secret   string
	epoch    int64
	hasEpoch bool
}

func newTestKeys(secret string) *testKeys { return &testKeys{active: 1, secret: secret} }

func (k *testKeys) ActiveTerm() uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.active
}

func (k *testKeys) MAC(term uint32, msg []byte) ([]byte, error) {
	k.mu.Lock()
	active := k.active
	k.mu.Unlock()
	if term == 0 || term > active {
		return nil, fmt.Errorf("unknown term %d", term)
	}
	m := hmac.New(sha256.New, []byte(fmt.Sprintf("%s/%d", k.secret, term)))
	m.Write(msg)
	return m.Sum(nil), nil
}

func (k *testKeys) Epoch() (int64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.epoch, k.hasEpoch
}

func (k *testKeys) rotate() {
	k.mu.Lock()
	k.active++
	k.mu.Unlock()
}

// keyLedger keys db as the gateway does at start: seal, record the epoch.
func keyLedger(t testing.TB, db *DB, k *testKeys) {
	t.Helper()
	db.KeyLedger(k)
	_, through, err := db.SealLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	if !k.hasEpoch {
		k.epoch, k.hasEpoch = through, true
	}
	k.mu.Unlock()
}

// dropLedgerGuards removes the append-only triggers, as someone with
// write access to the database can.
func dropLedgerGuards(t *testing.T, db *DB) {
	t.Helper()
	stmts := []string{`DROP TRIGGER IF EXISTS ledger_entries_no_update`, `DROP TRIGGER IF EXISTS ledger_entries_no_delete`}
	if db.isPostgres() {
		stmts = []string{`DROP TRIGGER IF EXISTS ledger_entries_no_update ON ledger_entries`, `DROP TRIGGER IF EXISTS ledger_entries_no_delete ON ledger_entries`}
	}
	for _, q := range stmts {
		if _, err := db.exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

func post(t *testing.T, db *DB, account, kind string, amount int64, key string) books.LedgerEntry {
	t.Helper()
	e, _, err := db.PostLedgerEntry(context.Background(), books.LedgerEntry{AccountID: account, Kind: kind, Amount: amount, IdempotencyKey: key, Actor: "cli", CreatedAt: ledgerT0})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func chainProblems(t *testing.T, db *DB) []books.LedgerProblem {
	t.Helper()
	ps, err := db.VerifyLedgerChain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestHoleForgedTopUpPassesVerify: with write access to the database, a
// forged top-up plus the matching balance update kept every balance equal
// to the sum of its entries, and `credits verify` passed. Keyed, each
// forgery shows: the entry does not authenticate, and the balance no
// longer matches the account's head, whatever the forger does alongside.
func TestHoleForgedTopUpPassesVerify(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		for _, tc := range []struct {
			name   string
			forge  func(t *testing.T, f forger, entries []books.LedgerEntry)
			reason string // in one of the problems
			// sumHolds: the forger kept the balance equal to the sum of
			// the entries, so the old check alone saw nothing.
			sumHolds bool
		}{
			{"a top-up without a MAC, balance raised to match", func(t *testing.T, f forger, _ []books.LedgerEntry) {
				f.exec(`INSERT INTO ledger_entries (account_id, kind, amount_nano, idempotency_key, actor, created_at) VALUES ('ACCT', 'top_up', 1000000, 'forged', 'cli', 0)`)
				f.exec(`UPDATE accounts SET balance_nano = balance_nano + 1000000 WHERE id = 'ACCT'`)
			}, "without a MAC", true},
			{"a top-up with a made-up MAC, balance raised", func(t *testing.T, f forger, es []books.LedgerEntry) {
				f.exec(`INSERT INTO ledger_entries (account_id, kind, amount_nano, idempotency_key, actor, created_at, key_term, mac) VALUES ('ACCT', 'top_up', 1000000, 'forged', 'cli', 0, 1, ?)`, es[len(es)-1].MAC)
				f.exec(`UPDATE accounts SET balance_nano = balance_nano + 1000000 WHERE id = 'ACCT'`)
			}, "MAC does not match", true},
			{"a top-up's amount raised, balance raised", func(t *testing.T, f forger, es []books.LedgerEntry) {
				f.exec(`UPDATE ledger_entries SET amount_nano = amount_nano + 1000000 WHERE id = ?`, es[0].ID)
				f.exec(`UPDATE accounts SET balance_nano = balance_nano + 1000000 WHERE id = 'ACCT'`)
			}, "MAC does not match", true},
			{"a usage debit removed, balance raised", func(t *testing.T, f forger, es []books.LedgerEntry) {
				f.exec(`DELETE FROM ledger_entries WHERE id = ?`, es[1].ID)
				f.exec(`UPDATE accounts SET balance_nano = balance_nano - ? WHERE id = 'ACCT'`, es[1].Amount)
			}, "MAC does not match", true},
			{"the newest debit removed, balance raised", func(t *testing.T, f forger, es []books.LedgerEntry) {
				last := es[len(es)-1]
				f.exec(`DELETE FROM ledger_entries WHERE id = ?`, last.ID)
				f.exec(`UPDATE accounts SET balance_nano = balance_nano - ? WHERE id = 'ACCT'`, last.Amount)
			}, "does not name the account's newest entry", true},
			{"only the balance raised", func(t *testing.T, f forger, _ []books.LedgerEntry) {
				f.exec(`UPDATE accounts SET balance_nano = balance_nano + 1000000 WHERE id = 'ACCT'`)
			}, "does not match the balance", false},
			{"the head removed, a top-up without a MAC", func(t *testing.T, f forger, _ []books.LedgerEntry) {
				f.exec(`UPDATE accounts SET ledger_head = '', ledger_last = '' WHERE id = 'ACCT'`)
				f.exec(`INSERT INTO ledger_entries (account_id, kind, amount_nano, idempotency_key, actor, created_at) VALUES ('ACCT', 'top_up', 1000000, 'forged', 'cli', 0)`)
				f.exec(`UPDATE accounts SET balance_nano = balance_nano + 1000000 WHERE id = 'ACCT'`)
			}, "no ledger head", true},
			{"the head removed, the next write restarts the chain", func(t *testing.T, f forger, _ []books.LedgerEntry) {
				f.exec(`UPDATE accounts SET ledger_head = '', ledger_last = '' WHERE id = 'ACCT'`)
				post(t, f.db, f.acct, books.LedgerTopUp, 5, "after-removal")
			}, "starts over", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				acct := "acct_" + strings.NewReplacer(" ", "_", ",", "", "'", "").Replace(tc.name)
				acct = acct[:min(len(acct), 40)]
				seedAccounts(t, db, acct, acct+"_bystander")
				k := newTestKeys("k-" + acct)
				keyLedger(t, db, k)
				es := []books.LedgerEntry{post(t, db, acct, books.LedgerTopUp, 5000, "inv-1")}
				if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: acct, RequestID: acct + "-r1", Amount: 700, At: ledgerT0},
					{AccountID: acct + "_bystander", RequestID: acct + "-r2", Amount: 0, At: ledgerT0}}); err != nil {
					t.Fatal(err)
				}
				k.rotate() // entries under two key terms
				if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: acct, RequestID: acct + "-r3", Amount: 300, At: ledgerT0}}); err != nil {
					t.Fatal(err)
				}
				list, err := db.ListLedgerEntries(ctx, acct, 0, 0)
				if err != nil || len(list) != 3 {
					t.Fatalf("entries: %v %v", list, err)
				}
				es = []books.LedgerEntry{list[2], list[1], list[0]} // oldest first
				if es[0].KeyTerm != 1 || es[2].KeyTerm != 2 || es[1].MAC == "" {
					t.Fatalf("entries are not keyed: %+v", es)
				}
				if ps := problemsOf(chainProblems(t, db), acct); len(ps) != 0 {
					t.Fatalf("untouched ledger: %+v", ps)
				}

				dropLedgerGuards(t, db)
				tc.forge(t, forger{t, db, acct}, es)

				if tc.sumHolds {
					mm, err := db.VerifyBalances(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range mm {
						if m.AccountID == acct {
							t.Fatalf("the forger was meant to keep the sum: %+v", m)
						}
					}
				}
				ps := problemsOf(chainProblems(t, db), acct)
				found := false
				for _, p := range ps {
					found = found || strings.Contains(p.Reason, tc.reason)
				}
				if !found {
					t.Fatalf("forgery not reported (want %q): %+v", tc.reason, ps)
				}
				if bs := problemsOf(chainProblems(t, db), acct+"_bystander"); len(bs) != 0 {
					t.Fatalf("the bystander account is reported: %+v", bs)
				}
			})
		}
	})
}

// forger edits one account's rows with raw SQL; 'ACCT' in a statement is
// that account's id.
type forger struct {
	t    *testing.T
	db   *DB
	acct string
}

func (f forger) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.db.exec(context.Background(), strings.ReplaceAll(q, "'ACCT'", "'"+f.acct+"'"), args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

func problemsOf(ps []books.LedgerProblem, account string) []books.LedgerProblem {
	var out []books.LedgerProblem
	for _, p := range ps {
		if p.AccountID == account {
			out = append(out, p)
		}
	}
	return out
}

// TestLedgerChainSealsOldEntries: entries written before the ledger was
// keyed are covered once it is sealed; entries without a MAC after that
// are forgeries; a store without the keys cannot write to a keyed account
// nor vouch for the chain.
func TestLedgerChainSealsOldEntries(t *testing.T) {
	ctx := context.Background()
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		seedAccounts(t, db, "acct_old", "acct_empty")
		post(t, db, "acct_old", books.LedgerTopUp, 9000, "old-1") // an older version, unkeyed
		if err := db.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_old", RequestID: "old-r1", Amount: 100, At: ledgerT0}}); err != nil {
			t.Fatal(err)
		}
		k := newTestKeys("seal")
		db.KeyLedger(k)
		if ps := chainProblems(t, db); len(ps) != 1 || !strings.Contains(ps[0].Reason, "not sealed") {
			t.Fatalf("before sealing: %+v", ps)
		}
		sealed, through, err := db.SealLedger(ctx)
		if err != nil || sealed != 1 || through == 0 {
			t.Fatalf("seal: %d %d %v", sealed, through, err)
		}
		k.epoch, k.hasEpoch = through, true
		post(t, db, "acct_old", books.LedgerTopUp, 1, "new-1")
		post(t, db, "acct_empty", books.LedgerTopUp, 1, "new-2")
		if ps := chainProblems(t, db); len(ps) != 0 {
			t.Fatalf("sealed ledger: %+v", ps)
		}
		if again, _, err := db.SealLedger(ctx); err != nil || again != 0 {
			t.Fatalf("a second seal: %d %v", again, err)
		}

		// Without the keys: no write to a keyed account, no verification.
		plain := openAgain(t, dsn)
		if _, _, err := plain.PostLedgerEntry(ctx, books.LedgerEntry{AccountID: "acct_old", Kind: books.LedgerTopUp, Amount: 1, IdempotencyKey: "plain", CreatedAt: ledgerT0}); !errors.Is(err, ErrLedgerKeyed) {
			t.Fatalf("unkeyed post to a keyed account: %v", err)
		}
		if err := plain.DebitUsage(ctx, []books.UsageDebit{{AccountID: "acct_old", RequestID: "plain-r", Amount: 1, At: ledgerT0}}); !errors.Is(err, ErrLedgerKeyed) {
			t.Fatalf("unkeyed debit of a keyed account: %v", err)
		}
		if _, err := plain.VerifyLedgerChain(ctx); !errors.Is(err, ErrLedgerKeyed) {
			t.Fatalf("unkeyed verify of a keyed ledger: %v", err)
		}

		// An old entry edited after the seal: the account's chain starts
		// from their digest, so it shows.
		dropLedgerGuards(t, db)
		f := forger{t, db, "acct_old"}
		f.exec(`UPDATE ledger_entries SET amount_nano = amount_nano + 500 WHERE idempotency_key = 'old-1' AND account_id = 'ACCT'`)
		f.exec(`UPDATE accounts SET balance_nano = balance_nano + 500 WHERE id = 'ACCT'`)
		if ps := chainProblems(t, db); len(ps) == 0 || !strings.Contains(ps[0].Reason, "MAC does not match") {
			t.Fatalf("an old entry edited after the seal: %+v", ps)
		}
	})
}

// TestUsageDebitsBatchedKeepTheChain: debits go in many per statement,
// their MACs chained before it is known which are new. A batch in which
// some debits were stored before (a replay through DebitUsage) must still
// leave an unbroken chain: the batched attempt is rolled back and the new
// debits go in one at a time. Batches longer than one statement, several
// accounts, and a request id twice in one batch are covered too.
func TestUsageDebitsBatchedKeepTheChain(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		seedAccounts(t, db, "acct_a", "acct_b")
		keyLedger(t, db, newTestKeys("chain-secret"))
		post(t, db, "acct_a", books.LedgerTopUp, 1_000_000, "seed")
		post(t, db, "acct_b", books.LedgerTopUp, 1_000_000, "seed")
		debits := func(account string, from, to int) []books.UsageDebit {
			var out []books.UsageDebit
			for i := from; i < to; i++ {
				out = append(out, books.UsageDebit{AccountID: account, RequestID: fmt.Sprintf("req_%04d", i), Amount: int64(i), KeyID: "key_1", At: ledgerT0})
			}
			return out
		}
		sum := func(from, to int) int64 { return int64((to - 1 + from) * (to - from) / 2) }
		steps := []struct {
			name  string
			batch []books.UsageDebit
		}{
			{"all new, over two statements", append(debits("acct_a", 0, debitRowsPerInsert+5), debits("acct_b", 0, 3)...)},
			{"some stored before", append(debits("acct_a", debitRowsPerInsert, debitRowsPerInsert+20), debits("acct_b", 2, 4)...)},
			{"all stored before", debits("acct_a", 10, 30)},
			{"one request twice", append(debits("acct_b", 10, 12), debits("acct_b", 11, 12)...)},
		}
		for _, st := range steps {
			if err := db.DebitUsage(ctx, st.batch); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if ps := chainProblems(t, db); len(ps) != 0 {
				t.Fatalf("%s: chain problems %+v", st.name, ps)
			}
		}
		wantA := 1_000_000 - sum(0, debitRowsPerInsert+20)
		wantB := 1_000_000 - sum(0, 4) - sum(10, 12)
		if a, b := credit(t, db, "acct_a").Balance, credit(t, db, "acct_b").Balance; a != wantA || b != wantB {
			t.Fatalf("balances %d, %d; want %d, %d", a, b, wantA, wantB)
		}
		for acct, n := range map[string]int{"acct_a": 1 + debitRowsPerInsert + 20, "acct_b": 1 + 4 + 2} {
			if es, err := db.ListLedgerEntries(ctx, acct, 0, 0); err != nil || len(es) != n {
				t.Fatalf("%s: %d entries (%v), want %d", acct, len(es), err, n)
			}
		}
		if mm, err := db.VerifyBalances(ctx); err != nil || len(mm) != 0 {
			t.Fatalf("verify = %+v, %v", mm, err)
		}
	})
}
