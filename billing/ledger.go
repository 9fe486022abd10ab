package billing

// The credits ledger: every balance change is an append-only entry with an
// idempotency key, and a balance is the sum of its entries (cached on the
// account, checked by Verify). Requests in flight hold reservations so
// that concurrent requests never spend credits that are not there.
//
// The request path, as the gateway drives it:
//
//	r, err := ledger.Reserve(ctx, accountID, MaxCost(model, prompt, maxTokens, bp))
//	// err: ErrInsufficientCredits -> 429 insufficient_quota, before any upstream call
//	defer r.Release() // on failure; a no-op once settled
//	... call the provider, get usage, cost := Cost(model, usage, bp) ...
//	// usage record + books.UsageDebit{AccountID, RequestID, Amount: cost} are
//	// committed in one transaction (store.DB.ApplyUsageDebits), then:
//	r.Settle(cost)
//
// Settle must come after the debit is committed: it moves only this
// process's in-memory view (see Holds).

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sync/singleflight"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/billing/books"
)

// Errors callers branch on.
var (
	// ErrInsufficientCredits: the available balance (balance minus what
	// requests in flight hold) cannot cover the reservation.
	ErrInsufficientCredits = errors.New("billing: insufficient credits")
	// ErrIdempotencyConflict: the idempotency key was already used for a
	// posting of another kind or amount.
	ErrIdempotencyConflict = errors.New("billing: idempotency key already used with a different amount")
	// ErrInvalidPosting: a posting's amount, kind or key is not acceptable.
	ErrInvalidPosting = errors.New("billing: invalid posting")
)

// EntryKind is why a balance changed.
type EntryKind string

// Entry kinds.
const (
	KindTopUp      EntryKind = books.LedgerTopUp
	KindUsage      EntryKind = books.LedgerUsage
	KindRefund     EntryKind = books.LedgerRefund
	KindAdjustment EntryKind = books.LedgerAdjustment
	KindExpiry     EntryKind = books.LedgerExpiry
)

// maxKeyLen bounds an idempotency key.
const maxKeyLen = 200

// Entry is one ledger entry.
type Entry struct {
	ID             int64
	AccountID      string
	Kind           EntryKind
	Amount         Nano // credits positive, debits negative
	Reference      string
	IdempotencyKey string
	RequestID      string
	KeyID          string
	Actor          string
	CreatedAt      time.Time
}

func entryFrom(e books.LedgerEntry) Entry {
	return Entry{ID: e.ID, AccountID: e.AccountID, Kind: EntryKind(e.Kind), Amount: Nano(e.Amount), Reference: e.Reference,
		IdempotencyKey: e.IdempotencyKey, RequestID: e.RequestID, KeyID: e.KeyID, Actor: e.Actor, CreatedAt: e.CreatedAt}
}

// Mismatch is an account whose cached balance is not the sum of its
// entries (or entries whose account is missing), or, with Problem set, a
// place where the account's keyed chain does not hold: an entry (EntryID)
// or the account's head (EntryID 0) changed without the vault's key.
type Mismatch struct {
	AccountID      string
	Cached         Nano
	Computed       Nano
	AccountMissing bool
	EntryID        int64
	Problem        string
}

// LedgerStore is what the Ledger needs from persistence (*store.DB).
type LedgerStore interface {
	PostLedgerEntry(ctx context.Context, e books.LedgerEntry) (books.LedgerEntry, bool, error)
	AccountCredit(ctx context.Context, accountID string) (books.AccountCredit, error)
	SetAccountMultiplier(ctx context.Context, accountID string, bp int) error
	FindLedgerEntries(ctx context.Context, accountID string, f books.LedgerFilter) ([]books.LedgerEntry, error)
	VerifyBalances(ctx context.Context) ([]books.BalanceMismatch, error)
	VerifyLedgerChain(ctx context.Context) ([]books.LedgerProblem, error)
}

// Ledger posts credits and holds reservations. Safe for concurrent use.
type Ledger struct {
	st    LedgerStore
	now   func() time.Time
	holds Holds

	reads   singleflight.Group // multiplier reads in flight, by account
	mu      sync.RWMutex
	mult    map[string]cachedMult // account -> multiplier, cached
	multTTL time.Duration         // 0: until Invalidate
}

type cachedMult struct {
	bp int
	at time.Time
}

