package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// The response cache's hook in the pipeline (issue 20). serve calls
// cacheLookup once before routing: a hit is answered from the cache
// (rendered by the ingress's own encoder, so a stream replays in the
// caller's format) and billed as a hit; a miss that may be cached carries
// a cacheState on the request, and cacheDone (called by finish) stores
// the answer once it completed cleanly. Admission ran before either: a
// hit counts against RPM and needs a priced model like any request.

// CacheConfig turns on the response cache.
type CacheConfig struct {
	// Cache is the store (nil: no response cache).
	Cache *respcache.Cache
	// Policies are the public models that cache, by name (used when Live
	// is nil).
	Policies map[string]respcache.Policy
	// Live, when set, is the policy table with the admin API's runtime
	// policies over the config's (and serves /admin/v1/cache/models).
	Live *CachePolicies
	// PriceFraction is the part of the price a hit is billed (0: free).
	PriceFraction float64
	// CountTPM counts a hit's tokens against the key's TPM limit.
	CountTPM bool
	// Metrics are the cache's metrics (NewCacheMetrics), the same ones
	// given to respcache.New (nil: none).
	Metrics *CacheMetrics
}

// The values of the x-xroute-cache header.
const (
	cacheHit    = "hit"
	cacheMiss   = "miss"
	cacheBypass = "bypass"
)

const cacheHeader = "x-xroute-cache"

// cacheState is a request that missed and whose answer may be stored.
type cacheState struct {
	key    respcache.Key
	pol    respcache.Policy
	flight *respcache.Flight
	col    respcache.Collector
	resp   *providers.ChatResponse // the non-streamed answer, once committed
	vecs   [][]float32             // the embeddings, once committed
	clean  bool                    // the stream ended cleanly and was committed
}

// cacheLookup is the hook before routing: it reports whether the request
// was answered from the cache.
func (s *modelAPI) cacheLookup(c *gin.Context, a *admitted, req *providers.ChatRequest, ans answerer) bool {
	e := s.cacheBegin(c, a, req.Format.String(), req.Choices)
	if e == nil {
		return false
	}
	s.serveHit(c, a, req, ans, e)
	return true
}

// cacheBegin looks a request of ingress format up: it returns the entry
// of a hit (the caller answers it), or nil, having set the header and,
// for a miss that may be stored, the request's cacheState.
func (s *modelAPI) cacheBegin(c *gin.Context, a *admitted, format string, choices int) *respcache.Entry {
	info := infoOf(c)
	if s.cfg.Cache.Cache == nil {
		return nil
	}
	pol, ok := s.cachePolicy(info.model)
	if !ok {
		return nil
	}
	h := c.Writer.Header()
	pol, keyOn := narrowPolicy(pol, info.key)
	body := info.body
	if len(body) == 0 {
		body = info.received
	}
	noCache, noStore := cacheControl(c.GetHeader("Cache-Control"))
	if noStore || !keyOn || !cacheable(info, choices, pol, body) {
		h.Set(cacheHeader, cacheBypass)
		s.cacheMetrics.result(cacheBypass)
		return nil
	}
	scope := info.key.AccountID
	if pol.Scope == respcache.ScopeGlobal {
		scope = respcache.ScopeGlobal
	}
	k, err := s.cfg.Cache.Cache.Key(scope, info.model, format, body)
	if err != nil {
		h.Set(cacheHeader, cacheBypass)
		s.cacheMetrics.result(cacheBypass)
		return nil
	}
	st := &cacheState{key: k, pol: pol}
	if !noCache { // no-cache: refresh, the lookup is skipped
		e, f := s.cfg.Cache.Cache.Acquire(a.ctx, k)
		if e != nil && (e.Vectors != nil) == (format == embeddingsFormat) {
			h.Set(cacheHeader, cacheHit)
			s.cacheMetrics.result(cacheHit)
			s.noteHit(c, a, e)
			return e
		}
		st.flight = f
	}
	h.Set(cacheHeader, cacheMiss)
	s.cacheMetrics.result(cacheMiss)
	info.cache = st
	return nil
}

// embeddingsFormat is the cache's name of the embeddings ingress.
const embeddingsFormat = "embeddings"

// noteHit records on the request what a hit served: the cached answer's
// tokens and deployment, billed as a hit.
func (s *modelAPI) noteHit(c *gin.Context, a *admitted, e *respcache.Entry) {
	info := infoOf(c)
	info.cacheHit = true
	a.hitTokensFree = !s.cfg.Cache.CountTPM
	info.provider, info.upstream = e.Provider, e.Upstream
	info.deployment = hitDeployment(a.m, e)
	info.prompt, info.complete, info.usageSeen = e.Prompt, e.Output, true
	age := max(s.now().Sub(e.Stored), 0)
	c.Writer.Header().Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
}

// cacheControl reads the request's Cache-Control directives.
func cacheControl(v string) (noCache, noStore bool) {
	for _, d := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(d)) {
		case "no-cache":
			noCache = true
		case "no-store":
			noStore = true
		}
	}
	return noCache, noStore
}

