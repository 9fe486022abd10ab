package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/requestid"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/router"
)

func zapErr(err error) zap.Field { return zap.Error(err) }

const infoKey = "xroute.request"

// requestInfo collects what the access log line and the usage record need.
// It never holds key material: only the key's id.
type requestInfo struct {
	id         string
	start      time.Time
	clientIP   string
	clientAddr netip.Addr // clientIP parsed (invalid when it does not parse)
	key        *keys.Key
	model      string
	provider   string
	upstream   string
	stream     bool
	attempts   int
	status     int // overrides the written status (499: client went away)
	errCode    string
	errMsg     string
	prompt     int
	complete   int
	cached     int
	cacheWrite int
	cacheW1h   int
	searches   int
	// cacheSaved is what the provider's prompt cache saved (nano-USD): the
	// price with cached and written tokens at the plain input price minus
	// the price (price sets it).
	cacheSaved int64
	ttft       time.Duration
	usageSeen  bool
	// The request's trace (tracing.go): its server span and the context
	// its children start under (nil when tracing is off), its trace id
	// for log lines and the request log ("" when none), the finish reasons
	// seen, and whether its content goes on the span.
	span         trace.Span
	traceCtx     context.Context
	traceID      string
	finish       []string
	traceContent bool // prompts and completions go on the span
	// partialUsage: the usage seen counts the input side only (an
	// Anthropic message_start); the output is counted from what was
	// delivered if the final count never comes.
	partialUsage bool
	served       bool // an answer came (a routed stream, or a body without a usable count): the prompt was read
	usageBad     bool // the upstream reported usage that cannot be right (logged once)
	metered      bool // the usage record was written

	// anthropic: the caller speaks Anthropic's API (the Messages routes,
	// or an anthropic-version header): errors in its shape.
	anthropic bool

	deployment *router.Deployment // the one that served
	hold       Hold               // credits reserved (nil: free)
	cost       int64              // nano-USD
	estimated  bool               // usage counted, not reported
	delivered  []byte             // streamed text, kept only to estimate usage
	body       []byte             // the request body (not copied)
	reqBody    *guardedBody       // the body as it is read (nil: none)
	tried      []router.Attempt   // every attempt, hedges included

	// The request log: the ingress (chat, responses, messages,
	// completions, embeddings), the body as received (not copied; kept
	// only for a capture) and the capture in progress (nil: the account
	// captures nothing). Its trace id is traceID above.
	endpoint string
	received []byte
	capture  *requestCapture

	// The response cache (cache.go): the state of a miss whose answer
	// may be stored (nil: none), and whether this request was a hit.
	cache    *cacheState
	cacheHit bool
	hitSaved int64 // a hit's full price minus what it was billed (nano-USD)
}

func infoOf(c *gin.Context) *requestInfo {
	v, ok := c.Get(infoKey)
	if !ok {
		return nil
	}
	return v.(*requestInfo)
}

// begin gives every request an id (echoed as x-request-id on every answer,
// errors included), recovers panics into an OpenAI-shaped 500 and writes
// one access log line when the request ends.
func (s *base) begin(c *gin.Context) {
	// The client's address is worked out once (trusted proxies,
	// forwarding headers) and parsed once: auth, the access log and the
	// anomaly observer read it from here.
	info := &requestInfo{id: requestid.New(), start: s.now(), clientIP: c.ClientIP()}
	info.clientAddr, _ = netip.ParseAddr(info.clientIP)
	c.Set(infoKey, info)
	s.guardConn(c, info)
	s.traceBegin(c, info)
	c.Writer.Header().Set("x-request-id", info.id)
	if anthropicClient(c.Request) {
		// An Anthropic client reads request-id and errors in its own shape,
		// from the first refusal (auth included) on.
		info.anthropic = true
		c.Writer.Header().Set("request-id", info.id)
	}
	defer func() {
		if p := recover(); p != nil {
			if errors.Is(asError(p), http.ErrAbortHandler) {
				s.traceEnd(c, info)
				panic(p) // net/http's own signal to abort a response
			}
			s.log.Error("panic in handler", zapReq(info), zap.Any("panic", p), zap.Stack("stack"))
			if !c.Writer.Written() {
				writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The server had an error while processing your request."))
			}
		}
		s.logRequest(c, info)
		s.observeMetrics(c, info)
		s.finishCapture(info)
		s.traceEnd(c, info)
	}()
	c.Next()
}

