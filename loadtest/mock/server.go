package mock

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Values of the x-ratelimit-* headers. They are informational only: the
// mock never enforces them (use FailRate429 or a directive for 429s).
const (
	rateLimitRequests = 100_000
	rateLimitTokens   = 100_000_000
	rateWindow        = time.Minute
)

var (
	hdrLimitRequests = []string{strconv.Itoa(rateLimitRequests)}
	hdrLimitTokens   = []string{strconv.Itoa(rateLimitTokens)}
	hdrJSON          = []string{"application/json"}
	hdrEventStream   = []string{"text/event-stream"}
	hdrNoCache       = []string{"no-cache"}
	hdrKeepAlive     = []string{"keep-alive"}
	hdrFalse         = []string{"false"}
)

// state is an immutable snapshot of the configuration and what derives from it.
type state struct {
	cfg        Config
	models     ModelSet
	modelsBody []byte   // GET /v1/models body
	retrySec   []string // Retry-After value
	retryMs    []string // retry-after-ms value
}

// Server is the mock upstream. It implements http.Handler; all its methods
// are safe for concurrent use.
type Server struct {
	st    atomic.Pointer[state]
	mux   *http.ServeMux
	core  *Core
	cache *PromptCache // automatic prompt caching of chat and Responses

	rlMu    sync.Mutex
	rlStart time.Time
	rlReqs  int64
	rlToks  int64
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	s := &Server{core: NewCore(), cache: NewPromptCache(promptCacheEntries)}
	s.SetConfig(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	mux.HandleFunc("POST /v1/responses", s.handleResponses)
	mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	mux.HandleFunc("POST /v1/embeddings", s.handleEmbeddings)
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /v1/models/{id...}", s.handleModel)
	mux.HandleFunc("/", s.handleNotFound)
	s.mux = mux
	return s
}

// SetConfig replaces the configuration. Requests in flight keep the one they
// started with. The failure RNG is reseeded with cfg.Seed.
func (s *Server) SetConfig(cfg Config) {
	cfg = cfg.Normalized()
	st := &state{cfg: cfg, models: NewModelSet(cfg.Models)}
	st.modelsBody = appendModelList(nil, cfg.Models)
	st.retrySec = []string{RetryAfterSeconds(cfg.RetryAfter)}
	st.retryMs = []string{strconv.FormatInt(cfg.RetryAfter.Milliseconds(), 10)}
	s.core.Reseed(cfg.Seed)
	s.st.Store(st)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.core.Stats() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.core.Begin()
	defer s.core.End()
	if key := s.st.Load().cfg.APIKey; key != "" {
		if msg, ok := checkAuth(r.Header.Get("Authorization"), key); !ok {
			s.writeError(w, time.Now(), http.StatusUnauthorized, msg, "invalid_request_error", "", "invalid_api_key")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func checkAuth(header, key string) (string, bool) {
	got, found := strings.CutPrefix(header, "Bearer ")
	if !found {
		got, found = strings.CutPrefix(header, "bearer ")
	}
	got = strings.TrimSpace(got)
	if !found || got == "" {
		return "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.", false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1 {
		return "", true
	}
	return "Incorrect API key provided: " + maskKey(got) + ". You can find your API key at https://platform.openai.com/account/api-keys.", false
}

func maskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, time.Now(), http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
}

// mix is splitmix64's finalizer.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newID returns prefix followed by 24 random-looking characters.
func (s *Server) newID(prefix string) string {
	b := make([]byte, 0, len(prefix)+24)
	b = append(b, prefix...)
	return string(AppendAlnum(b, s.core.NextID(), 24))
}

func (s *Server) requestID() string {
	v := s.core.NextID()
	w := mix(v)
	var b [36]byte
	copy(b[:], "req_")
	for i := 0; i < 16; i++ {
		b[4+i] = hexDigits[(v>>(4*i))&0xf]
		b[20+i] = hexDigits[(w>>(4*i))&0xf]
	}
	return string(b[:])
}

// takeRate accounts a request in the informational rate-limit window.
func (s *Server) takeRate(now time.Time, tokens int) (remReq, remTok int64, reset time.Duration) {
	s.rlMu.Lock()
	if now.Sub(s.rlStart) >= rateWindow || now.Before(s.rlStart) {
		s.rlStart, s.rlReqs, s.rlToks = now, 0, 0
	}
	s.rlReqs++
	s.rlToks += int64(tokens)
	remReq, remTok = rateLimitRequests-s.rlReqs, rateLimitTokens-s.rlToks
	reset = rateWindow - now.Sub(s.rlStart)
	s.rlMu.Unlock()
	return max(remReq, 0), max(remTok, 0), reset
}

func fmtDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return d.Round(time.Millisecond).String()
}

// writeHead sets the headers every response carries (x-request-id,
// openai-processing-ms, x-ratelimit-*) and writes the status line. limited
// marks a 429: remaining requests are reported as 0.
func (s *Server) writeHead(w http.ResponseWriter, start time.Time, status, tokens int, limited time.Duration) {
	h := w.Header()
	now := time.Now()
	remReq, remTok, reset := s.takeRate(now, tokens)
	resetReq := fmtDuration(reset)
	if limited > 0 {
		remReq, resetReq = 0, fmtDuration(limited)
	}
	h["X-Request-Id"] = []string{s.requestID()}
	h["Openai-Processing-Ms"] = []string{strconv.FormatInt(now.Sub(start).Milliseconds(), 10)}
	h["X-Ratelimit-Limit-Requests"] = hdrLimitRequests
	h["X-Ratelimit-Limit-Tokens"] = hdrLimitTokens
	h["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatInt(remReq, 10)}
	h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.FormatInt(remTok, 10)}
	h["X-Ratelimit-Reset-Requests"] = []string{resetReq}
	h["X-Ratelimit-Reset-Tokens"] = []string{fmtDuration(reset)}
	w.WriteHeader(status)
}

// writeJSON writes a complete JSON response.
func (s *Server) writeJSON(w http.ResponseWriter, start time.Time, status, tokens int, body []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	s.writeHead(w, start, status, tokens, 0)
	_, _ = w.Write(body)
}

// writeError writes an OpenAI error envelope; empty param/code become null.
func (s *Server) writeError(w http.ResponseWriter, start time.Time, status int, message, typ, param, code string) {
	s.core.Fail(status)
	bp := getBuf()
	b := appendErrorBody(*bp, message, typ, param, code)
	s.writeJSON(w, start, status, 0, b)
	*bp = b
	putBuf(bp)
}

// Injected failures.
const (
	msg500   = "The server had an error while processing your request. Sorry about that!"
	msg503   = "That model is currently overloaded with other requests. You can retry your request, or contact us through our help center at help.openai.com if the error persists."
	msgQuota = "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)

// fate rolls the request's injected outcome and waits out its delay. It
// reports ok=false when the request is already answered (an injected
// failure was written) or the client left during the delay; otherwise
// reset says whether to cut the connection instead of answering (mid-stream
// for a stream).
func (s *Server) fate(w http.ResponseWriter, r *http.Request, start time.Time, st *state, d *Directives, stream bool, model string) (reset, ok bool) {
	status, reset := s.core.Roll(&st.cfg, d, stream)
	if !s.core.Delay(r, &st.cfg, d) {
		return false, false
	}
	if d.HasStall && !stream {
		<-r.Context().Done() // a hung upstream: no answer at all
		s.core.Canceled.Add(1)
		return false, false
	}
	if status != 0 {
		s.writeFailure(w, start, st, status, d, model)
		return false, false
	}
	return reset, true
}

// writeFailure writes an injected (or directive-forced) error status.
func (s *Server) writeFailure(w http.ResponseWriter, start time.Time, st *state, status int, d *Directives, model string) {
	h := w.Header()
	switch {
	case status == http.StatusTooManyRequests:
		sec, ms := st.retrySec, st.retryMs
		ra := d.RetryAfterOr(st.cfg.RetryAfter)
		if d.HasRetryAfter {
			sec = []string{RetryAfterSeconds(ra)}
			ms = []string{strconv.FormatInt(ra.Milliseconds(), 10)}
		}
		h["Retry-After"] = sec
		h["Retry-After-Ms"] = ms
		if d.Quota {
			h["X-Should-Retry"] = hdrFalse
			s.writeError(w, start, status, msgQuota, "insufficient_quota", "", "insufficient_quota")
			return
		}
		s.core.Fail(status)
		if model == "" {
			model = "mock"
		}
		msg := "Rate limit reached for " + model + " in organization org-mock on requests per min (RPM): Limit " +
			hdrLimitRequests[0] + ", Used " + hdrLimitRequests[0] + ", Requested 1. Please try again in " +
			fmtDuration(ra) + ". Visit https://platform.openai.com/account/rate-limits to learn more."
		bp := getBuf()
		b := appendErrorBody(*bp, msg, "requests", "", "rate_limit_exceeded")
		h["Content-Type"] = hdrJSON
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
		s.writeHead(w, start, status, 0, max(ra, time.Millisecond))
		_, _ = w.Write(b)
		*bp = b
		putBuf(bp)
	case status == http.StatusInternalServerError:
		s.writeError(w, start, status, msg500, "server_error", "", "")
	case status == http.StatusServiceUnavailable:
		s.writeError(w, start, status, msg503, "server_error", "", "")
	case status == http.StatusBadRequest:
		s.writeError(w, start, status, "mock: 400 forced by directive", "invalid_request_error", "", "")
	case status == http.StatusUnauthorized:
		s.writeError(w, start, status, "mock: 401 forced by directive", "invalid_request_error", "", "invalid_api_key")
	case status == http.StatusForbidden:
		s.writeError(w, start, status, "mock: 403 forced by directive", "permission_denied", "", "")
	case status == http.StatusNotFound:
		s.writeError(w, start, status, "mock: 404 forced by directive", "invalid_request_error", "", "")
	case status >= 500:
		s.writeError(w, start, status, "mock: "+strconv.Itoa(status)+" "+http.StatusText(status)+" forced by directive", "server_error", "", "")
	default:
		s.writeError(w, start, status, "mock: "+strconv.Itoa(status)+" "+http.StatusText(status)+" forced by directive", "invalid_request_error", "", "")
	}
}

// promptCacheEntries bounds the simulated prompt cache (prefixes of 1024
// tokens and more, one entry per 128 tokens).
const promptCacheEntries = 1 << 16

// autoScope is the scope of a request's automatic prompt caching: the
// caller's key (OpenAI's cache is per organization; the mock keys it by API
// key), the model and the prompt_cache_key.
func autoScope(r *http.Request, model string, cacheKey *string) uint64 {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	pck := ""
	if cacheKey != nil {
		pck = *cacheKey
	}
	return CacheScope(strings.TrimSpace(key), model, pck)
}

// autoRetention is the TTL of prompt_cache_retention: 5 minutes of
// inactivity ("in_memory", the default), 24 hours for "24h".
func autoRetention(retention *string) time.Duration {
	if retention != nil && *retention == "24h" {
		return 24 * time.Hour
	}
	return CacheTTL5m
}

// cachedTokens reads and writes the prefixes of h (nil: a prompt below
// AutoCacheMin) in scope: the cached tokens of the prompt.
func (s *Server) cachedTokens(h *AutoHasher, scope uint64, ttl time.Duration, st *state) int {
	if h == nil {
		return 0
	}
	return s.cache.Auto(h, scope, ttl, st.cfg.Clock())
}
