package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// Meter prices requests against the caller's credits.
type Meter interface {
	// Hold reserves the most the request can cost on model m and checks
	// budgets. A nil Hold means the request costs nothing. requestID is
	// the id of the request's usage record; body the pivot (or the
	// caller's body) whose prompt is counted.
	Hold(ctx context.Context, requestID string, k *keys.Key, m *router.Model, body []byte, w Worst) (Hold, error)
}

// Worst is what multiplies a request's worst-case cost besides its
// prompt.
type Worst struct {
	// MaxTokens caps each answer's output (0: the model's limit).
	MaxTokens int
	// Choices is how many answers one call produces (n, best_of, several
	// prompts); 0 means 1.
	Choices int
	// Hedgeable: the request may be hedged, so two attempts may complete
	// and both be paid.
	Hedgeable bool
	// WebSearches is the most server-side web searches the request may
	// make (Anthropic's web_search tool: its max_uses).
	WebSearches int
	// Fallbacks are the models the request may fall back to (its "models"
	// list, as the key may use them): their deployments may serve it, so
	// they are priced and held for too. Set by the admission pipeline.
	Fallbacks []*router.Model
}

// UnpricedError is Hold's refusal of a request that a deployment without
// a price could serve: xroute serves no answer without a price, and free
// is only what an operator marks free.
type UnpricedError struct {
	Model      string // the public model
	Deployment string // its deployment without a price (provider/model)
}

func (e *UnpricedError) Error() string {
	return "model " + e.Model + " has no price (deployment " + e.Deployment + ")"
}

// Hold is one request's reservation.
type Hold interface {
	// Cost prices the usage served by deployment d, in nano-USD.
	Cost(d *router.Deployment, u providers.Usage) int64
	// Estimate counts usage when the provider reported none.
	Estimate(body []byte, delivered string) providers.Usage
	// Settle charges cost (after its record is committed) and releases the
	// rest of the reservation.
	Settle(cost int64)
	// Release frees the reservation of a request that cost nothing.
	Release()
}

// hold reserves credits for a request; on refusal it writes the answer
// and returns false.
func (s *Server) hold(c *gin.Context, info *requestInfo, m *router.Model, body []byte, w Worst) bool {
	if s.credits == nil {
		return true
	}
	h, err := s.credits.Hold(c.Request.Context(), info.id, info.key, m, body, w)
	var be *billing.BudgetError
	var ue *UnpricedError
	switch {
	case err == nil:
		info.hold = h
		return true
	case errors.As(err, &ue):
		s.log.Warn("request refused: model has no price", zapReq(info), zap.String("model", ue.Model), zap.String("deployment", ue.Deployment))
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "model_not_priced",
			"The model `"+ue.Model+"` has no price, and xroute serves no answer without one. An operator must price it (input_price and output_price) or mark it free in the configuration.").withParam("model"))
	case errors.Is(err, keys.ErrChildCap):
		writeError(c, childCapError(err))
	case errors.Is(err, billing.ErrInsufficientCredits):
		// As OpenAI answers an exhausted quota: a 429 the SDKs must not retry.
		e := newError(http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota",
			"You exceeded your current quota: the account's credits cannot cover this request. Top up the account's credits.")
		e.NoRetry = true
		writeError(c, e)
	case errors.As(err, &be):
		e := newError(http.StatusTooManyRequests, "insufficient_quota", "budget_exceeded", be.Error())
		e.NoRetry = true
		if d := time.Until(be.ResetsAt); d > 0 {
			e.RetryAfter = d
		}
		writeError(c, e)
	case s.storeDown(err):
		s.log.Error("credit check failed: database unreachable", zapReq(info), zapErr(err))
		writeError(c, errStoreUnavailable())
	default:
		s.log.Error("credit check failed", zapReq(info), zapErr(err))
		writeError(c, newError(http.StatusServiceUnavailable, "server_error", "billing_unavailable", "The gateway cannot check credits right now. Please retry."))
	}
	return false
}

// price fills in the request's cost from its usage, estimating what the
// provider did not count (or counted wrong) from the prompt and the
// delivered output: an answer that came is never billed 0.
func (s *Server) price(info *requestInfo, body []byte) {
	if info.hold == nil || info.deployment == nil {
		return
	}
	switch {
	case !info.usageSeen:
		if len(info.delivered) == 0 && !info.served {
			return // nothing came back: nothing to charge
		}
		u := info.hold.Estimate(body, string(info.delivered))
		info.prompt, info.complete, info.usageSeen, info.estimated = u.PromptTokens, u.CompletionTokens, true, true
	default:
		if (info.partialUsage || info.complete == 0) && len(info.delivered) > 0 {
			// The input side is the upstream's; the output stopped before
			// its count came, or was not counted: counted from what was
			// delivered.
			u := info.hold.Estimate(nil, string(info.delivered))
			info.complete, info.estimated = max(info.complete, u.CompletionTokens), true
		}
		if info.prompt == 0 {
			// The upstream read a prompt it did not count.
			info.prompt, info.estimated = info.hold.Estimate(body, "").PromptTokens, true
		}
	}
	u := providers.Usage{PromptTokens: info.prompt, CompletionTokens: info.complete, CachedTokens: info.cached, CacheWriteTokens: info.cacheWrite, CacheWrite1hTokens: info.cacheW1h, WebSearches: info.searches}
	info.cost = info.hold.Cost(info.deployment, u)
	if info.cacheHit {
		// A response cache hit: the configured part of the price; the rest
		// is what the response cache saved the account. No provider prompt
		// cache was used for it (the replayed counts are the original
		// request's), so it saved nothing there.
		full := info.cost
		info.cost = int64(float64(full) * s.cache.PriceFraction)
		info.hitSaved = full - info.cost
		info.cacheSaved = 0
		return
	}
	info.cacheSaved = promptCacheSaved(info.hold, info.deployment, u, info.cost)
	// A hedge that lost but finished was served too: the caller pays for
	// what the upstream charged for it.
	for _, a := range info.tried {
		if !a.Won && a.Usage != nil && a.Deployment != nil {
			if err := a.Usage.Check(); err != nil {
				s.log.Warn("upstream usage of a losing hedge rejected", zapReq(info), zap.String("deployment", a.Deployment.Name()), zap.Error(err))
				continue
			}
			c := info.hold.Cost(a.Deployment, *a.Usage)
			info.cost += c
			info.cacheSaved += promptCacheSaved(info.hold, a.Deployment, *a.Usage, c)
		}
	}
}

// promptCacheSaved is what the provider's prompt cache saved on usage u
// that cost cost: the price of u with every cached and cache-written token
// at the plain input price, minus cost. Negative when cache writes (priced
// above input) outweighed the reads; 0 when no token touched the cache.
func promptCacheSaved(h Hold, d *router.Deployment, u providers.Usage, cost int64) int64 {
	if u.CachedTokens <= 0 && u.CacheWriteTokens <= 0 {
		return 0
	}
	u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens = 0, 0, 0
	return h.Cost(d, u) - cost
}
