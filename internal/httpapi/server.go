// Package httpapi is xroute's HTTP layer: the OpenAI-compatible /v1 routes,
// health, and the middleware every request passes (request id, access log,
// panic recovery, Bearer auth). The request path reads top to bottom in
// chat.go.
//
// Server (server.go) composes three planes, each with one Mount: the
// model API (modelAPI, model.go: /v1), the admin API (adminAPI, admin.go:
// /admin/v1) and the dashboard (UI, ui.go: /ui). What both APIs use —
// the config, the logger, metrics, authentication, the store gate, body
// reading — is base (shared.go), which each embeds.
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// KeyVerifier authenticates caller keys.
type KeyVerifier interface {
	Verify(ctx context.Context, presented string) (*keys.Key, error)
}

// Router routes a request to deployments with failover.
type Router interface {
	Lookup(name string) (*router.Model, bool)
	Models() []*router.Model
	Chat(ctx context.Context, m *router.Model, req *providers.ChatRequest) (*providers.ChatResponse, router.Result, error)
	ChatStream(ctx context.Context, m *router.Model, req *providers.ChatRequest) (providers.Stream, router.Result, error)
	Embed(ctx context.Context, m *router.Model, inputs []string, dimensions int) ([][]float32, providers.Usage, router.Result, error)
}

// UsageRecorder writes usage records: Record queues one, Commit waits
// until it is durable.
type UsageRecorder interface {
	Record(rec books.UsageRecord) error
	Commit(ctx context.Context, rec books.UsageRecord) error
}

// AuthThrottle slows down repeated failed authentication per client IP.
type AuthThrottle interface {
	Check(ip string) (retryAfter time.Duration, blocked bool)
	// Failed counts a failure and reports whether it started a block (a
	// burst of guesses).
	Failed(ip string) (burst bool)
}

// Observation is one finished request as the anomaly detector sees it.
type Observation struct {
	KeyID, AccountID string
	IP               netip.Addr
	Status           int
	Tokens           int
}

// Config holds the server's dependencies and limits: at the top what
// both planes use (authentication, the store gate, body reading, metrics,
// tracing, capture settings, CORS origins, the cache policies, credit
// balances), then each plane's own part.
type Config struct {
	Keys   KeyVerifier
	Router Router
	Log    *zap.Logger
	// Health reports whether dependencies (the store) answer.
	Health func(ctx context.Context) error
	Now    func() time.Time
	// TrustedProxies whose X-Forwarded-For is believed (empty: none).
	TrustedProxies []string
	// Throttle slows down failed authentication per IP (nil: off).
	Throttle AuthThrottle
	// Guessing is told of an address whose failed authentications started
	// a block (an anomaly); it must not block.
	Guessing func(ip netip.Addr)
	// Observe receives every request that named a known key (anomaly
	// detection); it must not block.
	Observe func(Observation)
	// Credits serves the credit and budget admin routes and GET /v1/credits.
	Credits CreditsAdmin
	// Metrics turns on Prometheus metrics and GET /metrics (zero: off).
	Metrics MetricsConfig
	// Cache is the response cache (zero: off): the model API serves from
	// it, the admin API edits its per-model policies.
	Cache CacheConfig
	// StoreHealth gates new /v1 requests and answers /healthz while the
	// database is down (nil: Health is pinged on /healthz, no gate).
	StoreHealth StoreHealth
	// MaxBodyBytes bounds a request body; BodyReadTimeout bounds reading
	// it (0: unbounded); WriteTimeout bounds each write to a caller (0:
	// unbounded).
	MaxBodyBytes    int64
	BodyReadTimeout time.Duration
	WriteTimeout    time.Duration
	// RequestLog serves the request log and the capture settings on the
	// admin API (nil: neither); Captures writes the captures of accounts
	// that have capture on (nil: nothing is captured).
	RequestLog RequestLogStore
	Captures   CaptureSink
	// Tracer makes every request a trace (nil: tracing off).
	Tracer *telemetry.Tracer
	// CORS keeps each account's allowed browser origins (nil: no CORS).
	CORS CORSStore

	Model ModelConfig // the /v1 data plane's own part
	Admin AdminConfig // the /admin/v1 plane's own part
}