func asError(p any) error {
	if err, ok := p.(error); ok {
		return err
	}
	return nil
}

func (s *base) logRequest(c *gin.Context, info *requestInfo) {
	status := info.status
	if status == 0 {
		status = c.Writer.Status()
	}
	fields := make([]zap.Field, 0, 16)
	fields = append(fields,
		zapReq(info),
		zap.String("method", c.Request.Method),
		zap.String("path", c.Request.URL.Path),
		zap.Int("status", status),
		zap.Duration("latency", s.now().Sub(info.start)),
		zap.String("client_ip", info.clientIP),
	)
	if info.key != nil {
		fields = append(fields, zap.String("key_id", info.key.ID))
	}
	if info.model != "" {
		fields = append(fields, zap.String("model", info.model), zap.Bool("stream", info.stream))
	}
	if info.provider != "" {
		fields = append(fields, zap.String("provider", info.provider), zap.String("upstream_model", info.upstream), zap.Int("attempts", info.attempts))
	}
	if info.usageSeen {
		fields = append(fields, zap.Int("prompt_tokens", info.prompt), zap.Int("completion_tokens", info.complete))
	}
	if info.ttft > 0 {
		fields = append(fields, zap.Duration("ttft", info.ttft))
	}
	if info.errCode != "" {
		fields = append(fields, zap.String("error_code", info.errCode), zap.String("error", info.errMsg))
	}
	s.log.Info("request", fields...)
}

// maxAuthHeader bounds the Authorization header we look at.
const maxAuthHeader = 256

// keyParams are query parameters people put keys in; a request carrying
// one is refused so the habit fails loudly instead of leaking keys into
// proxy and browser logs.
var keyParams = []string{"api_key", "api-key", "apikey", "key", "access_token", "token"}

func unauthorized(code, msg string) *apiError {
	return newError(http.StatusUnauthorized, "invalid_request_error", code, msg)
}

// errInvalidKey is the one answer for every unknown-key variant (bad
// shape, bad checksum, not found), so callers learn nothing from it.
var errInvalidKey = unauthorized("invalid_api_key", "Incorrect API key provided.")

