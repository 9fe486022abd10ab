// Package httpapi is xroute's HTTP layer: the OpenAI-compatible /v1 routes,
// health, and the middleware every request passes (request id, access log,
// panic recovery, Bearer auth). The request path reads top to bottom in
// chat.go.
package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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

// Config holds the server's dependencies and limits.
type Config struct {
	Keys           KeyVerifier
	Router         Router
	Usage          UsageRecorder
	Log            *zap.Logger
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	// Health reports whether dependencies (the store) answer.
	Health func(ctx context.Context) error
	Now    func() time.Time
	// Admin serves /admin/v1 (nil: no admin API).
	Admin KeyAdmin
	// AdminRoutes mount further admin routes (audit log, provider keys,
	// vault) on the authenticated /admin/v1 group.
	AdminRoutes []Mounter
	// RotationOverlap is the default overlap of a rotation.
	RotationOverlap time.Duration
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
	// Limits are per-key rate and concurrency limits (nil: none).
	Limits *Limits
	// Meter prices requests against credits (nil: nothing is charged).
	Meter Meter
	// Credits serves the credit and budget admin routes and GET /v1/credits.
	Credits CreditsAdmin
	// CallerRoutes mount further caller routes on the authenticated /v1
	// group (a caller's own usage and credits).
	CallerRoutes []Mounter
	// AuditLog and ProviderKeys serve their admin routes (nil: none).
	AuditLog     AuditLog
	ProviderKeys ProviderKeyAdmin
	// Metrics turns on Prometheus metrics and GET /metrics (zero: off).
	Metrics MetricsConfig
	// Cache is the response cache (zero: off).
	Cache CacheConfig
	// StoreHealth gates new /v1 requests and answers /healthz while the
	// database is down (nil: Health is pinged on /healthz, no gate).
	StoreHealth StoreHealth
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
	// BodyReadTimeout bounds reading a request body (0: unbounded);
	// WriteTimeout bounds each write to a caller (0: unbounded).
	BodyReadTimeout time.Duration
	WriteTimeout    time.Duration
	// RequestLog serves the request log and the capture settings on the
	// admin API (nil: neither); Captures writes the captures of accounts
	// that have capture on (nil: nothing is captured). AuditWriter records
	// capture setting changes in the audit log.
	RequestLog  RequestLogStore
	Captures    CaptureSink
	AuditWriter AuditWriter
	// Tracer makes every request a trace (nil: tracing off).
	Tracer *telemetry.Tracer
	// Exchange serves POST /v1/auth/token (nil: no token exchange).
	Exchange TokenExchanger
	// Children mints ephemeral child keys (nil: no POST /v1/keys/ephemeral);
	// CORS keeps each account's allowed browser origins (nil: no CORS).
	Children ChildKeys
	CORS     CORSStore
}

