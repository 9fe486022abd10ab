package httpapi

import (
	"crypto/subtle"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xroute/xroute/router"
)

// MetricsConfig turns on the Prometheus metrics and GET /metrics.
//
// No label ever holds key material, a key or account id, or text a caller
// chose: the model label is a configured public model name or "other",
// the provider label a configured provider, the endpoint label a route
// template, and error codes are counted from a fixed list.
type MetricsConfig struct {
	// Registry receives the gateway's metrics and is what /metrics serves
	// (nil: no metrics and no /metrics route).
	Registry *prometheus.Registry
	// Deployments is read at scrape time for the breaker states (nil:
	// left out).
	Deployments func() []router.DeploymentStatus
	// UsageQueue is read at scrape time: usage records queued, not yet
	// written (nil: left out).
	UsageQueue func() int
	// Token, when set, is the bearer token a scrape must present.
	Token string
	// Elsewhere leaves /metrics off the gateway's own routes: the caller
	// serves Server.MetricsHandler on a listener of its own.
	Elsewhere bool
}

// otherModel labels every model that is not a configured public model:
// unknown names and provider/model addresses, both chosen by callers.
const otherModel = "other"

// rejectKind is why admission refused a request.
type rejectKind int

const (
	rejectRequests rejectKind = iota
	rejectTokens
	rejectConcurrency
	rejectQuota
	rejectBudget
	numRejectKinds
)

var rejectNames = [numRejectKinds]string{"requests", "tokens", "concurrency", "insufficient_quota", "budget"}

// authCodes are the error codes counted as authentication or
// authorization failures (the codes of authenticate, callerOnly, scope,
// requireAdmin and the model allowlist).
var authCodes = []string{
	"missing_api_key", "invalid_api_key", "invalid_authorization_header", "key_in_url",
	"api_key_revoked", "api_key_expired", "api_key_suspended", "too_many_auth_failures",
	"auth_unavailable", "ip_not_allowed", "caller_key_required", "admin_key_required",
	"endpoint_not_allowed", "model_not_allowed",
}

// breakerStates are the values of the breaker state label.
var breakerStates = [...]string{"closed", "half-open", "open"}

// metrics is the server's instrumentation. Every method is safe on a nil
// *metrics (metrics off).
//
// Per request, the hot path costs a few lock-free map lookups to find
// the pre-resolved children and a few atomic adds: no allocation and no
// lock once a label set has been seen.
type metrics struct {
	handler   http.Handler
	elsewhere bool // served on a listener of its own, not on the gateway's routes
	// models maps each configured public model name to itself, so labels
	// never hold a string taken from a request.
	models map[string]string

	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	ttft        *prometheus.HistogramVec
	tokens      *prometheus.CounterVec
	cost        *prometheus.CounterVec
	cacheTokens *prometheus.CounterVec
	streams     prometheus.Gauge
	rejections  [numRejectKinds]prometheus.Counter
	authFailure map[string]prometheus.Counter

	reqs   lazy[requestKey, prometheus.Counter]
	pairs  lazy[pairKey, *pairSeries]
	caches lazy[pairKey, *cacheSeries] // by model and deployment
}

// cacheSeries are the prompt-cache counters of one model and deployment.
type cacheSeries struct{ read, write prometheus.Counter }

type requestKey struct {
	endpoint, model, provider string
	status                    int
}

type pairKey struct{ model, provider string }

// pairSeries are the children of one model and provider.
type pairSeries struct {
	latency, ttft            prometheus.Observer
	prompt, completion, cost prometheus.Counter
}

