package books

import (
	"errors"
	"time"
)

// Ledger entry kinds.
const (
	LedgerTopUp      = "top_up"
	LedgerUsage      = "usage"
	LedgerRefund     = "refund"
	LedgerAdjustment = "adjustment"
	LedgerExpiry     = "expiry"
)

// ErrIdempotencyConflict is returned when an idempotency key is reused for
// an entry of another kind or amount.
var ErrIdempotencyConflict = errors.New("idempotency key already used for a different entry")

// ErrInsufficientCredit is returned when an account's unreserved balance
// cannot cover a hold.
var ErrInsufficientCredit = errors.New("insufficient credit")

// LedgerEntry is one balance change as stored.
type LedgerEntry struct {
	ID             int64
	AccountID      string
	Kind           string // see the Ledger* constants
	Amount         int64  // nano-USD, credits positive, debits negative
	Reference      string // free text: an invoice, a reason
	IdempotencyKey string
	RequestID      string // usage: the request debited
	KeyID          string // usage: the caller key
	Actor          string // who posted it: "admin:key_x", "cli", "system"
	CreatedAt      time.Time
	// KeyTerm and MAC authenticate the entry (see the store's KeyLedger); 0 and ""
	// for an entry written unkeyed.
	KeyTerm uint32
	MAC     string
}

// AccountCredit is an account's cached balance and price multiplier.
type AccountCredit struct {
	AccountID    string
	Balance      int64 // nano-USD
	MultiplierBP int   // basis points, 10000 = 1x
	// LastEntryID is the newest ledger entry the balance includes (0: none).
	LastEntryID int64
}

// LedgerFilter narrows an account's entries; zero fields do not filter.
// The dashboard pages a large ledger by key, kind and time window.
type LedgerFilter struct {
	KeyID    string
	Kind     string
	From, To time.Time // created in [From, To)
	BeforeID int64     // the smallest ID of the previous page
	Limit    int       // default 100, at most 1000
}

// BalanceMismatch is an account whose cached balance is not the sum of its
// ledger entries, or entries whose account does not exist.
type BalanceMismatch struct {
	AccountID      string
	Cached         int64 // accounts.balance_nano (0 when the account is missing)
	Computed       int64 // SUM(ledger_entries.amount_nano)
	AccountMissing bool
}

// LedgerProblem is a place where the ledger's chain does not hold.
type LedgerProblem struct {
	AccountID string
	EntryID   int64 // 0: the account's head
	Reason    string
}
