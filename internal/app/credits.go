package app

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// credits prices requests: the ledger's reservations, the budgets and the
// token estimator behind httpapi.Meter. Budget alerts are audited and,
// when configured, posted to a webhook by one goroutine it owns.
type credits struct {
	ledger  *billing.Ledger
	budgets *billing.Budgets
	// The tokenizer's ranks take ~15 MB and 0.25 s to load: only a priced
	// request needs them, so they load on first use.
	estOnce sync.Once
	est     *billing.Estimator
	estErr  error
	audit   *auditlog.Auditor
	webhook *webhook // signs and sends alerts (nil: none)
	log     *zap.Logger

	alerts chan billing.Alert
	wg     sync.WaitGroup
}

func newCredits(ledger *billing.Ledger, st billing.BudgetStore, audit *auditlog.Auditor, hook *webhook, log *zap.Logger, opts ...billing.BudgetsOption) *credits {
	c := &credits{ledger: ledger, audit: audit, webhook: hook, log: log, alerts: make(chan billing.Alert, 256)}
	c.budgets = billing.NewBudgets(st, time.Now, c.enqueue, opts...)
	c.wg.Add(1)
	go c.deliver()
	return c
}

func (c *credits) estimator() (*billing.Estimator, error) {
	c.estOnce.Do(func() { c.est, c.estErr = billing.NewEstimator() })
	return c.est, c.estErr
}

// PromptTokens implements httpapi.TokenCounter: a pivot body's prompt
// tokens by the tokenizer that reserves credits.
func (c *credits) PromptTokens(body []byte) (int, error) {
	est, err := c.estimator()
	if err != nil {
		return 0, err
	}
	return est.PromptTokens(body), nil
}

// enqueue runs on the request goroutine: it must not block.
func (c *credits) enqueue(a billing.Alert) {
	select {
	case c.alerts <- a:
	default:
		c.log.Warn("budget alert queue full; alert only logged", zap.String("scope_id", a.Budget.ScopeID), zap.Int("percent", a.Percent))
	}
}

func (c *credits) deliver() {
	defer c.wg.Done()
	for a := range c.alerts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		details := map[string]any{"scope": string(a.Budget.Scope), "period": string(a.Budget.Period), "percent": a.Percent,
			"limit_usd": a.Budget.Limit.String(), "spent_usd": a.Spent.String(), "blocked": a.Blocked}
		if err := c.audit.Record(ctx, auditlog.Event{Kind: "budget.alert", Actor: "system", Subject: a.Budget.ScopeID, Details: details}); err != nil {
			c.log.Error("audit budget alert", zap.Error(err))
		}
		if c.webhook != nil {
			body, _ := json.Marshal(map[string]any{"type": "budget.alert", "scope_id": a.Budget.ScopeID, "details": details, "period_start": a.PeriodStart})
			if err := c.webhook.post(ctx, body); err != nil {
				c.log.Error("budget webhook", zap.Error(err))
			}
		}
		cancel()
	}
}

func (c *credits) close() {
	close(c.alerts)
	c.wg.Wait()
}

// costs reports whether requests served by d cost anything. A deployment
// without a price (Info nil) is not free: Hold refuses it.
func costs(d *router.Deployment) bool {
	return d.Info == nil || d.Info.Input != 0 || d.Info.Output != 0 || d.Info.CacheWriteInput != 0 || d.Info.WebSearch != 0
}

// holdTimeout bounds the credit check of one request.
const holdTimeout = 10 * time.Second

// Hold implements httpapi.Meter: it reserves the most the request can cost
// on any deployment of the model or of its fallback models (prompt by the
// tokenizer, plus max tokens or the model's cap for each answer), after
// the budgets agree. A deployment without a price refuses the request
// (*httpapi.UnpricedError): no answer is served without one.
func (c *credits) Hold(ctx context.Context, requestID string, k *keys.Key, m *router.Model, body []byte, w httpapi.Worst) (httpapi.Hold, error) {
	models := append([]*router.Model{m}, w.Fallbacks...)
	free := true
	for _, fm := range models {
		for _, d := range fm.Deployments {
			if d.Info == nil {
				return nil, &httpapi.UnpricedError{Model: fm.Name, Deployment: d.Name()}
			}
			free = free && !costs(d)
		}
	}
	if free {
		return nil, nil // every deployment is free, by the operator's word
	}
	// The hold may be a database round trip; a database that stops
	// answering must cost a request a few seconds and a 503, not hang it
	// (the request timeout starts after the hold).
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	est, err := c.estimator()
	if err != nil {
		return nil, err
	}
	prompt := est.PromptTokens(body)
	bp, err := c.ledger.Multiplier(ctx, k.AccountID)
	if err != nil {
		return nil, err
	}
	var most billing.Nano
	hedged := false
	for _, fm := range models {
		hedged = hedged || fm.Hedged()
		for _, d := range fm.Deployments {
			if costs(d) {
				most = max(most, billing.MaxCostN(*d.Info, prompt, w.MaxTokens, w.Choices, bp)+
					billing.Cost(*d.Info, providers.Usage{WebSearches: w.WebSearches}, bp))
			}
		}
	}
	if w.Hedgeable && hedged {
		// A hedge that lost but finished is paid too: at most two
		// attempts are in flight, so at most two complete.
		most = min(most, math.MaxInt64/2) * 2
	}
	if err := c.budgets.Check(ctx, k.AccountID, k.ID, most); err != nil {
		return nil, err
	}
	r, err := c.ledger.ReserveFor(ctx, k.AccountID, requestID, most)
	if err != nil {
		return nil, err
	}
	return &hold{c: c, r: r, bp: bp, account: k.AccountID, key: k.ID, model: m.Name}, nil
}