// newMetrics registers the gateway's metrics on cfg.Registry; nil when
// metrics are off. The configured models' series are created up front, at
// zero.
func newMetrics(cfg MetricsConfig, rt Router) (*metrics, error) {
	reg := cfg.Registry
	if reg == nil {
		return nil, nil
	}
	mp := []string{"model", "provider"}
	m := &metrics{
		models: map[string]string{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xroute_requests_total",
			Help: "Requests answered, by route, public model (\"other\" when not configured), provider that served and HTTP status.",
		}, []string{"endpoint", "model", "provider", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xroute_request_duration_seconds",
			Help:    "Duration of requests routed to a provider, streams to their last byte.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120, 300},
		}, mp),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xroute_time_to_first_token_seconds",
			Help:    "Time from the request's arrival to the first streamed chunk.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2, 4, 8, 15, 30},
		}, mp),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xroute_tokens_total",
			Help: "Tokens used, by type (prompt or completion); estimated when the provider reported none.",
		}, []string{"model", "provider", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xroute_cost_nano_usd_total",
			Help: "Cost charged to callers, in nano-USD (lost hedges included, under the provider that won).",
		}, mp),
		cacheTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xroute_prompt_cache_tokens_total",
			Help: "Prompt tokens the provider read from (type read) or wrote to (type write) its prompt cache, by public model and the deployment (provider/model) that served; part of xroute_tokens_total's prompt tokens.",
		}, []string{"model", "deployment", "type"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xroute_streams_in_flight",
			Help: "Streams being relayed to callers.",
		}),
		authFailure: make(map[string]prometheus.Counter, len(authCodes)),
	}
	rejections := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xroute_rate_limit_rejections_total",
		Help: "Requests refused before routing, by limit (requests, tokens, concurrency, insufficient_quota, budget).",
	}, []string{"kind"})
	for k, name := range rejectNames {
		m.rejections[k] = rejections.WithLabelValues(name)
	}
	auth := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xroute_auth_failures_total",
		Help: "Requests refused by authentication or authorization, by error code.",
	}, []string{"code"})
	for _, code := range authCodes {
		m.authFailure[code] = auth.WithLabelValues(code)
	}
	cs := []prometheus.Collector{m.requests, m.latency, m.ttft, m.tokens, m.cost, m.cacheTokens, m.streams, rejections, auth}
	if cfg.UsageQueue != nil {
		q := cfg.UsageQueue
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xroute_usage_queue_depth",
			Help: "Usage records queued for the store, not yet written.",
		}, func() float64 { return float64(q()) }))
	}
	if cfg.Deployments != nil {
		cs = append(cs, &breakerCollector{list: cfg.Deployments, models: m.models, desc: prometheus.NewDesc(
			"xroute_deployment_breaker_state",
			"Circuit breaker state of each deployment: 1 for its current state, 0 for the others.",
			[]string{"deployment", "provider", "state"}, nil)})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}

	m.reqs.init(func(k requestKey) prometheus.Counter {
		return m.requests.WithLabelValues(k.endpoint, k.model, k.provider, strconv.Itoa(k.status))
	})
	m.pairs.init(func(k pairKey) *pairSeries {
		return &pairSeries{
			latency:    m.latency.WithLabelValues(k.model, k.provider),
			ttft:       m.ttft.WithLabelValues(k.model, k.provider),
			prompt:     m.tokens.WithLabelValues(k.model, k.provider, "prompt"),
			completion: m.tokens.WithLabelValues(k.model, k.provider, "completion"),
			cost:       m.cost.WithLabelValues(k.model, k.provider),
		}
	})
	m.caches.init(func(k pairKey) *cacheSeries {
		// provider holds the deployment's name here
		return &cacheSeries{read: m.cacheTokens.WithLabelValues(k.model, k.provider, "read"), write: m.cacheTokens.WithLabelValues(k.model, k.provider, "write")}
	})
	for _, md := range rt.Models() {
		m.models[md.Name] = md.Name
		for _, d := range md.Deployments {
			m.pairs.get(pairKey{md.Name, d.Provider})
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// Possibly unauthenticated: bound what concurrent scrapes can cost.
		MaxRequestsInFlight: 2,
	})
	if cfg.Token != "" {
		m.handler = bearerOnly(cfg.Token, m.handler)
	}
	m.elsewhere = cfg.Elsewhere
	return m, nil
}

