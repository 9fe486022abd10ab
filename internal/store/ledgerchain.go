package store

// The ledger's tamper evidence (migration 0009). With KeyLedger, every
// ledger entry carries an HMAC (key from the vault, not in the database)
// over its fields and the MAC of the account's previous entry: one chain
// per account, so writes to different accounts never wait on each other,
// and writes to one account already queue on its row lock. The account row
// carries the chain's head: ledger_last (the newest entry's MAC) and
// ledger_head, an HMAC over the account id, balance_nano and ledger_last,
// rewritten with every balance change. So a forged entry does not
// authenticate; a balance moved to match forged or removed entries no
// longer matches the head; and removing an account's newest entries
// leaves a head naming an entry that is gone.
//
// An account's chain starts from a digest of the entries it had before
// it was keyed (written by older versions): they are covered from then
// on. VerifyLedgerChain walks every chain; the sealed keyring records the
// ledger's epoch (the newest entry id before keying), after which an entry
// without a MAC is a forgery.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/xroute/xroute/billing/books"
	"hash"
	"io"
	"math"
	"slices"
	"strings"
)

// MACKeys authenticate rows with keys the database does not hold (the
// vault's; vault.ChainKeys is one).
type MACKeys interface {
	// ActiveTerm is the key term new rows are authenticated under.
	ActiveTerm() uint32
	// MAC is HMAC-SHA256 of msg under the key of term.
	MAC(term uint32, msg []byte) ([]byte, error)
	// Epoch is where the chain became keyed, recorded out of the
	// database's reach; false when not recorded yet.
	Epoch() (int64, bool)
}

// ErrLedgerKeyed is returned when an account's ledger is keyed and this DB
// has no keys to extend it (KeyLedger was not called).
var ErrLedgerKeyed = errors.New("the ledger is keyed with the vault's keys: open the store with them (the vault master key) to write or verify it")

const (
	ledgerMACDomain     = "xroute-ledger-v1\x00"
	ledgerHeadDomain    = "xroute-ledger-head-v1\x00"
	ledgerGenesisDomain = "xroute-ledger-genesis-v1\x00"
	ledgerGenesisPrefix = "g:"
)

// KeyLedger makes every ledger write authenticate its entry and the
// account's head with k, and VerifyLedgerChain check them. Call it once,
// before the first write.
func (s *DB) KeyLedger(k MACKeys) { s.ledgerKeys = k }

// accountHead is an account's balance and chain head, read under its row
// lock for one write transaction.
type accountHead struct {
	id      string
	exists  bool
	balance int64
	last    string // the MAC the next entry chains from
}

// lockAccountHead locks the account's row (PostgreSQL; SQLite's write
// transaction holds the one write lock already) and reads its balance and
// chain head. An account whose chain has not started yet (entries only
// from before keying, or none) starts it from the digest of its entries.
func (s *DB) lockAccountHead(ctx context.Context, tx *sql.Tx, id string) (accountHead, error) {
	h := accountHead{id: id}
	var head string
	err := s.txQueryRow(ctx, tx, `SELECT balance_nano, ledger_last, ledger_head FROM accounts WHERE id = ?`+s.forUpdate(), id).Scan(&h.balance, &h.last, &head)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return h, fmt.Errorf("account %s: %w", id, err)
	default:
		h.exists = true
	}
	if s.ledgerKeys == nil {
		if head != "" {
			return h, fmt.Errorf("account %s: %w", id, ErrLedgerKeyed)
		}
		h.last = ""
		return h, nil
	}
	if h.last == "" {
		if h.last, err = s.ledgerGenesis(ctx, tx, id); err != nil {
			return h, err
		}
	}
	return h, nil
}

// ledgerGenesis is the digest of the account's entries so far: what its
// chain starts from.
func (s *DB) ledgerGenesis(ctx context.Context, tx *sql.Tx, id string) (string, error) {
	rows, err := s.txQuery(ctx, tx, `SELECT `+ledgerColumns+` FROM ledger_entries WHERE account_id = ? ORDER BY id`, id)
	if err != nil {
		return "", fmt.Errorf("ledger of %s: %w", id, err)
	}
	defer rows.Close()
	g := newGenesis()
	for rows.Next() {
		e, err := scanLedger(rows)
		if err != nil {
			return "", err
		}
		g.add(e)
	}
	return g.value(), rows.Err()
}