// LedgerOption configures NewLedger.
type LedgerOption func(*Ledger)

// WithHolds replaces the in-memory reservations (one replica) with another
// Holds, e.g. one kept atomically in a shared store.
func WithHolds(h Holds) LedgerOption { return func(l *Ledger) { l.holds = h } }

// WithMultiplierTTL re-reads a cached price multiplier older than d. With
// several replicas a change made elsewhere arrives by Redis pub/sub; the
// TTL bounds how long a missed message (or no Redis) keeps an old price.
func WithMultiplierTTL(d time.Duration) LedgerOption { return func(l *Ledger) { l.multTTL = d } }

// NewLedger returns a ledger over st with the clock now. Reservations are
// kept in memory (NewMemoryHolds) unless WithHolds says otherwise.
func NewLedger(st LedgerStore, now func() time.Time, opts ...LedgerOption) *Ledger {
	l := &Ledger{st: st, now: now, mult: map[string]cachedMult{}}
	l.holds = NewMemoryHolds(l.loadCredit)
	for _, o := range opts {
		o(l)
	}
	return l
}

func (l *Ledger) loadCredit(ctx context.Context, accountID string) (Nano, int64, error) {
	c, err := l.st.AccountCredit(ctx, accountID)
	if err != nil {
		return 0, 0, err
	}
	l.mu.Lock()
	l.mult[accountID] = cachedMult{c.MultiplierBP, l.now()}
	l.mu.Unlock()
	return Nano(c.Balance), c.LastEntryID, nil
}

// Posting is a balance change made by an operator or a process (not usage:
// usage is debited with the usage records, see store.DB.ApplyUsageDebits).
type Posting struct {
	AccountID string
	Kind      EntryKind // top_up and refund (> 0), adjustment (≠ 0), expiry (< 0)
	Amount    Nano
	// IdempotencyKey makes the posting safe to retry: the same key with the
	// same kind and amount returns the first entry and changes nothing.
	IdempotencyKey string
	Reference      string // invoice, reason
	RequestID      string // refund: the request refunded
	Actor          string
}

func (p Posting) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPosting, fmt.Sprintf(format, args...))
	}
	switch {
	case p.AccountID == "":
		return bad("no account")
	case p.IdempotencyKey == "" || len(p.IdempotencyKey) > maxKeyLen:
		return bad("an idempotency key of 1 to %d characters is required", maxKeyLen)
	case strings.HasPrefix(p.IdempotencyKey, books.UsageIdempotencyPrefix):
		return bad("idempotency keys starting with %q are reserved for usage", books.UsageIdempotencyPrefix)
	case p.Amount > MaxAmount || p.Amount < -MaxAmount:
		return bad("amount %s is beyond %s", p.Amount, MaxAmount)
	}
	switch p.Kind {
	case KindTopUp, KindRefund:
		if p.Amount <= 0 {
			return bad("a %s must be positive, got %s", p.Kind, p.Amount)
		}
	case KindAdjustment:
		if p.Amount == 0 {
			return bad("an adjustment must not be zero")
		}
	case KindExpiry:
		if p.Amount >= 0 {
			return bad("an expiry must be negative, got %s", p.Amount)
		}
	default:
		return bad("kind %q cannot be posted (usage is debited with usage records)", p.Kind)
	}
	return nil
}

// Post appends one entry and moves the balance, in one transaction. It
// returns the entry and whether it was a replay of the same idempotency
// key (then nothing changed). ErrIdempotencyConflict when the key was used
// with another kind or amount; dberr.ErrNotFound for an unknown account.
func (l *Ledger) Post(ctx context.Context, p Posting) (Entry, bool, error) {
	if err := p.validate(); err != nil {
		return Entry{}, false, err
	}
	e, replayed, err := l.st.PostLedgerEntry(ctx, books.LedgerEntry{
		AccountID: p.AccountID, Kind: string(p.Kind), Amount: int64(p.Amount), Reference: p.Reference,
		IdempotencyKey: p.IdempotencyKey, RequestID: p.RequestID, Actor: p.Actor, CreatedAt: l.now(),
	})
	if errors.Is(err, books.ErrIdempotencyConflict) {
		return Entry{}, false, fmt.Errorf("%w (%v)", ErrIdempotencyConflict, err)
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("billing: %w", err)
	}
	if !replayed {
		l.holds.Credit(p.AccountID, e.ID, Nano(e.Amount))
	}
	return entryFrom(e), replayed, nil
}

