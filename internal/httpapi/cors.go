package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// CORSStore keeps the browser origins operators allowed, per account.
type CORSStore interface {
	CORSOrigins(ctx context.Context) (map[string][]string, error)
	SetCORSOrigins(ctx context.Context, accountID string, origins []string, t time.Time) error
}

// corsTTL is how long a replica uses its copy of the allowed origins
// before reading them again (a change made on this replica applies at
// once; one made on another replica within corsTTL).
const corsTTL = 10 * time.Second

// corsOrigins is the replica's copy of the allowed origins, read on the
// request path without a lock and reloaded by the first request that
// finds it older than corsTTL.
type corsOrigins struct {
	src CORSStore
	log *zap.Logger

	mu   sync.Mutex // one reload at a time
	snap atomic.Pointer[corsSnapshot]
}

type corsSnapshot struct {
	at        time.Time                  // zero: stale
	byAccount map[string]map[string]bool // account → origins
	any       map[string]bool            // origins some account allows
}

func (co *corsOrigins) get(now time.Time) *corsSnapshot {
	sn := co.snap.Load()
	if sn != nil && now.Sub(sn.at) < corsTTL {
		return sn
	}
	if sn != nil && !co.mu.TryLock() {
		return sn // another request reloads; this one uses the copy
	}
	if sn == nil {
		co.mu.Lock()
	}
	defer co.mu.Unlock()
	if cur := co.snap.Load(); cur != sn {
		return cur
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	next := &corsSnapshot{at: now, byAccount: map[string]map[string]bool{}, any: map[string]bool{}}
	all, err := co.src.CORSOrigins(ctx)
	if err != nil {
		co.log.Warn("reading cors origins; keeping the last ones", zap.Error(err))
		if sn != nil {
			next.byAccount, next.any = sn.byAccount, sn.any
		}
	}
	for acct, list := range all {
		set := map[string]bool{}
		for _, o := range list {
			set[o], next.any[o] = true, true
		}
		next.byAccount[acct] = set
	}
	co.snap.Store(next)
	return next
}

// invalidate makes the next request read the origins again.
func (co *corsOrigins) invalidate() {
	sn := co.snap.Load()
	if sn == nil {
		return
	}
	co.snap.Store(&corsSnapshot{byAccount: sn.byAccount, any: sn.any})
}

// normalOrigin returns o as browsers send it in Origin (lower-case
// scheme and host, no default port, no path), or false when o is not an
// http(s) origin.
func normalOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return strings.ToLower(u.Scheme) + "://" + host, true
}

// corsAllowHeaders are the request headers a browser may send: the key,
// the body's type, and what the OpenAI and Anthropic SDKs add
// (x-stainless-* are matched by prefix).
var corsAllowHeaders = map[string]bool{
	"authorization": true, "content-type": true, "accept": true, "x-api-key": true,
	"anthropic-version": true, "anthropic-beta": true, "anthropic-dangerous-direct-browser-access": true,
	"openai-organization": true, "openai-project": true, "openai-beta": true, "idempotency-key": true,
	"traceparent": true, "tracestate": true,
}

// corsExposeHeaders are the answer headers a page may read.
const corsExposeHeaders = "x-request-id, request-id, retry-after, retry-after-ms, x-should-retry, x-xroute-attempts, " +
	"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, " +
	"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"

// corsMaxAge is how long a browser may keep a preflight's answer.
const corsMaxAge = "600"

// cors answers the model API's CORS: a preflight (which carries no key)
// for an origin any account allows, and on the actual request the
// Access-Control-Allow-Origin that lets the page read the answer. The
// request's own account is checked after auth (corsAccount). Nothing
// outside /v1 gets a CORS header: never the admin API, nor the dashboard.
func (s *modelAPI) cors(c *gin.Context) {
	origin := c.Request.Header.Get("Origin")
	if s.corsOn == nil || !strings.HasPrefix(c.Request.URL.Path, "/v1/") {
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	if origin == "" {
		c.Next()
		return
	}
	allowed := s.corsOn.get(s.now()).any[origin]
	if c.Request.Method == http.MethodOptions && c.Request.Header.Get("Access-Control-Request-Method") != "" {
		if !allowed {
			// No Access-Control-Allow-Origin: the browser refuses.
			c.AbortWithStatus(http.StatusForbidden)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		if hs := preflightHeaders(c.Request.Header.Get("Access-Control-Request-Headers")); hs != "" {
			h.Set("Access-Control-Allow-Headers", hs)
		}
		h.Set("Access-Control-Max-Age", corsMaxAge)
		h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
	c.Next()
}

// preflightHeaders is the part of a preflight's requested headers that
// may be sent, in the browser's own spelling.
func preflightHeaders(asked string) string {
	var ok []string
	for _, name := range strings.Split(asked, ",") {
		name = strings.TrimSpace(name)
		low := strings.ToLower(name)
		if corsAllowHeaders[low] || (strings.HasPrefix(low, "x-stainless-") && len(low) > len("x-stainless-")) {
			ok = append(ok, name)
		}
	}
	return strings.Join(ok, ", ")
}

// corsAccount refuses a browser request (one with an Origin other than
// xroute's own) whose origin the key's account does not allow.
func (s *modelAPI) corsAccount(c *gin.Context) {
	origin := c.Request.Header.Get("Origin")
	if s.corsOn == nil || origin == "" || sameOrigin(c.Request, origin) {
		c.Next()
		return
	}
	if !s.corsOn.get(s.now()).byAccount[infoOf(c).key.AccountID][origin] {
		writeError(c, newError(http.StatusForbidden, "permission_error", "origin_not_allowed",
			"This API key's account does not allow requests from the origin "+origin+". An operator can allow it: PUT /admin/v1/accounts/{id}/cors."))
		return
	}
	c.Next()
}

// sameOrigin reports whether origin names the host the request was sent
// to (a page xroute serves itself, such as the dashboard).
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
