package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
)

// CreditsAdmin is what the credit routes need: the ledger and budgets,
// with top-ups audited by the implementation.
type CreditsAdmin interface {
	TopUp(ctx context.Context, accountID string, amount billing.Nano, idemKey, actor string) (billing.Entry, bool, error)
	Balance(ctx context.Context, accountID string) (balance, reserved, available billing.Nano, err error)
	FindEntries(ctx context.Context, accountID string, f books.LedgerFilter) ([]billing.Entry, error)
	Verify(ctx context.Context) ([]billing.Mismatch, error)
	SetMultiplier(ctx context.Context, accountID string, bp int) error
	SetBudget(ctx context.Context, b billing.Budget, actor string) (billing.Budget, error)
	ListBudgets(ctx context.Context, scope billing.BudgetScope, scopeID string) ([]billing.Budget, error)
	DeleteBudget(ctx context.Context, scope billing.BudgetScope, scopeID string, period billing.Period, actor string) error
}

type entryObject struct {
	Object    string    `json:"object"`
	ID        int64     `json:"id"`
	AccountID string    `json:"account_id"`
	Kind      string    `json:"kind"`
	AmountUSD string    `json:"amount_usd"`
	Amount    int64     `json:"amount_nano"`
	Reference string    `json:"reference,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
}

func newEntryObject(e billing.Entry) entryObject {
	return entryObject{Object: "ledger_entry", ID: e.ID, AccountID: e.AccountID, Kind: string(e.Kind), AmountUSD: e.Amount.String(),
		Amount: int64(e.Amount), Reference: e.Reference, RequestID: e.RequestID, KeyID: e.KeyID, Actor: e.Actor, CreatedAt: e.CreatedAt}
}

type budgetObject struct {
	Object        string `json:"object"`
	Scope         string `json:"scope"`
	ScopeID       string `json:"scope_id"`
	Period        string `json:"period"`
	LimitUSD      string `json:"limit_usd"`
	AlertPercents []int  `json:"alert_percents"`
}

func newBudgetObject(b billing.Budget) budgetObject {
	return budgetObject{Object: "budget", Scope: string(b.Scope), ScopeID: b.ScopeID, Period: string(b.Period), LimitUSD: b.Limit.String(), AlertPercents: b.AlertPercents}
}

func (s *adminAPI) routeCredits(g *gin.RouterGroup) {
	if s.cfg.Credits == nil {
		return
	}
	g.POST("/accounts/:id/credits", s.adminTopUp)
	g.GET("/accounts/:id/credits", s.adminBalance)
	g.GET("/accounts/:id/ledger", s.adminLedger)
	g.POST("/accounts/:id/multiplier", s.adminMultiplier)
	g.GET("/credits/verify", s.adminVerifyCredits)
	g.GET("/budgets", s.adminListBudgets)
	g.POST("/budgets", s.adminSetBudget)
	g.DELETE("/budgets", s.adminDeleteBudget)
}

func billingError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, billing.ErrIdempotencyConflict):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "idempotency_conflict", "This idempotency key was used with a different amount."))
	case errors.Is(err, billing.ErrInvalidPosting), errors.Is(err, billing.ErrInvalidBudget):
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", err.Error()))
	default:
		adminError(c, err)
	}
}

func (s *adminAPI) adminTopUp(c *gin.Context) {
	var req struct {
		Amount         string `json:"amount"` // USD, e.g. "10.00"
		IdempotencyKey string `json:"idempotency_key"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	amount, err := billing.ParseUSD(req.Amount)
	if err != nil || amount <= 0 {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", "amount must be a positive USD amount such as \"10.00\".").withParam("amount"))
		return
	}
	if req.IdempotencyKey == "" {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", "idempotency_key is required: replaying a top-up with the same key changes nothing.").withParam("idempotency_key"))
		return
	}
	e, replayed, err := s.cfg.Credits.TopUp(c.Request.Context(), c.Param("id"), amount, req.IdempotencyKey, actor(c))
	if err != nil {
		billingError(c, err)
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	c.JSON(status, gin.H{"object": "top_up", "replayed": replayed, "entry": newEntryObject(e)})
}

func (s *base) balance(c *gin.Context, accountID string) {
	bal, res, avail, err := s.cfg.Credits.Balance(c.Request.Context(), accountID)
	if err != nil {
		billingError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "credits", "account_id": accountID,
		"balance_usd": bal.String(), "reserved_usd": res.String(), "available_usd": avail.String(),
		"balance_nano": int64(bal), "reserved_nano": int64(res), "available_nano": int64(avail)})
}

func (s *adminAPI) adminBalance(c *gin.Context) { s.balance(c, c.Param("id")) }

// callerCredits is GET /v1/credits: the caller's own account, nothing else.
func (s *modelAPI) callerCredits(c *gin.Context) { s.balance(c, infoOf(c).key.AccountID) }

// adminLedger pages an account's entries, newest first (at most 1000 a
// page). Filters: key_id, kind, from and to ([from, to), RFC 3339 or
// YYYY-MM-DD). The cursor (before, or after) is the previous page's
// next_after.
func (s *adminAPI) adminLedger(c *gin.Context) {
	f := books.LedgerFilter{Limit: 100, KeyID: c.Query("key_id"), Kind: c.Query("kind")}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_limit", "limit must be an integer from 1 to 1000.").withParam("limit"))
			return
		}
		f.Limit = n
	}
	if v, param := cursorArg(c); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", param+" must be an entry id.").withParam(param))
			return
		}
		f.BeforeID = n
	}
	var e *apiError
	if f.From, f.To, e = timeRange(c); e != nil {
		writeError(c, e)
		return
	}
	limit := f.Limit
	f.Limit++
	list, err := s.cfg.Credits.FindEntries(c.Request.Context(), c.Param("id"), f)
	if err != nil {
		billingError(c, err)
		return
	}
	page := listPage{Object: "list"}
	if len(list) > limit {
		list, page.HasMore = list[:limit], true
	}
	data := make([]entryObject, len(list))
	for i, e := range list {
		data[i] = newEntryObject(e)
	}
	if page.HasMore {
		page.NextAfter = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	page.Data = data
	c.JSON(http.StatusOK, page)
}