// TopUp adds credits. Replaying idemKey with the same amount returns the
// original entry with replayed true; with another amount it is
// ErrIdempotencyConflict.
func (l *Ledger) TopUp(ctx context.Context, accountID string, amount Nano, idemKey, actor string) (Entry, bool, error) {
	return l.Post(ctx, Posting{AccountID: accountID, Kind: KindTopUp, Amount: amount, IdempotencyKey: idemKey, Actor: actor})
}

// Adjust corrects a balance by a signed amount, with a reason kept as the
// entry's reference. Idempotent like TopUp.
func (l *Ledger) Adjust(ctx context.Context, accountID string, amount Nano, idemKey, actor, reason string) (Entry, bool, error) {
	return l.Post(ctx, Posting{AccountID: accountID, Kind: KindAdjustment, Amount: amount, IdempotencyKey: idemKey, Actor: actor, Reference: reason})
}

// Reserve holds amount of the account's available credits (balance minus
// what requests in flight hold) for one request, or fails with
// ErrInsufficientCredits. The first use of an account loads its balance;
// after that Reserve does no I/O. Every Reservation must end with Settle
// or Release. With shared holds (WithHolds(SharedHolds)) use ReserveFor:
// they are named after the request, and Reserve fails.
func (l *Ledger) Reserve(ctx context.Context, accountID string, amount Nano) (*Reservation, error) {
	return l.ReserveFor(ctx, accountID, "", amount)
}

// ReserveFor is Reserve for the request whose usage record has id
// requestID. A shared Holds names the hold after it, so that committing
// the request's usage debit releases the hold in the same transaction.
func (l *Ledger) ReserveFor(ctx context.Context, accountID, requestID string, amount Nano) (*Reservation, error) {
	if amount < 0 {
		return nil, fmt.Errorf("%w: negative reservation %s", ErrInvalidPosting, amount)
	}
	ref, err := l.holds.Hold(ctx, accountID, requestID, amount)
	if err != nil {
		return nil, err
	}
	return &Reservation{holds: l.holds, ref: ref, accountID: accountID, amount: amount}, nil
}

// Balance reports the account's balance as this ledger knows it (stored
// debits and credits, including settled requests), what requests in
// flight hold, and what is available to reserve.
func (l *Ledger) Balance(ctx context.Context, accountID string) (balance, reserved, available Nano, err error) {
	balance, reserved, err = l.holds.Balance(ctx, accountID)
	if err != nil {
		return 0, 0, 0, err
	}
	return balance, reserved, balance - reserved, nil
}

// Multiplier is the account's price multiplier in basis points (10000 =
// 1x), cached after the first read.
func (l *Ledger) Multiplier(ctx context.Context, accountID string) (int, error) {
	l.mu.RLock()
	e, ok := l.mult[accountID]
	l.mu.RUnlock()
	if ok && (l.multTTL == 0 || l.now().Sub(e.at) < l.multTTL) {
		return e.bp, nil
	}
	// Concurrent requests of an account with a cold or expired entry
	// share one read.
	bp, _, err := sharedRead(ctx, &l.reads, accountID, func(ctx context.Context) (int, error) {
		c, err := l.st.AccountCredit(ctx, accountID)
		if err != nil {
			return 0, err
		}
		l.mu.Lock()
		l.mult[accountID] = cachedMult{c.MultiplierBP, l.now()}
		l.mu.Unlock()
		return c.MultiplierBP, nil
	})
	if err != nil {
		return 0, fmt.Errorf("billing: %w", err)
	}
	return bp, nil
}

// SetMultiplier stores an account's price multiplier (basis points).
func (l *Ledger) SetMultiplier(ctx context.Context, accountID string, bp int) error {
	if !ValidMultiplier(bp) {
		return fmt.Errorf("%w: multiplier %d bp is outside 1..%d", ErrInvalidPosting, bp, MaxMultiplierBP)
	}
	if err := l.st.SetAccountMultiplier(ctx, accountID, bp); err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	l.mu.Lock()
	l.mult[accountID] = cachedMult{bp, l.now()}
	l.mu.Unlock()
	return nil
}