// cacheable reports whether a request's answer may come from or go to
// the cache: one answer (n, best_of), deterministic unless the model opts
// in (temperature), no per-token data the neutral form does not keep
// (logprobs). A key's own policy is applied before (narrowPolicy).
func cacheable(info *requestInfo, choices int, pol respcache.Policy, body []byte) bool {
	if choices > 1 {
		return false
	}
	r := gjson.GetManyBytes(body, "n", "best_of", "temperature", "logprobs", "top_logprobs")
	if r[0].Int() > 1 || r[1].Int() > 1 {
		return false
	}
	if r[2].Exists() && r[2].Type != gjson.Null && r[2].Float() > 0 && !pol.Sampled {
		return false
	}
	if r[3].Exists() && r[3].Type != gjson.Null && r[3].Type != gjson.False {
		return false
	}
	return !r[4].Exists() || r[4].Int() == 0
}

// serveHit answers a request from a cached entry, streamed or not, and
// records it as a hit: its tokens as first billed, its cost the
// configured fraction of their price.
func (s *modelAPI) serveHit(c *gin.Context, a *admitted, req *providers.ChatRequest, ans answerer, e *respcache.Entry) {
	info := infoOf(c)
	id, created := providers.NewCompletionID(), s.now().Unix()
	if req.Stream {
		out := s.newStreamOut(c)
		defer out.close()
		s.relayStream(c, &replayStream{chunks: respcache.Replay(e, id, info.model, created)}, ans, out)
		return
	}
	cp := e.Completion
	cp.ID, cp.Model, cp.Created = id, info.model, created
	cp.Usage = providers.Usage{PromptTokens: e.Prompt, CompletionTokens: e.Output, TotalTokens: e.Prompt + e.Output}
	resp, err := cp.Response()
	if err != nil {
		writeError(c, newError(http.StatusInternalServerError, "server_error", "", "The cached answer could not be rendered."))
		return
	}
	body := ans.render(resp)
	setRouteHeaders(c.Writer.Header(), info)
	if !s.commitUsage(c, info) {
		writeError(c, errSpoolFull())
		return
	}
	if k, ok := ans.(keeper); ok {
		k.keep(c, info, body, resp)
	}
	s.setWriteDeadline(c)
	c.Data(http.StatusOK, "application/json", body)
}

// hitDeployment is the deployment a hit is priced at: the one that
// answered first when the model still has it, else the model's first.
func hitDeployment(m *router.Model, e *respcache.Entry) *router.Deployment {
	for _, d := range m.Deployments {
		if d.Provider == e.Provider && d.Model == e.Upstream {
			return d
		}
	}
	if len(m.Deployments) > 0 {
		return m.Deployments[0]
	}
	return nil
}

// replayStream is a cached answer as a providers.Stream.
type replayStream struct{ chunks []providers.Chunk }

func (r *replayStream) Recv() (providers.Chunk, error) {
	if len(r.chunks) == 0 {
		return providers.Chunk{}, io.EOF
	}
	ch := r.chunks[0]
	r.chunks = r.chunks[1:]
	return ch, nil
}

func (r *replayStream) Close() error { return nil }

// cacheDone is the hook after the answer: called by finish, it stores an
// answer that completed cleanly and ends the request's flight (identical
// requests waiting for it look again).
func (s *modelAPI) cacheDone(info *requestInfo) {
	st := info.cache
	if st == nil {
		return
	}
	defer st.flight.Done()
	var cp providers.Completion
	switch {
	case st.vecs != nil:
	case st.resp != nil && st.resp.Native:
		// A native Responses or Messages answer is read back into
		// neutral form.
		obj := gjson.ParseBytes(st.resp.Body)
		var ok bool
		switch {
		case obj.Get("object").Str == "response":
			cp, ok = respcache.ResponsesCompletion(obj)
		case obj.Get("type").Str == "message":
			cp, ok = respcache.MessagesCompletion(obj)
		}
		if !ok {
			return
		}
	case st.resp != nil && !st.resp.Native:
		if st.resp.Completion != nil {
			cp = *st.resp.Completion
		} else {
			d, err := providers.DecodeChatCompletion(st.resp.Body)
			if err != nil {
				return
			}
			cp = *d
		}
	case st.clean:
		var ok bool
		if cp, ok = st.col.Completion(); !ok {
			return
		}
	default:
		return // failed or cut: not kept
	}
	if !info.usageSeen || info.status >= 400 {
		return
	}
	cp.ID, cp.Usage = "", providers.Usage{}
	e := &respcache.Entry{Completion: cp, Vectors: st.vecs, Prompt: info.prompt, Output: info.complete,
		Provider: info.provider, Upstream: info.upstream, Stored: s.now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Cache.Cache.Put(ctx, st.key, e, st.pol.TTL, st.pol.MaxEntryBytes); err != nil {
		s.log.Debug("answer not cached", zapReq(info), zap.Error(err))
	}
}

// cacheMetrics counts the cache's outcomes; safe on nil (metrics off).
type cacheMetrics struct {
	results *prometheus.CounterVec
	hit     prometheus.Counter
	miss    prometheus.Counter
	bypass  prometheus.Counter
	evicted prometheus.Counter
	redis   prometheus.Counter
	lookup  prometheus.Histogram
}

// newCacheMetrics registers the response cache's counters on reg (nil
// reg: none, and a nil *cacheMetrics counts nothing).
func newCacheMetrics(reg *prometheus.Registry) (*cacheMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &cacheMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xroute_cache_requests_total",
			Help: "Requests to models with the response cache on, by result (hit, miss, bypass)."}, []string{"result"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "xroute_cache_evictions_total",
			Help: "Cached answers evicted from this replica's memory (size bound or TTL)."}),
		redis: prometheus.NewCounter(prometheus.CounterOpts{Name: "xroute_cache_redis_errors_total",
			Help: "Response cache calls to Redis that failed (the cache then serves from memory only)."}),
		lookup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "xroute_cache_lookup_seconds",
			Help: "Time to look a request up in the response cache (memory, then Redis).", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
	}
	for _, c := range []prometheus.Collector{m.results, m.evicted, m.redis, m.lookup} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.hit, m.miss, m.bypass = m.results.WithLabelValues(cacheHit), m.results.WithLabelValues(cacheMiss), m.results.WithLabelValues(cacheBypass)
	return m, nil
}