// chain authenticates e as the account's next entry (it does not advance
// the head: only an entry actually inserted does, see advance).
func (s *DB) chain(h *accountHead, e *books.LedgerEntry) error {
	e.KeyTerm, e.MAC = 0, ""
	if s.ledgerKeys == nil {
		return nil
	}
	term := s.ledgerKeys.ActiveTerm()
	mac, err := s.ledgerKeys.MAC(term, ledgerEntryMessage(term, *e, h.last))
	if err != nil {
		return fmt.Errorf("ledger entry MAC: %w", err)
	}
	e.KeyTerm, e.MAC = term, hex.EncodeToString(mac)
	return nil
}

// advance moves the head past an inserted entry.
func (h *accountHead) advance(e books.LedgerEntry) {
	h.balance += e.Amount
	if e.MAC != "" {
		h.last = e.MAC
	}
}

// saveAccountHead writes the balance and, keyed, the chain head, and
// takes released off the account's reserved credit.
func (s *DB) saveAccountHead(ctx context.Context, tx *sql.Tx, h accountHead, released int64) error {
	var last, head string
	var term uint32
	if s.ledgerKeys != nil {
		term = s.ledgerKeys.ActiveTerm()
		mac, err := s.ledgerKeys.MAC(term, ledgerHeadMessage(term, h.id, h.balance, h.last))
		if err != nil {
			return fmt.Errorf("ledger head MAC: %w", err)
		}
		last, head = h.last, hex.EncodeToString(mac)
	}
	_, err := s.txExec(ctx, tx, `UPDATE accounts SET balance_nano = ?, reserved_nano = reserved_nano - ?, ledger_last = ?, ledger_head = ?, ledger_key_term = ? WHERE id = ?`,
		h.balance, released, last, head, int64(term), h.id)
	if err != nil {
		return fmt.Errorf("balance of %s: %w", h.id, err)
	}
	return nil
}

// SealLedger starts the chain of every account that has entries or a
// balance but no head yet (written before the ledger was keyed), from the
// digest of its entries, so they are covered from now on. It returns how
// many it sealed and the newest entry id before it began: the epoch to
// record (an entry after it without a MAC is forged). Needs KeyLedger.
func (s *DB) SealLedger(ctx context.Context) (sealed int, through int64, err error) {
	if s.ledgerKeys == nil {
		return 0, 0, ErrLedgerKeyed
	}
	if err := s.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM ledger_entries`).Scan(&through); err != nil {
		return 0, 0, fmt.Errorf("seal ledger: %w", err)
	}
	rows, err := s.query(ctx, `SELECT id FROM accounts WHERE ledger_head = '' ORDER BY id`)
	if err != nil {
		return 0, 0, fmt.Errorf("seal ledger: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("seal ledger: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("seal ledger: %w", err)
	}
	for _, id := range ids {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var head string
			var n int64
			if err := s.txQueryRow(ctx, tx, `SELECT ledger_head FROM accounts WHERE id = ?`+s.forUpdate(), id).Scan(&head); err != nil || head != "" {
				return err // gone, or sealed by another replica meanwhile
			}
			h, err := s.lockAccountHead(ctx, tx, id)
			if err != nil {
				return err
			}
			if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM ledger_entries WHERE account_id = ?`, id).Scan(&n); err != nil {
				return err
			}
			if n == 0 && h.balance == 0 {
				return nil // nothing to cover: its first entry starts the chain
			}
			sealed++
			return s.saveAccountHead(ctx, tx, h, 0)
		})
		if err != nil {
			return sealed, through, fmt.Errorf("seal ledger of %s: %w", id, err)
		}
	}
	return sealed, through, nil
}