type hold struct {
	c       *credits
	r       *billing.Reservation
	bp      int
	account string
	key     string
	model   string
}

func (h *hold) Cost(d *router.Deployment, u providers.Usage) int64 {
	if d == nil || d.Info == nil {
		return 0 // not reached: Hold refuses a request an unpriced deployment could serve
	}
	return int64(billing.Cost(*d.Info, u, h.bp))
}

func (h *hold) Estimate(body []byte, delivered string) providers.Usage {
	est, err := h.c.estimator() // loaded by Hold already
	if err != nil {
		return providers.Usage{}
	}
	return providers.Usage{PromptTokens: est.PromptTokens(body), CompletionTokens: est.TextTokens(h.model, delivered)}
}

func (h *hold) Settle(cost int64) {
	h.r.Settle(billing.Nano(cost))
	if cost <= 0 || !h.c.budgets.Applies(h.account, h.key) {
		return // no budget to count it against: no context, no timer
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.c.budgets.Add(ctx, h.account, h.key, billing.Nano(cost)); err != nil {
		h.c.log.Error("budget spend not counted", zap.String("account_id", h.account), zap.Error(err))
	}
}

func (h *hold) Release() { h.r.Release() }

// CreditsAdmin is the ledger and budgets as the admin API and the CLI use
// them: every change is audited.
type CreditsAdmin struct {
	*billing.Ledger
	budgets *billing.Budgets
	audit   *auditlog.Auditor
	// changed tells the other replicas what to reload (nil: one replica).
	changed func(msg string)
}

func (a *CreditsAdmin) announce(msg string) {
	if a.changed != nil {
		a.changed(msg)
	}
}

// NewCreditsAdmin wraps a ledger and budgets for operators. changed (nil:
// one replica) tells the other replicas what to reload.
func NewCreditsAdmin(l *billing.Ledger, b *billing.Budgets, audit *auditlog.Auditor, changed func(msg string)) *CreditsAdmin {
	return &CreditsAdmin{Ledger: l, budgets: b, audit: audit, changed: changed}
}

// TopUp adds credits (idempotent by key) and audits a real change.
func (a *CreditsAdmin) TopUp(ctx context.Context, accountID string, amount billing.Nano, idemKey, actor string) (billing.Entry, bool, error) {
	e, replayed, err := a.Ledger.TopUp(ctx, accountID, amount, idemKey, actor)
	if err == nil && !replayed {
		a.audit.Record(ctx, auditlog.Event{Kind: auditlog.CreditsChanged, Actor: actor, AccountID: accountID, Subject: accountID,
			Details: map[string]any{"kind": "top_up", "amount_usd": amount.String(), "entry_id": e.ID}})
	}
	return e, replayed, err
}

// SetMultiplier changes an account's price multiplier, audited.
func (a *CreditsAdmin) SetMultiplier(ctx context.Context, accountID string, bp int) error {
	if err := a.Ledger.SetMultiplier(ctx, accountID, bp); err != nil {
		return err
	}
	a.announce(accountChanged + accountID)
	a.audit.Record(ctx, auditlog.Event{Kind: auditlog.CreditsChanged, Actor: "admin", AccountID: accountID, Subject: accountID,
		Details: map[string]any{"multiplier": billing.FormatMultiplier(bp)}})
	return nil
}

// SetBudget creates or replaces a budget, audited.
func (a *CreditsAdmin) SetBudget(ctx context.Context, b billing.Budget, actor string) (billing.Budget, error) {
	out, err := a.budgets.Set(ctx, b)
	if err == nil {
		a.announce(budgetsChanged)
		a.audit.Record(ctx, auditlog.Event{Kind: "budget.set", Actor: actor, Subject: b.ScopeID,
			Details: map[string]any{"scope": string(b.Scope), "period": string(b.Period), "limit_usd": b.Limit.String()}})
	}
	return out, err
}

// ListBudgets lists budgets, of one scope id or all.
func (a *CreditsAdmin) ListBudgets(ctx context.Context, scope billing.BudgetScope, scopeID string) ([]billing.Budget, error) {
	return a.budgets.List(ctx, scope, scopeID)
}

// DeleteBudget removes a budget, audited.
func (a *CreditsAdmin) DeleteBudget(ctx context.Context, scope billing.BudgetScope, scopeID string, period billing.Period, actor string) error {
	if err := a.budgets.Delete(ctx, scope, scopeID, period); err != nil {
		return err
	}
	a.announce(budgetsChanged)
	a.audit.Record(ctx, auditlog.Event{Kind: "budget.deleted", Actor: actor, Subject: scopeID, Details: map[string]any{"scope": string(scope), "period": string(period)}})
	return nil
}