// Server is the HTTP handler.
type Server struct {
	keys    KeyVerifier
	router  Router
	usage   UsageRecorder
	log     *zap.Logger
	maxBody int64
	timeout time.Duration
	health  func(ctx context.Context) error
	now     func() time.Time
	engine  *gin.Engine

	admin           KeyAdmin
	adminExt        []Mounter
	rotationOverlap time.Duration
	throttle        AuthThrottle
	guessing        func(netip.Addr)
	observe         func(Observation)
	limits          *Limits
	audit           AuditLog
	pkeys           ProviderKeyAdmin
	credits         Meter
	creditsAdmin    CreditsAdmin
	metrics         *metrics
	storeHealth     StoreHealth

	responses         ResponseStore
	responseRetention time.Duration
	tokens            TokenCounter
	keepAlive         time.Duration
	bodyTimeout       time.Duration
	writeTimeout      time.Duration

	reqlog    RequestLogStore
	captures  CaptureSink
	captureOn *captureSettings
	auditW    AuditWriter
	tel       *telemetry.Tracer
	exchange  TokenExchanger

	children ChildKeys
	corsOn   *corsOrigins

	cache        CacheConfig
	cacheMetrics *cacheMetrics
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	s := &Server{
		keys:    cfg.Keys,
		router:  cfg.Router,
		usage:   cfg.Usage,
		log:     cfg.Log,
		maxBody: cfg.MaxBodyBytes,
		timeout: cfg.RequestTimeout,
		health:  cfg.Health,
		now:     cfg.Now,

		admin:           cfg.Admin,
		adminExt:        cfg.AdminRoutes,
		rotationOverlap: cfg.RotationOverlap,
		throttle:        cfg.Throttle,
		guessing:        cfg.Guessing,
		observe:         cfg.Observe,
		limits:          cfg.Limits,
		audit:           cfg.AuditLog,
		pkeys:           cfg.ProviderKeys,
		credits:         cfg.Meter,
		creditsAdmin:    cfg.Credits,
		storeHealth:     cfg.StoreHealth,

		responses:         cfg.Responses,
		responseRetention: cfg.ResponseRetention,
		tokens:            cfg.Tokens,
		keepAlive:         cfg.StreamKeepAlive,
		bodyTimeout:       cfg.BodyReadTimeout,
		writeTimeout:      cfg.WriteTimeout,
		tel:               cfg.Tracer,
		exchange:          cfg.Exchange,
		cache:             cfg.Cache,
	}
	s.reqlog, s.auditW = cfg.RequestLog, cfg.AuditWriter
	s.children = cfg.Children
	if cfg.CORS != nil {
		s.corsOn = &corsOrigins{src: cfg.CORS, log: cfg.Log}
	}
	if cfg.Captures != nil && cfg.RequestLog != nil {
		s.captures = cfg.Captures
		s.captureOn = &captureSettings{src: cfg.RequestLog, log: cfg.Log}
	}
	if s.responseRetention <= 0 {
		s.responseRetention = 30 * 24 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done()/c.Err() follow the request context
	// Only listed proxies may set the client IP (IP allowlists and auth
	// throttling depend on it); by default nobody can spoof it.
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	e.Use(s.begin)
	e.Use(s.cors) // the model API's CORS, preflights included; never /admin
	m, err := newMetrics(cfg.Metrics, cfg.Router)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if cfg.Cache.Cache != nil {
		if s.cacheMetrics, err = newCacheMetrics(cfg.Metrics.Registry, cfg.Cache.Cache.Bytes); err != nil {
			return nil, err
		}
		if cfg.Cache.Metrics != nil {
			cfg.Cache.Metrics.m = s.cacheMetrics
		}
	}
	m.route(e) // GET /metrics, before auth
	e.GET("/healthz", s.healthz)
	s.routeToken(e) // before the /v1 group: the subject token is the credential
	v1 := e.Group("/v1", s.storeGate, s.traced(telemetry.SpanAuth, s.authenticate), s.callerOnly, s.corsAccount)
	for _, m := range s.ingresses() {
		m.Mount(v1)
	}
	v1.GET("/models", s.scope(keys.EndpointModels), s.listModels)
	v1.GET("/models/:id", s.scope(keys.EndpointModels), s.getModel)
	if s.creditsAdmin != nil {
		v1.GET("/credits", s.scope(keys.EndpointUsage), s.callerCredits)
	}
	s.routeEphemeral(v1)
	for _, r := range cfg.CallerRoutes {
		r.Mount(v1)
	}
	s.routeAdmin(e)
	UI{}.Mount(&e.RouterGroup)
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

// ingresses are the model APIs callers speak, each mounted on the
// authenticated /v1 group. A new ingress is one new file (its handler
// and route) plus one line here.
func (s *Server) ingresses() []Mounter {
	return []Mounter{
		MountFunc(func(g *gin.RouterGroup) { g.POST("/chat/completions", s.scope(keys.EndpointChat), s.chat) }),
		MountFunc(func(g *gin.RouterGroup) { g.POST("/embeddings", s.scope(keys.EndpointEmbeddings), s.embeddings) }),
		MountFunc(func(g *gin.RouterGroup) { g.POST("/completions", s.scope(keys.EndpointCompletions), s.completion) }),
		MountFunc(s.routeResponses), // /responses (responses.go)
		MountFunc(s.routeMessages),  // /messages (messages.go)
	}
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
	if s.storeHealth != nil {
		s.healthzStore(c)
		return
	}
	if s.health != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := s.health(ctx); err != nil {
			s.log.Warn("health check failed", zap.Error(err))
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func toModelObject(m *router.Model) modelObject {
	return modelObject{ID: m.Name, Object: "model", Created: m.Created, OwnedBy: m.OwnedBy}
}

// listModels lists the models the caller's key may use, in Anthropic's
// shape for an Anthropic client.
func (s *Server) listModels(c *gin.Context) {
	if infoOf(c).anthropic {
		s.listAnthropicModels(c)
		return
	}
	k := infoOf(c).key
	data := []modelObject{}
	for _, m := range s.router.Models() {
		if k.AllowsModel(m.Name) {
			data = append(data, toModelObject(m))
		}
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

func (s *Server) getModel(c *gin.Context) {
	id := c.Param("id")
	m, ok := s.router.Lookup(id)
	if !ok || !infoOf(c).key.AllowsModel(id) {
		writeError(c, modelNotFound(id))
		return
	}
	if infoOf(c).anthropic {
		c.JSON(http.StatusOK, toAnthropicModel(m))
		return
	}
	c.JSON(http.StatusOK, toModelObject(m))
}

// maxModelName bounds a model name. Names are stored in every usage
// record and echoed in errors; real ones are well under 100 bytes.
const maxModelName = 256

// checkModelName refuses a model name no deployment could have: too long,
// not UTF-8, or with control characters (PostgreSQL refuses a NUL in
// text, and such a record must never reach the usage writer).
func checkModelName(model string) *apiError {
	bad := len(model) > maxModelName || !utf8.ValidString(model)
	for _, r := range model {
		if bad || unicode.IsControl(r) {
			bad = true
			break
		}
	}
	if bad {
		return newError(http.StatusBadRequest, "invalid_request_error", "invalid_model",
			"The model name must be at most "+strconv.Itoa(maxModelName)+" bytes of UTF-8 text without control characters.").withParam("model")
	}
	return nil
}

func modelNotFound(id string) *apiError {
	return newError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"The model `"+id+"` does not exist or you do not have access to it.").withParam("model")
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