// VerifyLedgerChain walks every account's chain in one consistent snapshot
// and returns where it does not hold: an entry whose MAC does not match
// (edited, forged, or one before it removed), an entry without a MAC
// where one is due, a head that does not match the balance or does not
// name the newest entry. Balances against the sum of entries are
// VerifyBalances' part. Without keys it checks nothing and returns
// ErrLedgerKeyed if anything is keyed.
func (s *DB) VerifyLedgerChain(ctx context.Context) ([]books.LedgerProblem, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.isPostgres() {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("verify ledger: %w", err)
	}
	defer tx.Rollback()
	if s.ledgerKeys == nil {
		var n int64
		if err := s.txQueryRow(ctx, tx, `SELECT (SELECT COUNT(*) FROM accounts WHERE ledger_head <> '') + (SELECT COUNT(*) FROM ledger_entries WHERE key_term > 0)`).Scan(&n); err != nil {
			return nil, fmt.Errorf("verify ledger: %w", err)
		}
		if n > 0 {
			return nil, ErrLedgerKeyed
		}
		return nil, nil
	}
	v := &ledgerVerifier{keys: s.ledgerKeys, accounts: map[string]*verifiedAccount{}}
	v.epoch, v.hasEpoch = s.ledgerKeys.Epoch()
	arows, err := s.txQuery(ctx, tx, `SELECT id, balance_nano, ledger_last, ledger_head, ledger_key_term FROM accounts`)
	if err != nil {
		return nil, fmt.Errorf("verify ledger: %w", err)
	}
	for arows.Next() {
		a := &verifiedAccount{}
		var term int64
		if err := arows.Scan(&a.id, &a.balance, &a.last, &a.head, &term); err != nil {
			arows.Close()
			return nil, fmt.Errorf("verify ledger: %w", err)
		}
		a.term = clampTerm(term)
		v.accounts[a.id] = a
	}
	arows.Close()
	if err := arows.Err(); err != nil {
		return nil, fmt.Errorf("verify ledger: %w", err)
	}
	erows, err := s.txQuery(ctx, tx, `SELECT `+ledgerColumns+` FROM ledger_entries ORDER BY account_id, id`)
	if err != nil {
		return nil, fmt.Errorf("verify ledger: %w", err)
	}
	defer erows.Close()
	var cur *accountWalk
	for erows.Next() {
		e, err := scanLedger(erows)
		if err != nil {
			return nil, fmt.Errorf("verify ledger: %w", err)
		}
		if cur == nil || cur.id != e.AccountID {
			if cur != nil {
				v.finish(cur)
			}
			cur = &accountWalk{id: e.AccountID, g: newGenesis()}
		}
		if err := v.entry(cur, e); err != nil {
			return nil, fmt.Errorf("verify ledger: %w", err)
		}
	}
	if err := erows.Err(); err != nil {
		return nil, fmt.Errorf("verify ledger: %w", err)
	}
	if cur != nil {
		v.finish(cur)
	}
	for _, a := range v.accounts { // accounts without entries
		if !a.walked {
			v.finish(&accountWalk{id: a.id, g: newGenesis()})
		}
	}
	sortProblems(v.problems)
	return v.problems, nil
}

type verifiedAccount struct {
	id         string
	balance    int64
	last, head string
	term       uint32
	walked     bool
}

// accountWalk is one account's chain as the verifier walks it.
type accountWalk struct {
	id      string
	g       *genesis // digest of every entry so far
	prev    string   // MAC of the newest keyed entry ("" before the first)
	keyed   bool
	entries int
}

type ledgerVerifier struct {
	keys     MACKeys
	epoch    int64
	hasEpoch bool
	accounts map[string]*verifiedAccount
	problems []books.LedgerProblem
}

func (v *ledgerVerifier) problem(account string, entry int64, format string, args ...any) {
	v.problems = append(v.problems, books.LedgerProblem{AccountID: account, EntryID: entry, Reason: fmt.Sprintf(format, args...)})
}

func (v *ledgerVerifier) entry(w *accountWalk, e books.LedgerEntry) error {
	defer func() { w.g.add(e); w.entries++ }()
	if e.KeyTerm == 0 {
		switch {
		case w.keyed:
			v.problem(w.id, e.ID, "an entry without a MAC after the account's chain began (forged)")
		case v.hasEpoch && e.ID > v.epoch:
			v.problem(w.id, e.ID, "an entry without a MAC written after the ledger was keyed (forged, or by a replica of an older version)")
		}
		return nil
	}
	prev := w.prev
	if !w.keyed {
		prev = w.g.value()
	}
	ok, err := v.macMatches(e, prev)
	if err != nil {
		return err
	}
	if !ok && w.keyed {
		// The chain may have started over from the digest of everything
		// before: a writer found the account's head empty (removed).
		if restarted, err := v.macMatches(e, w.g.value()); err != nil {
			return err
		} else if restarted {
			v.problem(w.id, e.ID, "the account's chain starts over here: its ledger head had been removed")
			ok = true
		}
	}
	if !ok {
		v.problem(w.id, e.ID, "MAC does not match the entry (edited, forged without the vault's key, or an entry before it removed)")
	}
	w.prev, w.keyed = e.MAC, true
	return nil
}

func (v *ledgerVerifier) macMatches(e books.LedgerEntry, prev string) (bool, error) {
	mac, err := v.keys.MAC(e.KeyTerm, ledgerEntryMessage(e.KeyTerm, e, prev))
	if err != nil {
		// An unknown term is a forgery, not a failure of the walk.
		return false, nil
	}
	return hmac.Equal([]byte(hex.EncodeToString(mac)), []byte(e.MAC)), nil
}