func (m *cacheMetrics) result(r string) {
	if m == nil {
		return
	}
	switch r {
	case cacheHit:
		m.hit.Inc()
	case cacheMiss:
		m.miss.Inc()
	default:
		m.bypass.Inc()
	}
}

// CacheMetrics are the response cache's metrics, built before the cache
// (it reports evictions, Redis errors and lookups through them) and handed
// to the server in CacheConfig, which counts hits, misses and bypasses.
type CacheMetrics struct{ m *cacheMetrics }

// NewCacheMetrics registers the response cache's counters and histogram on
// reg; with a nil reg (metrics off) it returns a CacheMetrics that counts
// nothing.
func NewCacheMetrics(reg *prometheus.Registry) (*CacheMetrics, error) {
	m, err := newCacheMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &CacheMetrics{m: m}, nil
}

// RegisterCacheBytes registers xroute_cache_bytes, the bytes of cached
// answers in this replica's memory, read from bytes at scrape time (nil
// reg: nothing). It is separate from NewCacheMetrics because the cache
// that knows its size is built with those metrics.
func RegisterCacheBytes(reg *prometheus.Registry, bytes func() int64) error {
	if reg == nil {
		return nil
	}
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xroute_cache_bytes",
		Help: "Bytes of cached answers in this replica's memory."}, func() float64 { return float64(bytes()) }))
}

// Evicted implements respcache.Metrics.
func (cm *CacheMetrics) Evicted() {
	if cm != nil && cm.m != nil {
		cm.m.evicted.Inc()
	}
}

// RedisError implements respcache.Metrics.
func (cm *CacheMetrics) RedisError() {
	if cm != nil && cm.m != nil {
		cm.m.redis.Inc()
	}
}

// Lookup implements respcache.Metrics.
func (cm *CacheMetrics) Lookup(d time.Duration) {
	if cm != nil && cm.m != nil {
		cm.m.lookup.Observe(d.Seconds())
	}
}

// routeCache mounts the purge route on the admin group (always: without
// a cache it answers 400 cache_off, so the admin API is the same on
// every configuration).
func (s *adminAPI) routeCache(g *gin.RouterGroup) {
	g.POST("/cache/purge", s.adminPurgeCache)
	s.routeCacheModels(g)
}

// adminPurgeCache is POST /admin/v1/cache/purge: {"model": ...} or
// {"account_id": ...} (or both), or {"all": true}. This replica's memory
// and the shared Redis layer are purged, and the purge is announced to
// the other replicas' memory (respcache.Config.Announce).
func (s *adminAPI) adminPurgeCache(c *gin.Context) {
	var in struct {
		Model     string `json:"model"`
		AccountID string `json:"account_id"`
		All       bool   `json:"all"`
	}
	if err := c.ShouldBindJSON(&in); err != nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", "The body must be a JSON object: model, account_id, or all."))
		return
	}
	if s.cfg.Cache.Cache == nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "cache_off",
			"No model has the response cache on: there is nothing to purge."))
		return
	}
	if in.All == (in.Model != "" || in.AccountID != "") {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "purge_target",
			"Name what to purge: model, account_id (or both), or all: true (alone)."))
		return
	}
	n, err := s.cfg.Cache.Cache.Purge(c.Request.Context(), respcache.Target{Model: in.Model, Scope: in.AccountID})
	if err != nil {
		writeError(c, newError(http.StatusServiceUnavailable, "server_error", "cache_purge_failed",
			"This replica's cache was purged; the shared (Redis) layer could not be: "+err.Error()))
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "cache.purge", "model": in.Model, "account_id": in.AccountID, "all": in.All, "shared_deleted": n})
}