// ModelConfig is what only the model API (/v1) uses.
type ModelConfig struct {
	Usage          UsageRecorder
	RequestTimeout time.Duration
	// Limits are per-key rate and concurrency limits (nil: none).
	Limits *Limits
	// Meter prices requests against credits (nil: nothing is charged).
	Meter Meter
	// CallerRoutes mount further caller routes on the authenticated /v1
	// group (a caller's own usage and credits).
	CallerRoutes []Mounter
	// Responses keeps Responses API answers (nil: only store: false
	// requests are served) for ResponseRetention.
	Responses         ResponseStore
	ResponseRetention time.Duration
	// Tokens counts prompt tokens for the input_tokens endpoint.
	Tokens TokenCounter
	// StreamKeepAlive is the silence toward the caller after which a
	// stream gets a keep-alive: a ping event (Messages) or an SSE comment
	// (0: none).
	StreamKeepAlive time.Duration
	// Exchange serves POST /v1/auth/token (nil: no token exchange).
	Exchange TokenExchanger
	// Children mints ephemeral child keys (nil: no POST /v1/keys/ephemeral).
	Children ChildKeys
}

// AdminConfig is what only the admin API (/admin/v1) uses.
type AdminConfig struct {
	// Keys serves /admin/v1 (nil: no admin API).
	Keys KeyAdmin
	// Routes mount further admin routes (audit log, provider keys,
	// vault) on the authenticated /admin/v1 group.
	Routes []Mounter
	// RotationOverlap is the default overlap of a rotation.
	RotationOverlap time.Duration
	// AuditLog and ProviderKeys serve their admin routes (nil: none).
	AuditLog     AuditLog
	ProviderKeys ProviderKeyAdmin
	// AuditWriter records capture and CORS setting changes in the audit
	// log.
	AuditWriter AuditWriter
}

// Server is the HTTP handler: it composes the three planes, each mounted
// one way — the model API (/v1), the admin API (/admin/v1) and the
// dashboard (/ui) — under the middleware every request passes, /healthz
// and /metrics.
type Server struct {
	*base
	engine *gin.Engine
	model  *modelAPI
	admin  *adminAPI
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	b, err := newBase(cfg)
	if err != nil {
		return nil, err
	}
	model, err := newModelAPI(b)
	if err != nil {
		return nil, err
	}
	s := &Server{base: b, model: model, admin: newAdminAPI(b)}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done()/c.Err() follow the request context
	// Only listed proxies may set the client IP (IP allowlists and auth
	// throttling depend on it); by default nobody can spoof it.
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	e.Use(s.begin)
	e.Use(s.model.cors) // the model API's CORS, preflights included; never /admin
	s.metrics.route(e)  // GET /metrics, before auth
	e.GET("/healthz", s.healthz)
	for _, m := range []Mounter{s.model, s.admin, UI{}} {
		m.Mount(&e.RouterGroup)
	}
	e.NoRoute(func(c *gin.Context) {
		adminNoStore(c)
		writeError(c, newError(http.StatusNotFound, "invalid_request_error", "unknown_url", "Invalid URL ("+c.Request.Method+" "+c.Request.URL.Path+")"))
	})
	e.NoMethod(func(c *gin.Context) {
		adminNoStore(c)
		writeError(c, newError(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "Method "+c.Request.Method+" is not allowed for "+c.Request.URL.Path))
	})
	s.engine = e
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := apiPath(r.URL.Path); p != r.URL.Path {
		r.URL.Path, r.URL.RawPath = p, ""
	}
	s.engine.ServeHTTP(w, r)
}

// apiPath maps the base URLs clients are configured with to xroute's
// routes, answered where they are asked (a redirect would turn a POST
// into a GET for some clients, and SDKs do not follow it): /openai/v1/...
// and /anthropic/v1/... (a provider's own paths under a gateway prefix)
// are /v1/..., and a trailing slash is dropped. Only API paths: the
// dashboard's /ui/ keeps its slash.
func apiPath(p string) string {
	for _, prefix := range [...]string{"/openai/v1", "/anthropic/v1"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok && (rest == "" || rest[0] == '/') {
			p = "/v1" + rest
			break
		}
	}
	if len(p) > 1 && p[len(p)-1] == '/' && (strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/admin/")) {
		p = strings.TrimRight(p, "/")
	}
	return p
}

func (s *Server) healthz(c *gin.Context) {
	if s.cfg.StoreHealth != nil {
		s.healthzStore(c)
		return
	}
	if s.cfg.Health != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Health(ctx); err != nil {
			s.log.Warn("health check failed", zap.Error(err))
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}