// authenticate reads the key from the Authorization header only (never
// from the URL), verifies it and checks where it may be used from.
func (s *base) authenticate(c *gin.Context) {
	info := infoOf(c)
	if e := keyInURL(c.Request); e != nil {
		writeError(c, e)
		return
	}
	vals := c.Request.Header.Values("Authorization")
	if len(vals) > 1 {
		writeError(c, unauthorized("invalid_authorization_header", "Send exactly one Authorization header."))
		return
	}
	h := ""
	xk := c.Request.Header.Values("x-api-key")
	switch {
	case len(xk) > 1:
		writeError(c, unauthorized("invalid_authorization_header", "Send exactly one x-api-key header."))
		return
	case len(xk) == 1 && (len(vals) == 0 || info.anthropic):
		// Anthropic's clients send the key as x-api-key (Claude Code with
		// ANTHROPIC_API_KEY, the SDKs by default), and for them it wins
		// over an Authorization header, as Anthropic's API has it.
		h = "Bearer " + xk[0]
	case len(vals) == 1:
		h = vals[0]
	}
	if len(h) > maxAuthHeader {
		writeError(c, unauthorized("invalid_authorization_header", "The Authorization header is too long."))
		return
	}
	scheme, token, found := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		writeError(c, unauthorized("missing_api_key",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an x-api-key header."))
		return
	}
	ip := info.clientAddr
	// The key is verified even from an address that is blocked: a valid
	// key is never refused for its neighbours' failures (a shared NAT, a
	// proxy missing from trusted_proxies); only the keys that fail are.
	k, err := s.cfg.Keys.Verify(c.Request.Context(), token)
	if err != nil {
		var e *apiError
		switch {
		case errors.Is(err, keys.ErrRevoked):
			e = unauthorized("api_key_revoked", "This API key has been revoked.")
		case errors.Is(err, keys.ErrExpired):
			e = unauthorized("api_key_expired", "This API key has expired.")
		case errors.Is(err, keys.ErrSuspended):
			e = unauthorized("api_key_suspended", "This API key is suspended. Contact your administrator.")
		case errors.Is(err, keys.ErrMalformed), errors.Is(err, keys.ErrUnknown):
			// The presented key is never echoed back, not even masked.
			e = errInvalidKey
		default:
			s.log.Error("key verification failed", zapReq(info), zap.Error(err))
			if s.storeDown(err) {
				writeError(c, errStoreUnavailable())
				return
			}
			writeError(c, newError(http.StatusServiceUnavailable, "server_error", "auth_unavailable", "The gateway cannot verify API keys right now. Please retry."))
			return
		}
		if s.cfg.Throttle != nil {
			if s.cfg.Throttle.Failed(ip.String()) && s.cfg.Guessing != nil {
				s.cfg.Guessing(ip) // a burst of guesses: an anomaly, once per episode
			}
			// A guessing address gets a growing backoff instead of an
			// answer about the key (a well-behaved client waits it out).
			if wait, blocked := s.cfg.Throttle.Check(ip.String()); blocked {
				e = newError(http.StatusTooManyRequests, "rate_limit_error", "too_many_auth_failures", "Too many failed authentication attempts from your address. Please retry later.")
				e.RetryAfter = wait
			}
		}
		s.observeAuthFailure(c, k, ip)
		writeError(c, e)
		return
	}
	info.key = k
	if !k.AllowsIP(ip) {
		s.observeAuthFailure(c, k, ip)
		writeError(c, newError(http.StatusForbidden, "permission_error", "ip_not_allowed", "This API key may not be used from your IP address."))
		return
	}
	connAuthenticated(c)
	// No c.Next: the chain goes on when this step returns unaborted, and
	// the step's span (traced) covers the step alone.
}

// isKeyID reports whether v has the shape of a key's id (key_ and
// letters or digits), which names a key without being one.
func isKeyID(v string) bool {
	rest, ok := strings.CutPrefix(v, "key_")
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// keyInURL refuses a request that carries a key in its query string.
func keyInURL(r *http.Request) *apiError {
	if r.URL.RawQuery == "" {
		return nil
	}
	q := r.URL.Query()
	for _, p := range keyParams {
		if p == "key" && r.URL.Path == "/admin/v1/requests" && isKeyID(q.Get(p)) {
			continue // the request log's filter by key id, which is no secret
		}
		if q.Has(p) {
			return unauthorized("key_in_url", "API keys are not accepted in the URL. Send the key in the Authorization header (Authorization: Bearer YOUR_KEY).")
		}
	}
	for _, vs := range q {
		for _, v := range vs {
			if strings.HasPrefix(v, keys.CallerPrefix) || strings.HasPrefix(v, keys.AdminPrefix) {
				return unauthorized("key_in_url", "API keys are not accepted in the URL. Send the key in the Authorization header (Authorization: Bearer YOUR_KEY).")
			}
		}
	}
	return nil
}

// callerOnly keeps admin keys off the model API (least privilege: an
// operator's key is not an application's key).
func (s *base) callerOnly(c *gin.Context) {
	if infoOf(c).key.Kind == keys.KindAdmin {
		writeError(c, newError(http.StatusForbidden, "permission_error", "caller_key_required", "Admin keys cannot call the model API; create a caller key (xr-…)."))
		return
	}
	c.Next()
}

// scope refuses a key whose endpoint scope does not include endpoint.
func (s *base) scope(endpoint string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !infoOf(c).key.AllowsEndpoint(endpoint) {
			writeError(c, newError(http.StatusForbidden, "permission_error", "endpoint_not_allowed", "This API key may not call "+endpoint+"."))
			return
		}
		c.Next()
	}
}

// observeAuthFailure reports a refused request of a known key (revoked,
// suspended, wrong IP) to the anomaly detector.
func (s *base) observeAuthFailure(c *gin.Context, k *keys.Key, ip netip.Addr) {
	if s.cfg.Observe == nil || k == nil {
		return
	}
	s.cfg.Observe(Observation{KeyID: k.ID, AccountID: k.AccountID, IP: ip, Status: http.StatusUnauthorized})
}

// anthropicClient reports whether r comes from an Anthropic client: a
// Messages route, or the anthropic-version header every Anthropic SDK and
// Claude Code send.
func anthropicClient(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/v1/messages") || r.Header.Get("anthropic-version") != ""
}
