package billing

// Budgets: spend limits per account or per caller key, per UTC day or
// month. Check refuses a request that would take spend over a limit (a
// hard stop); Add counts a settled cost and fires each alert threshold
// (50/80/100 % by default) once per period.
//
// Spend is kept in memory, seeded from the store (the usage entries of the
// ledger since the period start) the first time a budget is used in a
// period, then advanced by Add. With several replicas each one counts its
// own requests on top of what was stored when it seeded; the limit can be
// overshot by what other replicas spent since.
//
// Check compares what is spent with the limit, not what requests in flight
// will spend: concurrent requests can together overshoot a limit by at
// most their own costs (the credits ledger, not budgets, guards against
// spending money that is not there).

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// ErrBudgetExceeded is matched (errors.Is) by every *BudgetError.
var ErrBudgetExceeded = errors.New("billing: budget exceeded")

// ErrInvalidBudget is matched by every budget validation error.
var ErrInvalidBudget = errors.New("billing: invalid budget")

// ErrUnknownScope is a budget for an account or a key that does not exist
// (it also matches store.ErrNotFound): httpapi answers 404.
var ErrUnknownScope = fmt.Errorf("billing: no such account or key: %w", store.ErrNotFound)

// BudgetScope is what a budget limits.
type BudgetScope string

// Budget scopes.
const (
	ScopeAccount BudgetScope = store.BudgetScopeAccount
	ScopeKey     BudgetScope = store.BudgetScopeKey
)

// Period is a budget's window, in UTC.
type Period string

// Budget periods.
const (
	Daily   Period = store.BudgetDaily
	Monthly Period = store.BudgetMonthly
)

// Start is the beginning of the period that contains t (UTC midnight, or
// the first of the month at UTC midnight).
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	if p == Monthly {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// End is the beginning of the next period after the one containing t.
func (p Period) End(t time.Time) time.Time {
	if p == Monthly {
		return p.Start(t).AddDate(0, 1, 0)
	}
	return p.Start(t).AddDate(0, 0, 1)
}

// Budget limits spend of one account or key over a period.
type Budget struct {
	Scope   BudgetScope
	ScopeID string // the account id or the key id
	Period  Period
	Limit   Nano
	// AlertPercents are the thresholds (percent of Limit, 1..1000) that
	// fire an Alert once per period; nil means DefaultAlertPercents, an
	// empty list none.
	AlertPercents []int
}

// DefaultAlertPercents are the thresholds of a budget that sets none.
func DefaultAlertPercents() []int { return []int{50, 80, 100} }

const maxAlertPercents = 16

// normalize validates b and sorts and de-duplicates its thresholds.
func (b Budget) normalize() (Budget, error) {
	bad := func(format string, args ...any) (Budget, error) {
		return Budget{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidBudget}, args...)...)
	}
	switch {
	case b.Scope != ScopeAccount && b.Scope != ScopeKey:
		return bad("scope must be %q or %q, got %q", ScopeAccount, ScopeKey, b.Scope)
	case b.ScopeID == "":
		return bad("scope_id must not be empty")
	case b.Period != Daily && b.Period != Monthly:
		return bad("period must be %q or %q, got %q", Daily, Monthly, b.Period)
	case b.Limit < 0 || b.Limit > MaxAmount:
		return bad("limit must be between 0 and %s, got %s", MaxAmount, b.Limit)
	}
	if b.AlertPercents == nil {
		b.AlertPercents = DefaultAlertPercents()
	} else {
		b.AlertPercents = slices.Compact(slices.Sorted(slices.Values(b.AlertPercents)))
	}
	if len(b.AlertPercents) > maxAlertPercents {
		return bad("at most %d alert thresholds", maxAlertPercents)
	}
	for _, p := range b.AlertPercents {
		if p < 1 || p > 1000 {
			return bad("alert percents must be between 1 and 1000, got %d", p)
		}
	}
	return b, nil
}