// timeRange reads the from and to of a list's date-range filter: RFC 3339
// or a UTC date, [from, to); either may be left out.
func timeRange(c *gin.Context) (from, to time.Time, e *apiError) {
	var err error
	if from, err = billing.ParseTime("from", c.Query("from")); err != nil {
		return from, to, queryError(err)
	}
	if to, err = billing.ParseTime("to", c.Query("to")); err != nil {
		return from, to, queryError(err)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, invalidParam("from", "from must be before to.")
	}
	return from, to, nil
}

func (s *adminAPI) adminMultiplier(c *gin.Context) {
	var req struct {
		Multiplier string `json:"multiplier"` // e.g. "1.25"
	}
	if !s.bindJSON(c, &req) {
		return
	}
	bp, err := billing.ParseMultiplier(req.Multiplier)
	if err != nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", err.Error()).withParam("multiplier"))
		return
	}
	if err := s.cfg.Credits.SetMultiplier(c.Request.Context(), c.Param("id"), bp); err != nil {
		billingError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "multiplier", "account_id": c.Param("id"), "multiplier": billing.FormatMultiplier(bp)})
}

func (s *adminAPI) adminVerifyCredits(c *gin.Context) {
	mm, err := s.cfg.Credits.Verify(c.Request.Context())
	if err != nil {
		billingError(c, err)
		return
	}
	out := make([]gin.H, len(mm))
	for i, m := range mm {
		out[i] = gin.H{"account_id": m.AccountID, "cached_nano": int64(m.Cached), "computed_nano": int64(m.Computed), "account_missing": m.AccountMissing}
		if m.Problem != "" { // the account's keyed chain does not hold
			out[i]["problem"], out[i]["entry_id"] = m.Problem, m.EntryID
		}
	}
	c.JSON(http.StatusOK, gin.H{"object": "credits_verification", "ok": len(mm) == 0, "mismatches": out})
}

// adminListBudgets lists budgets ordered by scope, scope id and period.
// Filters: scope, scope_id, period. The cursor (after) is the last
// budget's "scope:scope_id:period".
func (s *adminAPI) adminListBudgets(c *gin.Context) {
	after, limit, e := pageArgs(c)
	if e != nil {
		writeError(c, e)
		return
	}
	var cur [3]string
	if after != "" {
		i, j := strings.IndexByte(after, ':'), strings.LastIndexByte(after, ':')
		if i < 0 || i == j {
			writeError(c, invalidParam("after", "after must be the next_after of the previous page (scope:scope_id:period)."))
			return
		}
		cur = [3]string{after[:i], after[i+1 : j], after[j+1:]}
	}
	list, err := s.cfg.Credits.ListBudgets(c.Request.Context(), billing.BudgetScope(c.Query("scope")), c.Query("scope_id"))
	if err != nil {
		billingError(c, err)
		return
	}
	period := c.Query("period")
	page := listPage{Object: "list"}
	data := make([]budgetObject, 0, min(len(list), limit))
	for _, b := range list {
		if period != "" && string(b.Period) != period {
			continue
		}
		if after != "" && slices.Compare([]string{string(b.Scope), b.ScopeID, string(b.Period)}, cur[:]) <= 0 {
			continue
		}
		if len(data) == limit {
			last := data[len(data)-1]
			page.HasMore, page.NextAfter = true, last.Scope+":"+last.ScopeID+":"+last.Period
			break
		}
		data = append(data, newBudgetObject(b))
	}
	page.Data = data
	c.JSON(http.StatusOK, page)
}

func (s *adminAPI) adminSetBudget(c *gin.Context) {
	var req struct {
		Scope         string `json:"scope"` // account or key
		ScopeID       string `json:"scope_id"`
		Period        string `json:"period"` // daily or monthly
		Limit         string `json:"limit_usd"`
		AlertPercents []int  `json:"alert_percents"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	limit, err := billing.ParseUSD(req.Limit)
	if err != nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", "limit_usd must be a USD amount such as \"50.00\".").withParam("limit_usd"))
		return
	}
	b, err := s.cfg.Credits.SetBudget(c.Request.Context(), billing.Budget{Scope: billing.BudgetScope(req.Scope), ScopeID: req.ScopeID,
		Period: billing.Period(req.Period), Limit: limit, AlertPercents: req.AlertPercents}, actor(c))
	if errors.Is(err, billing.ErrUnknownScope) {
		writeError(c, newError(http.StatusNotFound, "invalid_request_error", "not_found", "No such "+req.Scope+": "+req.ScopeID+".").withParam("scope_id"))
		return
	}
	if err != nil {
		billingError(c, err)
		return
	}
	c.JSON(http.StatusOK, newBudgetObject(b))
}

func (s *adminAPI) adminDeleteBudget(c *gin.Context) {
	err := s.cfg.Credits.DeleteBudget(c.Request.Context(), billing.BudgetScope(c.Query("scope")), c.Query("scope_id"), billing.Period(c.Query("period")), actor(c))
	if err != nil {
		billingError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "budget", "deleted": true})
}