// Invalidate forgets what this process caches about an account (balance,
// multiplier), e.g. after another replica posted to it: the balance is
// reloaded on next use once no reservation of the account is in flight.
func (l *Ledger) Invalidate(accountID string) {
	l.mu.Lock()
	delete(l.mult, accountID)
	l.mu.Unlock()
	l.holds.Invalidate(accountID)
}

// Entries pages through an account's entries, newest first (beforeID: the
// smallest ID of the previous page, 0 for the first; limit at most 1000).
func (l *Ledger) Entries(ctx context.Context, accountID string, limit int, beforeID int64) ([]Entry, error) {
	return l.FindEntries(ctx, accountID, books.LedgerFilter{Limit: limit, BeforeID: beforeID})
}

// FindEntries is Entries narrowed by key, kind and time window.
func (l *Ledger) FindEntries(ctx context.Context, accountID string, f books.LedgerFilter) ([]Entry, error) {
	rows, err := l.st.FindLedgerEntries(ctx, accountID, f)
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = entryFrom(r)
	}
	return out, nil
}

// Verify recomputes every balance as the sum of its entries and walks
// every account's keyed chain (see store.KeyLedger); it returns the
// accounts whose cached balance disagrees, then each place where a chain
// does not hold (none when all is well). A sum that agrees is not enough:
// someone who can write the database can add an entry and move the
// balance to match, which only the chain shows.
func (l *Ledger) Verify(ctx context.Context) ([]Mismatch, error) {
	rows, err := l.st.VerifyBalances(ctx)
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	out := make([]Mismatch, len(rows))
	for i, r := range rows {
		out[i] = Mismatch{AccountID: r.AccountID, Cached: Nano(r.Cached), Computed: Nano(r.Computed), AccountMissing: r.AccountMissing}
	}
	problems, err := l.st.VerifyLedgerChain(ctx)
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	for _, p := range problems {
		out = append(out, Mismatch{AccountID: p.AccountID, EntryID: p.EntryID, Problem: p.Reason})
	}
	return out, nil
}

// Reservation is credit held for one request in flight. Settle or Release
// it exactly once; later calls are no-ops, so `defer r.Release()` is safe.
type Reservation struct {
	holds     Holds
	ref       HoldRef
	accountID string
	amount    Nano
	done      atomic.Bool
}

// AccountID is the account the credit is held on.
func (r *Reservation) AccountID() string { return r.accountID }

// Amount is the credit held.
func (r *Reservation) Amount() Nano { return r.amount }

// Release gives the held credit back (the request failed or cost nothing
// that was debited).
func (r *Reservation) Release() {
	if r == nil || !r.done.CompareAndSwap(false, true) {
		return
	}
	r.holds.Release(r.accountID, r.ref, r.amount)
}

// Settle ends the reservation of a request whose usage debit of cost has
// been COMMITTED to the ledger: the hold is released and the in-memory
// balance reduced by cost. cost may exceed the amount held (the estimate
// was low); the balance then takes the difference.
func (r *Reservation) Settle(cost Nano) {
	if r == nil || !r.done.CompareAndSwap(false, true) {
		return
	}
	r.holds.Settle(r.accountID, r.ref, r.amount, max(cost, 0))
}

// HoldRef is what a Holds implementation gives back for one hold and gets
// again at Release/Settle (the in-memory one: its per-account state).
type HoldRef any

// Holds keeps, per account, the spendable balance and the credit held by
// requests in flight, and makes "available covers it, then hold it" one
// atomic step. MemoryHolds does it per process; an implementation over a
// shared store (a Redis script, or a Postgres UPDATE ... WHERE balance -
// reserved >= amount) makes it atomic across replicas: there Settle only
// releases the hold (the debit is already in the shared balance) and
// Credit is a no-op.
type Holds interface {
	// Hold reserves amount for request requestID, or returns
	// ErrInsufficientCredits. MemoryHolds accepts an empty requestID;
	// SharedHolds needs it (the request's usage batch releases the hold).
	Hold(ctx context.Context, accountID, requestID string, amount Nano) (HoldRef, error)
	// Release returns a hold unused.
	Release(accountID string, ref HoldRef, amount Nano)
	// Settle ends a hold whose request's debit of cost is committed.
	Settle(accountID string, ref HoldRef, held, cost Nano)
	// Credit reports a committed entry other than usage (top-up,
	// adjustment, refund, expiry) with its id.
	Credit(accountID string, entryID int64, amount Nano)
	// Balance reports the balance and the credit held.
	Balance(ctx context.Context, accountID string) (balance, reserved Nano, err error)
	// Invalidate marks cached state of the account as out of date.
	Invalidate(accountID string)
}