func (b Budget) same(o Budget) bool {
	return b.Limit == o.Limit && slices.Equal(b.AlertPercents, o.AlertPercents)
}

// Alert is a budget threshold reached in a period.
type Alert struct {
	Budget      Budget
	Percent     int
	Spent       Nano
	PeriodStart time.Time
	// Blocked is set when the alert fires because Check refused a request
	// (spend plus the request would pass the limit) before spend itself
	// reached the threshold.
	Blocked bool
}

// BudgetError is a request refused by a budget.
type BudgetError struct {
	Budget    Budget
	Spent     Nano      // in the current period
	Amount    Nano      // what the request asked for
	ResetsAt  time.Time // start of the next period
	AccountID string
	KeyID     string
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("billing: %s budget of %s %s exceeded: %s of %s spent, request needs up to %s (resets %s)",
		e.Budget.Period, e.Budget.Scope, e.Budget.ScopeID, e.Spent, e.Budget.Limit, e.Amount, e.ResetsAt.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// BudgetStore is what Budgets needs from persistence (*store.DB).
type BudgetStore interface {
	ListBudgets(ctx context.Context, f store.BudgetFilter) ([]store.Budget, error)
	PutBudget(ctx context.Context, b store.Budget) error
	DeleteBudget(ctx context.Context, scope, scopeID, period string) error
	UsageSpend(ctx context.Context, scope, scopeID string, since time.Time) (int64, error)
	// AccountByID and KeyByID find a budget's scope (store.ErrNotFound).
	AccountByID(ctx context.Context, id string) (keys.Account, error)
	KeyByID(ctx context.Context, id string) (keys.Record, error)
}

type scopeRef struct {
	scope BudgetScope
	id    string
}

type spendRef struct {
	scopeRef
	period Period
}

type spendState struct {
	start  time.Time
	spent  Nano
	fired  uint64    // bit i: AlertPercents[i] fired this period
	seeded time.Time // when spent was last read from the store
}

// Budgets enforces spend limits. Safe for concurrent use.
type Budgets struct {
	st      BudgetStore
	now     func() time.Time
	onAlert func(Alert)
	refresh time.Duration

	reads singleflight.Group // spend reads in flight, by budget and period

	mu     sync.Mutex
	loaded bool
	defs   map[scopeRef][]Budget
	spend  map[spendRef]*spendState
}

// NewBudgets returns budgets over st with the clock now. onAlert (may be
// nil) is called for every threshold reached, from the goroutine calling
// Check or Add, without locks held: it must not block (hand the alert to
// a queue that sends the webhook and writes the audit event).
func NewBudgets(st BudgetStore, now func() time.Time, onAlert func(Alert), opts ...BudgetsOption) *Budgets {
	b := &Budgets{st: st, now: now, onAlert: onAlert, defs: map[scopeRef][]Budget{}, spend: map[spendRef]*spendState{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

// BudgetsOption configures NewBudgets.
type BudgetsOption func(*Budgets)

// WithSpendRefresh re-reads a budget's spend from the store when the last
// read is older than d. Several replicas share one store and each counts
// only its own requests in memory: with a refresh, a replica sees the
// others' spend within d plus their usage flush interval. A refresh
// takes the stored spend as it is: this replica's costs not yet flushed
// are missing from it, and the request whose Add triggered the refresh
// may be counted twice, both until the next refresh. Thresholds newly
// reached at a refresh fire on this replica's next Add, so a 50/80 %
// alert may come once per replica.
func WithSpendRefresh(d time.Duration) BudgetsOption { return func(b *Budgets) { b.refresh = d } }

// Load (re)reads every budget definition from the store. Check loads them
// on first use; call Load again when another replica changed them.
func (b *Budgets) Load(ctx context.Context) error {
	rows, err := b.st.ListBudgets(ctx, store.BudgetFilter{})
	if err != nil {
		return fmt.Errorf("billing: load budgets: %w", err)
	}
	defs := map[scopeRef][]Budget{}
	for _, r := range rows {
		bd, err := budgetFrom(r).normalize()
		if err != nil {
			return err
		}
		ref := scopeRef{bd.Scope, bd.ScopeID}
		defs[ref] = append(defs[ref], bd)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ref := range b.spend {
		if old, ok := findBudget(b.defs[ref.scopeRef], ref.period); ok {
			if nb, ok := findBudget(defs[ref.scopeRef], ref.period); ok && nb.same(old) {
				continue
			}
		}
		delete(b.spend, ref) // changed or gone: reseed on next use
	}
	b.defs, b.loaded = defs, true
	return nil
}

func findBudget(list []Budget, p Period) (Budget, bool) {
	for _, bd := range list {
		if bd.Period == p {
			return bd, true
		}
	}
	return Budget{}, false
}

func budgetFrom(r store.Budget) Budget {
	return Budget{Scope: BudgetScope(r.Scope), ScopeID: r.ScopeID, Period: Period(r.Period), Limit: Nano(r.LimitNano), AlertPercents: r.AlertPercents}
}

// Set creates or replaces the budget for (Scope, ScopeID, Period).
func (b *Budgets) Set(ctx context.Context, bd Budget) (Budget, error) {
	bd, err := bd.normalize()
	if err != nil {
		return Budget{}, err
	}
	// A budget on nothing would be a row that limits nothing, and a typo in
	// an id would pass for a limit in place.
	var lookup error
	if bd.Scope == ScopeAccount {
		_, lookup = b.st.AccountByID(ctx, bd.ScopeID)
	} else {
		_, lookup = b.st.KeyByID(ctx, bd.ScopeID)
	}
	switch {
	case errors.Is(lookup, store.ErrNotFound):
		return Budget{}, fmt.Errorf("%w (%s %s)", ErrUnknownScope, bd.Scope, bd.ScopeID)
	case lookup != nil:
		return Budget{}, fmt.Errorf("billing: budget scope: %w", lookup)
	}
	now := b.now()
	if err := b.st.PutBudget(ctx, store.Budget{Scope: string(bd.Scope), ScopeID: bd.ScopeID, Period: string(bd.Period),
		LimitNano: int64(bd.Limit), AlertPercents: bd.AlertPercents, CreatedAt: now, UpdatedAt: now}); err != nil {
		return Budget{}, fmt.Errorf("billing: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ref := scopeRef{bd.Scope, bd.ScopeID}
	list := slices.DeleteFunc(slices.Clone(b.defs[ref]), func(o Budget) bool { return o.Period == bd.Period })
	b.defs[ref] = append(list, bd)
	delete(b.spend, spendRef{ref, bd.Period})
	return bd, nil
}

// Delete removes a budget; store.ErrNotFound if there was none.
func (b *Budgets) Delete(ctx context.Context, scope BudgetScope, scopeID string, period Period) error {
	if err := b.st.DeleteBudget(ctx, string(scope), scopeID, string(period)); err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ref := scopeRef{scope, scopeID}
	b.defs[ref] = slices.DeleteFunc(slices.Clone(b.defs[ref]), func(o Budget) bool { return o.Period == period })
	if len(b.defs[ref]) == 0 {
		delete(b.defs, ref)
	}
	delete(b.spend, spendRef{ref, period})
	return nil
}

// List returns the stored budgets; empty scope or scopeID do not filter.
func (b *Budgets) List(ctx context.Context, scope BudgetScope, scopeID string) ([]Budget, error) {
	rows, err := b.st.ListBudgets(ctx, store.BudgetFilter{Scope: string(scope), ScopeID: scopeID})
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	out := make([]Budget, len(rows))
	for i, r := range rows {
		out[i] = budgetFrom(r)
	}
	return out, nil
}

// BudgetStatus is a budget with its spend in the current period.
type BudgetStatus struct {
	Budget      Budget
	Spent       Nano
	PeriodStart time.Time
	ResetsAt    time.Time
}

// Status reports the budgets that apply to an account and a key (either
// may be empty) with their current spend.
func (b *Budgets) Status(ctx context.Context, accountID, keyID string) ([]BudgetStatus, error) {
	now := b.now()
	list, _, err := b.prepare(ctx, accountID, keyID, now)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	out := make([]BudgetStatus, 0, len(list))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bd := range list {
		var spent Nano
		if st := b.spend[spendRef{scopeRef{bd.Scope, bd.ScopeID}, bd.Period}]; st != nil {
			spent = st.spent
		}
		out = append(out, BudgetStatus{Budget: bd, Spent: spent, PeriodStart: bd.Period.Start(now), ResetsAt: bd.Period.End(now)})
	}
	return out, nil
}

// Check refuses (a *BudgetError, errors.Is ErrBudgetExceeded) a request
// that may cost amount when a budget of the account or the key has no
// room for it: spent ≥ limit, or spent + amount > limit. Pass the
// request's MaxCost; pass 0 to stop only once a limit is reached. A
// refusal fires the budget's 100 % alert (Blocked) if it has not fired
// this period.
func (b *Budgets) Check(ctx context.Context, accountID, keyID string, amount Nano) error {
	now := b.now()
	list, _, err := b.prepare(ctx, accountID, keyID, now)
	if err != nil || len(list) == 0 {
		return err
	}
	var refused *BudgetError
	var alerts []Alert
	b.mu.Lock()
	for _, bd := range list {
		st := b.spend[spendRef{scopeRef{bd.Scope, bd.ScopeID}, bd.Period}]
		if st == nil || (st.spent < bd.Limit && amount <= bd.Limit-st.spent) {
			continue
		}
		if refused == nil {
			refused = &BudgetError{Budget: bd, Spent: st.spent, Amount: amount, ResetsAt: bd.Period.End(now), AccountID: accountID, KeyID: keyID}
		}
		if i := slices.Index(bd.AlertPercents, 100); i >= 0 && st.fired&(1<<i) == 0 {
			st.fired |= 1 << i
			alerts = append(alerts, Alert{Budget: bd, Percent: 100, Spent: st.spent, PeriodStart: st.start, Blocked: true})
		}
	}
	b.mu.Unlock()
	b.emit(alerts)
	if refused != nil {
		return refused
	}
	return nil
}

// Add counts the cost of a settled request against the budgets of its
// account and key and fires the thresholds it crosses. Call it after the
// request's usage debit is committed (a budget seeded from the store by
// this call already includes it, and is not counted twice).
func (b *Budgets) Add(ctx context.Context, accountID, keyID string, cost Nano) error {
	if cost <= 0 {
		return nil
	}
	now := b.now()
	list, seeded, err := b.prepare(ctx, accountID, keyID, now)
	if err != nil || len(list) == 0 {
		return err
	}
	var alerts []Alert
	b.mu.Lock()
	for i, bd := range list {
		st := b.spend[spendRef{scopeRef{bd.Scope, bd.ScopeID}, bd.Period}]
		if st == nil || seeded&(1<<i) != 0 {
			continue
		}
		st.spent += cost
		for j, p := range bd.AlertPercents {
			if st.fired&(1<<j) == 0 && reached(st.spent, bd.Limit, p) {
				st.fired |= 1 << j
				alerts = append(alerts, Alert{Budget: bd, Percent: p, Spent: st.spent, PeriodStart: st.start})
			}
		}
	}
	b.mu.Unlock()
	b.emit(alerts)
	return nil
}

func (b *Budgets) emit(alerts []Alert) {
	if b.onAlert == nil {
		return
	}
	for _, a := range alerts {
		b.onAlert(a)
	}
}

// reached reports spent ≥ limit × percent / 100, exactly.
func reached(spent, limit Nano, percent int) bool {
	if spent < 0 {
		return false
	}
	sh, sl := bits.Mul64(uint64(spent), 100)
	lh, ll := bits.Mul64(uint64(limit), uint64(percent))
	return sh > lh || (sh == lh && sl >= ll)
}

// Applies reports whether a budget may count a request of the account
// and key: true until the budgets are loaded, then only when one is set
// on either. A caller with nothing to count skips the work around Add
// (its context and timer) on every request.
func (b *Budgets) Applies(accountID, keyID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.loaded {
		return true
	}
	return (accountID != "" && len(b.defs[scopeRef{ScopeAccount, accountID}]) > 0) ||
		(keyID != "" && len(b.defs[scopeRef{ScopeKey, keyID}]) > 0)
}

// prepare returns the budgets of the account and the key, with a spend
// state for the current period of each (seeding from the store what is
// missing or from an earlier period). Bit i of seeded is set when list[i]
// was seeded by this call.
func (b *Budgets) prepare(ctx context.Context, accountID, keyID string, now time.Time) (list []Budget, seeded uint64, err error) {
	b.mu.Lock()
	loaded := b.loaded
	b.mu.Unlock()
	if !loaded {
		if err := b.Load(ctx); err != nil {
			return nil, 0, err
		}
	}
	b.mu.Lock()
	acct, key := b.defs[scopeRef{ScopeAccount, accountID}], b.defs[scopeRef{ScopeKey, keyID}]
	if accountID == "" {
		acct = nil
	}
	if keyID == "" {
		key = nil
	}
	if len(acct)+len(key) == 0 {
		b.mu.Unlock()
		return nil, 0, nil
	}
	list = append(slices.Clip(acct), key...)
	var stale []int
	for i, bd := range list {
		st := b.spend[spendRef{scopeRef{bd.Scope, bd.ScopeID}, bd.Period}]
		if st == nil || !st.start.Equal(bd.Period.Start(now)) || (b.refresh > 0 && now.Sub(st.seeded) >= b.refresh) {
			stale = append(stale, i)
		}
	}
	b.mu.Unlock()
	for _, i := range stale {
		bd := list[i]
		start := bd.Period.Start(now)
		// Concurrent requests that find the same spend stale share one
		// read: a refresh must not cost the store one query per request.
		spent, shared, err := sharedRead(ctx, &b.reads, string(bd.Scope)+"\x00"+bd.ScopeID+"\x00"+start.Format(time.RFC3339), func(ctx context.Context) (int64, error) {
			return b.st.UsageSpend(ctx, string(bd.Scope), bd.ScopeID, start)
		})
		if err != nil {
			return nil, 0, fmt.Errorf("billing: budget spend: %w", err)
		}
		b.mu.Lock()
		ref := spendRef{scopeRef{bd.Scope, bd.ScopeID}, bd.Period}
		st := b.spend[ref]
		switch {
		case st == nil || st.start.Before(start):
			st = &spendState{start: start, spent: Nano(spent), seeded: now}
			b.spend[ref] = st
			if !shared {
				// A read this caller joined may have begun before its
				// debit committed: then Add counts the cost itself (at
				// worst twice until the next refresh, never not at all).
				seeded |= 1 << i
			}
			// Thresholds already passed are taken as fired (before a
			// restart, most likely): alerts stay at most once per period
			// and process.
			for j, p := range bd.AlertPercents {
				if reached(st.spent, bd.Limit, p) {
					st.fired |= 1 << j
				}
			}
		case st.start.Equal(start) && b.refresh > 0 && now.Sub(st.seeded) >= b.refresh:
			// A refresh: the store has every replica's flushed spend. It
			// is not marked seeded, so Add still counts its request's cost
			// (counted twice until the next refresh if the store already
			// had it) and fires the thresholds that are newly reached here,
			// which other replicas may have fired too: an alert may come
			// once per replica, never not at all.
			st.spent = Nano(spent)
			st.seeded = now
		}
		b.mu.Unlock()
	}
	return list, seeded, nil
}