// bearerOnly answers 401 to a request without "Authorization: Bearer
// token" (compared in constant time).
func bearerOnly(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics need the bearer token of server.metrics_token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// route mounts GET /metrics, unless it is served on a listener of its own.
func (m *metrics) route(e *gin.Engine) {
	if m != nil && !m.elsewhere {
		e.GET("/metrics", gin.WrapH(m.handler))
	}
}

// MetricsHandler serves the metrics (with the token check when one is
// set), for a listener of its own; nil when metrics are off.
func (s *Server) MetricsHandler() http.Handler {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.handler
}

// observeMetrics counts a finished request; begin calls it once per
// request, after the answer is written.
func (s *base) observeMetrics(c *gin.Context, info *requestInfo) {
	m := s.metrics
	if m == nil {
		return
	}
	status := info.status
	if status == 0 {
		status = c.Writer.Status()
	}
	model := ""
	if info.model != "" {
		model = otherModel
		if name, ok := m.models[info.model]; ok {
			model = name
		}
	}
	endpoint := c.FullPath()
	if endpoint == "" {
		endpoint = "unmatched"
	}
	m.reqs.get(requestKey{endpoint, model, info.provider, status}).Inc()

	if info.provider == "" {
		// Refused before routing: count why, when it is a refusal we count.
		if a, ok := m.authFailure[info.errCode]; ok {
			a.Inc()
		}
		if status == http.StatusTooManyRequests {
			switch info.errCode {
			case "insufficient_quota":
				m.rejections[rejectQuota].Inc()
			case "budget_exceeded":
				m.rejections[rejectBudget].Inc()
			}
		}
		return
	}
	p := m.pairs.get(pairKey{model, info.provider})
	p.latency.Observe(s.now().Sub(info.start).Seconds())
	if info.ttft > 0 {
		p.ttft.Observe(info.ttft.Seconds())
	}
	if info.usageSeen {
		// Counters only grow: a count that is not positive (never stored:
		// the upstream's usage is checked first) must not panic here.
		p.prompt.Add(float64(max(info.prompt, 0)))
		p.completion.Add(float64(max(info.complete, 0)))
		if (info.cached > 0 || info.cacheWrite > 0) && !info.cacheHit && info.deployment != nil {
			// a configured deployment's name: no caller text in the label
			c := m.caches.get(pairKey{model, info.deployment.Name()})
			c.read.Add(float64(max(info.cached, 0)))
			c.write.Add(float64(max(info.cacheWrite, 0)))
		}
	}
	if info.cost > 0 {
		p.cost.Add(float64(info.cost))
	}
}

// rejected counts a request refused by a rate or concurrency limit.
func (m *metrics) rejected(k rejectKind) {
	if m != nil {
		m.rejections[k].Inc()
	}
}

func (m *metrics) streamOpened() {
	if m != nil {
		m.streams.Inc()
	}
}

func (m *metrics) streamClosed() {
	if m != nil {
		m.streams.Dec()
	}
}

// breakerCollector reads the breaker states from the router's snapshot at
// scrape time, so the request path pays nothing for them. Only
// deployments of configured models, or whose model the catalog knows, are
// listed: a provider/model address builds a deployment named by the
// caller, which must not become a label.
type breakerCollector struct {
	list   func() []router.DeploymentStatus
	models map[string]string // configured public models
	desc   *prometheus.Desc
}

func (b *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range b.list() {
		// A deployment of a configured model, or one the catalog prices:
		// not the names callers make up (on a free provider they have a
		// price too, of zero), which would grow the series without bound.
		if !(d.HasPrice && (d.Input != 0 || d.Output != 0)) && !b.servesConfigured(d.Models) {
			continue
		}
		for _, st := range breakerStates {
			v := 0.0
			if d.Breaker == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, v, d.Name, d.Provider, st)
		}
	}
}

func (b *breakerCollector) servesConfigured(models []string) bool {
	for _, name := range models {
		if _, ok := b.models[name]; ok {
			return true
		}
	}
	return false
}

// lazy holds the children of a metric by label set, created on first
// use. A read is a lock-free map lookup; a new label set copies the map,
// which happens a bounded number of times since every label is bounded.
type lazy[K comparable, V any] struct {
	m      atomic.Pointer[map[K]V]
	mu     sync.Mutex
	create func(K) V
}

func (l *lazy[K, V]) init(newV func(K) V) {
	l.create = newV
	l.m.Store(&map[K]V{})
}

func (l *lazy[K, V]) get(k K) V {
	if v, ok := (*l.m.Load())[k]; ok {
		return v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.m.Load()
	if v, ok := old[k]; ok {
		return v
	}
	v := l.create(k)
	next := make(map[K]V, len(old)+1)
	maps.Copy(next, old)
	next[k] = v
	l.m.Store(&next)
	return v
}
