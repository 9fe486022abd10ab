package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/dberr"
)

// HoldStore keeps holds in a store every replica shares. HoldCredit must
// be one atomic step (balance - reserved >= amount, then reserve), and
// committing a usage record must release the hold named after its request
// id in the same transaction (store.DB does both, on SQLite and
// PostgreSQL). One clock, the store's, times a hold's TTL and decides in
// SweepExpiredHolds that it has passed, so replicas' clocks may disagree.
type HoldStore interface {
	HoldCredit(ctx context.Context, accountID, holdID string, amount int64, ttl time.Duration) error
	ReleaseHold(ctx context.Context, holdID string) (bool, error)
	SweepExpiredHolds(ctx context.Context) (int, error)
	CreditState(ctx context.Context, accountID string) (balance, reserved int64, err error)
}

// errNoRequestID refuses a shared hold without a request id: no usage
// batch would ever release it, so it would hold its credit until the TTL.
var errNoRequestID = errors.New("billing: shared holds need the request id")

// SharedHolds keeps reservations in the shared store, so that requests
// spending one account through several replicas can never hold more than
// its balance: each hold is a conditional update the database serializes
// on the account's row. It costs one round trip per request (and one more
// for a request that fails before any cost); nothing is cached, so a
// top-up through any replica is spendable at once everywhere.
//
// A hold is named after its request id, so every hold needs one (use
// Ledger.ReserveFor). Settle does nothing: the usage batch that debits the
// request's cost deletes its hold in the same transaction, so no replica
// ever sees that credit as both unspent and unheld. Holds of a replica
// that died are freed by Sweep after the TTL, by the store's clock.
type SharedHolds struct {
	st  HoldStore
	ttl time.Duration
	log *zap.Logger
}

// NewSharedHolds returns holds in st that expire ttl after they are taken
// (longer than any request may run, with time to store its usage).
func NewSharedHolds(st HoldStore, ttl time.Duration, log *zap.Logger) *SharedHolds {
	return &SharedHolds{st: st, ttl: ttl, log: log}
}

// Hold implements Holds. requestID must not be empty: a hold without one
// is refused.
func (h *SharedHolds) Hold(ctx context.Context, accountID, requestID string, amount Nano) (HoldRef, error) {
	if requestID == "" {
		return nil, errNoRequestID
	}
	err := h.st.HoldCredit(ctx, accountID, requestID, int64(amount), h.ttl)
	switch {
	case err == nil:
		return requestID, nil
	case errors.Is(err, books.ErrInsufficientCredit):
		return nil, ErrInsufficientCredits
	case errors.Is(err, dberr.ErrNotFound):
		return nil, err
	case errors.Is(err, dberr.ErrConflict):
		// The id is held already (never by this request: ids are made
		// per request); that hold is not ours to release.
		return nil, fmt.Errorf("billing: hold credit: %w", err)
	default:
		// A deadline or a lost connection may come after the database
		// committed the hold: undo it, or it would stay until the TTL.
		// (A statement still waiting on a lock gives up on the server
		// first: the store sets lock_timeout below the hold deadline.)
		// Off the request path: the database may be what hangs.
		go h.Release(accountID, requestID, amount)
		return nil, fmt.Errorf("billing: hold credit: %w", err)
	}
}

// Release implements Holds. A release the store refuses (it is down) is
// left to the sweeper: the credit stays held until the TTL, never spent
// twice.
func (h *SharedHolds) Release(accountID string, ref HoldRef, _ Nano) {
	id, _ := ref.(string)
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.st.ReleaseHold(ctx, id); err != nil {
		h.log.Warn("credit hold not released; the sweeper frees it after the hold TTL",
			zap.String("account_id", accountID), zap.Duration("hold_ttl", h.ttl), zap.Error(err))
	}
}

// Settle implements Holds: the committed usage debit released the hold.
func (h *SharedHolds) Settle(string, HoldRef, Nano, Nano) {}

// Credit implements Holds: balances are read from the store, not cached.
func (h *SharedHolds) Credit(string, int64, Nano) {}

// Invalidate implements Holds: nothing is cached.
func (h *SharedHolds) Invalidate(string) {}

// Balance implements Holds.
func (h *SharedHolds) Balance(ctx context.Context, accountID string) (Nano, Nano, error) {
	b, r, err := h.st.CreditState(ctx, accountID)
	if err != nil {
		return 0, 0, fmt.Errorf("billing: %w", err)
	}
	return Nano(b), Nano(r), nil
}

// Sweep frees, every interval until ctx ends, the holds whose TTL passed:
// those of requests on a replica that was killed. Any replica may run it.
func (h *SharedHolds) Sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := h.st.SweepExpiredHolds(sctx)
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				h.log.Warn("sweep expired credit holds", zap.Error(err))
			case n > 0:
				h.log.Warn("freed credit holds left by a stopped replica", zap.Int("holds", n))
			}
		}
	}
}