// finish checks an account's head once its entries are walked.
func (v *ledgerVerifier) finish(w *accountWalk) {
	a := v.accounts[w.id]
	if a == nil {
		return // entries of a missing account: VerifyBalances reports them
	}
	a.walked = true
	if a.head == "" {
		switch {
		case w.keyed:
			v.problem(a.id, 0, "keyed entries but no ledger head (removed)")
		case (w.entries > 0 || a.balance != 0) && v.hasEpoch:
			v.problem(a.id, 0, "no ledger head although the ledger is keyed (removed; the balance is not covered)")
		case w.entries > 0 || a.balance != 0:
			v.problem(a.id, 0, "no ledger head yet: written before the ledger was keyed, and not sealed (xroute serve seals it at start)")
		}
		return
	}
	want := w.prev
	if !w.keyed {
		want = w.g.value()
	}
	if !hmac.Equal([]byte(a.last), []byte(want)) {
		v.problem(a.id, 0, "the ledger head does not name the account's newest entry (entries removed or added without the vault's key)")
		return
	}
	mac, err := v.keys.MAC(a.term, ledgerHeadMessage(a.term, a.id, a.balance, a.last))
	if err != nil || !hmac.Equal([]byte(hex.EncodeToString(mac)), []byte(a.head)) {
		v.problem(a.id, 0, "the ledger head does not match the balance (balance changed without the vault's key)")
	}
}

// sortProblems orders problems by account, each account's head last.
func sortProblems(ps []books.LedgerProblem) {
	entry := func(p books.LedgerProblem) int64 {
		if p.EntryID == 0 {
			return math.MaxInt64
		}
		return p.EntryID
	}
	slices.SortStableFunc(ps, func(a, b books.LedgerProblem) int {
		if c := strings.Compare(a.AccountID, b.AccountID); c != 0 {
			return c
		}
		switch ea, eb := entry(a), entry(b); {
		case ea < eb:
			return -1
		case ea > eb:
			return 1
		}
		return 0
	})
}

// genesis digests an account's entries in id order.
type genesis struct{ h hash.Hash }

func newGenesis() *genesis {
	g := &genesis{h: sha256.New()}
	io.WriteString(g.h, ledgerGenesisDomain)
	return g
}

func (g *genesis) add(e books.LedgerEntry) {
	writeInt64(g.h, e.ID)
	writeEntryFields(g.h, e)
	writeInt64(g.h, int64(e.KeyTerm))
	writeText(g.h, e.MAC)
}

func (g *genesis) value() string { return ledgerGenesisPrefix + hex.EncodeToString(g.h.Sum(nil)) }

// ledgerEntryMessage is what an entry's MAC covers: everything but its id
// (assigned by the insert), and the MAC of the entry before it.
func ledgerEntryMessage(term uint32, e books.LedgerEntry, prev string) []byte {
	var b bytes.Buffer
	b.Grow(len(ledgerMACDomain) + 12*8 + len(e.AccountID) + len(e.Kind) + len(e.Reference) + len(e.IdempotencyKey) +
		len(e.RequestID) + len(e.KeyID) + len(e.Actor) + len(prev))
	b.WriteString(ledgerMACDomain)
	writeInt64(&b, int64(term))
	writeEntryFields(&b, e)
	writeText(&b, prev)
	return b.Bytes()
}

// ledgerHeadMessage is what an account's head covers.
func ledgerHeadMessage(term uint32, account string, balance int64, last string) []byte {
	var b bytes.Buffer
	b.WriteString(ledgerHeadDomain)
	writeInt64(&b, int64(term))
	writeText(&b, account)
	writeInt64(&b, balance)
	writeText(&b, last)
	return b.Bytes()
}

func writeEntryFields(w io.Writer, e books.LedgerEntry) {
	writeText(w, e.AccountID)
	writeText(w, e.Kind)
	writeInt64(w, e.Amount)
	writeText(w, e.Reference)
	writeText(w, e.IdempotencyKey)
	writeText(w, e.RequestID)
	writeText(w, e.KeyID)
	writeText(w, e.Actor)
	writeInt64(w, e.CreatedAt.UnixMilli())
}

func writeInt64(w io.Writer, v int64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	w.Write(buf[:])
}

// writeText writes a length-prefixed string: no two different field lists
// encode the same.
func writeText(w io.Writer, s string) {
	writeInt64(w, int64(len(s)))
	io.WriteString(w, s)
}

// clampTerm turns a stored term into a uint32; a value out of range names
// no key (and fails verification).
func clampTerm(v int64) uint32 {
	if v < 0 || v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}
