package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/limits"
)

// RateLimiter is a GCRA limiter for one dimension (requests or tokens).
type RateLimiter interface {
	Allow(key string, r limits.Rate, cost int) limits.Decision
	Adjust(key string, r limits.Rate, delta int)
}

// ConcurrencyLimiter caps requests in flight per key.
type ConcurrencyLimiter interface {
	TryAcquire(key string, max int) bool
	Release(key string)
}

// Limits are the per-key limits and the defaults for keys without their
// own (0: unlimited).
type Limits struct {
	Requests    RateLimiter
	Tokens      RateLimiter
	Concurrency ConcurrencyLimiter
	DefaultRPM  int
	DefaultTPM  int
	DefaultConc int
}

// defaultCompletionReserve is what TPM reserves for the answer when the
// caller set no max tokens; the real usage corrects it afterwards.
const defaultCompletionReserve = 1024

// admission is one request's hold on its key's limits.
type admission struct {
	l        *Limits
	key      string
	tpm, rpm limits.Rate
	reserved int
	conc     bool
}

// estimatePromptTokens is a cheap upper-leaning estimate (about 4 bytes a
// token, as OpenAI's guidance says for English) used only to reserve TPM;
// the real usage corrects it.
func estimatePromptTokens(body []byte) int { return len(body)/4 + 1 }

// admit applies the key's concurrency, RPM and TPM limits before routing.
// On refusal it writes the 429 and returns nil. The returned admission must
// be settled with the real token count when the request ends.
func (s *modelAPI) admit(c *gin.Context, k *keys.Key, body []byte, maxTokens int) *admission {
	a := s.admitRequest(c, k)
	if a == nil || !s.admitTokens(c, a, body, maxTokens) {
		return nil
	}
	return a
}

func (l *Limits) pick(own, def int) int {
	if own > 0 {
		return own
	}
	return def
}

// admitRequest applies the limits that need no body: the key's
// concurrency cap and its RPM. Work a request costs the gateway before it
// can be priced (reading a stored conversation) comes after them.
func (s *modelAPI) admitRequest(c *gin.Context, k *keys.Key) *admission {
	l := s.own.Limits
	if l == nil {
		return &admission{}
	}
	a := &admission{l: l, key: k.ID, tpm: limits.PerMinute(l.pick(k.TPM, l.DefaultTPM)), rpm: limits.PerMinute(l.pick(k.RPM, l.DefaultRPM))}
	h := c.Writer.Header()
	if conc := l.pick(k.MaxConcurrent, l.DefaultConc); conc > 0 {
		if !l.Concurrency.TryAcquire(k.ID, conc) {
			s.metrics.rejected(rejectConcurrency)
			e := newError(http.StatusTooManyRequests, "rate_limit_error", "concurrency_limit_exceeded",
				"Too many concurrent requests for this API key (limit "+strconv.Itoa(conc)+"). Retry when one finishes.")
			e.RetryAfter = time.Second
			writeError(c, e)
			return nil
		}
		a.conc = true
	}
	if a.rpm.Limit > 0 {
		d := l.Requests.Allow(k.ID, a.rpm, 1)
		setLimitHeaders(h, "requests", d)
		if !d.Allowed {
			a.release()
			s.metrics.rejected(rejectRequests)
			e := newError(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
				"Rate limit reached for requests: limit "+strconv.Itoa(d.Limit)+" per minute. Please retry after "+retrySecs(d.RetryAfter)+"s.")
			e.RetryAfter = d.RetryAfter
			writeError(c, e)
			return nil
		}
	}
	return a
}

// admitTokens reserves the request's tokens against the key's TPM: the
// prompt estimate plus maxTokens. On refusal it writes the 429, gives the
// request's concurrency slot and RPM back, and returns false.
func (s *modelAPI) admitTokens(c *gin.Context, a *admission, body []byte, maxTokens int) bool {
	l := a.l
	if l == nil || a.tpm.Limit <= 0 {
		return true
	}
	if maxTokens <= 0 {
		maxTokens = defaultCompletionReserve
	}
	cost := estimatePromptTokens(body) + maxTokens
	d := l.Tokens.Allow(a.key, a.tpm, cost)
	setLimitHeaders(c.Writer.Header(), "tokens", d)
	if !d.Allowed {
		a.release()
		s.metrics.rejected(rejectTokens)
		if a.rpm.Limit > 0 {
			l.Requests.Adjust(a.key, a.rpm, -1) // this request was not served
		}
		if d.Impossible {
			e := newError(http.StatusTooManyRequests, "rate_limit_error", "tokens_exceed_limit",
				"This request needs about "+strconv.Itoa(cost)+" tokens (prompt + max tokens), more than this key's limit of "+strconv.Itoa(d.Limit)+" tokens per minute. Lower max_tokens or the prompt.")
			e.NoRetry = true
			writeError(c, e)
			return false
		}
		e := newError(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			"Rate limit reached for tokens: limit "+strconv.Itoa(d.Limit)+" per minute. Please retry after "+retrySecs(d.RetryAfter)+"s.")
		e.RetryAfter = d.RetryAfter
		writeError(c, e)
		return false
	}
	a.reserved = cost
	return true
}

// settle corrects the TPM reservation by the real usage and releases the
// concurrency slot. used < 0 means unknown (keep the reservation).
func (a *admission) settle(used int) {
	if a.l != nil && a.reserved > 0 && used >= 0 {
		a.l.Tokens.Adjust(a.key, a.tpm, used-a.reserved)
	}
	a.release()
}

func (a *admission) release() {
	if a.conc {
		a.conc = false
		a.l.Concurrency.Release(a.key)
	}
}

// setLimitHeaders writes OpenAI's x-ratelimit-{limit,remaining,reset}-KIND
// headers; reset is a Go duration string, which go-openai parses.
func setLimitHeaders(h http.Header, kind string, d limits.Decision) {
	if d.Limit <= 0 {
		return
	}
	h.Set("x-ratelimit-limit-"+kind, strconv.Itoa(d.Limit))
	h.Set("x-ratelimit-remaining-"+kind, strconv.Itoa(d.Remaining))
	h.Set("x-ratelimit-reset-"+kind, d.ResetAfter.Round(time.Millisecond).String())
}

func retrySecs(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