// CreditLoader reads an account's stored balance and the id of the newest
// ledger entry it includes.
type CreditLoader func(ctx context.Context, accountID string) (balance Nano, lastEntryID int64, err error)

// MemoryHolds keeps holds in this process: a mutex per account, the
// balance loaded from the store on first use and then kept in step by
// Settle (committed usage) and Credit (committed postings). Reserve and
// settle do no I/O. Correct for one replica; with several, each replica
// sees only its own holds, and postings made elsewhere only after
// Invalidate.
type MemoryHolds struct {
	load CreditLoader

	mu       sync.RWMutex
	accounts map[string]*memAccount
}

type memAccount struct {
	mu       sync.Mutex
	loaded   bool
	stale    bool  // reload once no hold is in flight
	through  int64 // newest entry id the loaded balance includes
	balance  Nano
	reserved Nano
	holds    int
}

// NewMemoryHolds returns in-memory holds loading balances with load.
func NewMemoryHolds(load CreditLoader) *MemoryHolds {
	return &MemoryHolds{load: load, accounts: map[string]*memAccount{}}
}

func (m *MemoryHolds) account(id string, create bool) *memAccount {
	m.mu.RLock()
	a := m.accounts[id]
	m.mu.RUnlock()
	if a != nil || !create {
		return a
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a = m.accounts[id]; a == nil {
		a = &memAccount{}
		m.accounts[id] = a
	}
	return a
}

// ready loads a's balance when needed; a.mu is held. A reload waits until
// no hold is in flight: a settle in flight is already in the store but not
// yet in memory, and would be subtracted twice.
func (m *MemoryHolds) ready(ctx context.Context, id string, a *memAccount) error {
	if a.loaded && !(a.stale && a.holds == 0) {
		return nil
	}
	bal, through, err := m.load(ctx, id)
	if err != nil {
		return err
	}
	a.balance, a.through, a.loaded, a.stale = bal, through, true, false
	return nil
}

// Hold implements Holds.
func (m *MemoryHolds) Hold(ctx context.Context, accountID, _ string, amount Nano) (HoldRef, error) {
	a := m.account(accountID, true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := m.ready(ctx, accountID, a); err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	if amount > a.balance-a.reserved {
		return nil, ErrInsufficientCredits
	}
	a.reserved += amount
	a.holds++
	return a, nil
}

func (m *MemoryHolds) ref(accountID string, ref HoldRef) *memAccount {
	if a, ok := ref.(*memAccount); ok && a != nil {
		return a
	}
	return m.account(accountID, false)
}

// Release implements Holds.
func (m *MemoryHolds) Release(accountID string, ref HoldRef, amount Nano) {
	a := m.ref(accountID, ref)
	if a == nil {
		return
	}
	a.mu.Lock()
	a.reserved -= amount
	a.holds--
	a.mu.Unlock()
}

// Settle implements Holds.
func (m *MemoryHolds) Settle(accountID string, ref HoldRef, held, cost Nano) {
	a := m.ref(accountID, ref)
	if a == nil {
		return
	}
	a.mu.Lock()
	a.reserved -= held
	a.holds--
	a.balance -= cost
	a.mu.Unlock()
}

// Credit implements Holds: an entry the loaded balance does not include
// yet (a higher id than the load saw) is added.
func (m *MemoryHolds) Credit(accountID string, entryID int64, amount Nano) {
	a := m.account(accountID, false)
	if a == nil {
		return
	}
	a.mu.Lock()
	if a.loaded && entryID > a.through {
		a.balance += amount
	}
	a.mu.Unlock()
}

// Balance implements Holds.
func (m *MemoryHolds) Balance(ctx context.Context, accountID string) (Nano, Nano, error) {
	a := m.account(accountID, true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := m.ready(ctx, accountID, a); err != nil {
		return 0, 0, fmt.Errorf("billing: %w", err)
	}
	return a.balance, a.reserved, nil
}

// Invalidate implements Holds.
func (m *MemoryHolds) Invalidate(accountID string) {
	if a := m.account(accountID, false); a != nil {
		a.mu.Lock()
		a.stale = true
		a.mu.Unlock()
	}
}
