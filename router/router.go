// Package router picks the deployments that serve a public model name and
// runs the failover loop: candidates in order, a circuit breaker per
// deployment, retryable failures moving on to the next candidate, streams
// failing over only before their first chunk reaches the caller.
//
// The order comes from a Strategy (priority, cost, latency, balanced; one
// file each, registered by name), chosen by the request (provider.sort),
// else the caller's key (Caller), else the model (routing.models), else
// routing.default_strategy. A request may also narrow and reorder the
// deployments and name fallback models, in OpenRouter's shape (see
// Preferences); those fields never reach an upstream.
//
// Health is per deployment: a gobreaker breaker (consecutive failures or a
// failure ratio), a cooldown after a 429, moving averages of latency, time
// to first token and error rate, and the requests in flight (health.go).
// Hedging (failover.go) sends a slow request to a second deployment too.
package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// Deployment is one provider serving one upstream model.
type Deployment struct {
	Provider string
	Model    string
	// Info is the catalog entry (prices, limits, capabilities), when known.
	Info *catalog.Model
	name string // provider/model
	// quirks rewrite the body for this provider/model (dropped params...).
	quirks  catalog.Quirks
	adapter providers.Provider // built from the config's key (or keyless)
	pool    *pool              // the provider's vault keys, shared by its deployments
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// From routing.deployments.
	weight   int
	priority *int
	tags     []string
	health   health
	// firstByte and idle bound a stream's silence: before its first
	// chunk and between chunks (router's, or routing.deployments').
	firstByte, idle time.Duration
}

// Credential is one provider key, as an adapter built with it.
type Credential struct {
	ID      string
	Weight  int
	Adapter providers.Provider
}

// pool holds a provider's credentials; readers take a snapshot, writers
// hold mu and replace it.
type pool struct {
	creds atomic.Pointer[[]Credential]
	mu    sync.Mutex
	gen   uint64 // bumped by each replacement from the store (SetCredentials)
}

// set replaces the credentials (a reload from the store).
func (p *pool) set(cs []Credential) {
	p.mu.Lock()
	p.creds.Store(&cs)
	p.gen++
	p.mu.Unlock()
}

func (p *pool) list() []Credential {
	if cs := p.creds.Load(); cs != nil {
		return *cs
	}
	return nil
}

// get finds a credential, with the pool's generation.
func (p *pool) get(id string) (Credential, uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.list() {
		if c.ID == id {
			return c, p.gen, true
		}
	}
	return Credential{}, p.gen, false
}

// remove takes id out while the pool is still generation gen, unless it
// is the last credential; it reports whether it did.
func (p *pool) remove(id string, gen uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.list()
	if p.gen != gen || len(old) < 2 {
		return false
	}
	next := make([]Credential, 0, len(old))
	for _, c := range old {
		if c.ID != id {
			next = append(next, c)
		}
	}
	if len(next) == len(old) {
		return false
	}
	p.creds.Store(&next)
	return true
}

// removeUnlessLast takes id out for good when another credential stays;
// it reports whether id is out (or was already, with others left).
func (p *pool) removeUnlessLast(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.list()
	next := make([]Credential, 0, len(old))
	for _, c := range old {
		if c.ID != id {
			next = append(next, c)
		}
	}
	if len(next) == 0 {
		return false
	}
	if len(next) != len(old) {
		p.creds.Store(&next)
	}
	return true
}

// add puts c back, unless the pool was replaced since generation gen
// (the store's word wins) or holds it already.
func (p *pool) add(c Credential, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.list()
	if p.gen != gen {
		return
	}
	for _, o := range old {
		if o.ID == c.ID {
			return
		}
	}
	next := append(slices.Clone(old), c)
	p.creds.Store(&next)
}

// pick chooses a credential by weight, leaving out those in avoid (keys
// the upstream refused during this request); ok is false when none is
// left.
func (p *pool) pick(avoid []string) (Credential, bool) {
	cs := p.creds.Load()
	if cs == nil || len(*cs) == 0 {
		return Credential{}, false
	}
	total := 0
	for _, c := range *cs {
		if !slices.Contains(avoid, c.ID) {
			total += c.Weight
		}
	}
	if total == 0 {
		return Credential{}, false
	}
	n := rand.IntN(total)
	for _, c := range *cs {
		if slices.Contains(avoid, c.ID) {
			continue
		}
		if n < c.Weight {
			return c, true
		}
		n -= c.Weight
	}
	return Credential{}, false
}

// hasOther reports whether the pool holds a key not in avoid.
func (p *pool) hasOther(avoid []string) bool {
	_, ok := p.pick(avoid)
	return ok
}

// adapterFor returns the adapter for one attempt: a pool key not in avoid
// when the provider has any (prefer, a session's pinned key, when it is
// still in the pool), else the config's.
func (d *Deployment) adapterFor(avoid []string, prefer string) (providers.Provider, string) {
	if prefer != "" && !slices.Contains(avoid, prefer) {
		for _, c := range d.pool.list() {
			if c.ID == prefer {
				return c.Adapter, c.ID
			}
		}
	}
	if c, ok := d.pool.pick(avoid); ok {
		return c.Adapter, c.ID
	}
	return d.adapter, ""
}

// Adapter is the adapter one call to d uses: a pool key's when the
// provider has any, else the config's.
func (d *Deployment) Adapter() providers.Provider {
	a, _ := d.adapterFor(nil, "")
	return a
}

// Speaks reports whether d's upstream serves format f natively.
func (d *Deployment) Speaks(f providers.Format) bool { return providers.Speaks(d.adapter, f, d.Model) }

// Name is "provider/model", unique in a router.
func (d *Deployment) Name() string { return d.name }

// BreakerState is "closed", "half-open" or "open".
func (d *Deployment) BreakerState() string { return d.breaker.State().String() }

// Model is a public model name and the deployments that serve it.
type Model struct {
	Name        string
	OwnedBy     string
	Created     int64
	Deployments []*Deployment
	// From routing.models (or the defaults).
	strategy     Strategy
	strategyName string
	hedge        bool
	maxAttempts  int
	// affinity keeps a session where its prompt cache is warm;
	// breakpoints marks Anthropic requests that mark none (both
	// routing.models[], default on).
	affinity, breakpoints bool
}

// CapOutput caps a requested output length at the most any of the model's
// deployments can write (0, or a model whose limits are unknown: as is):
// what a translated request can really be answered with.
func (m *Model) CapOutput(maxTokens int) int {
	most := 0
	for _, d := range m.Deployments {
		if d.Info == nil || d.Info.MaxOutput <= 0 {
			return maxTokens
		}
		most = max(most, d.Info.MaxOutput)
	}
	if maxTokens <= 0 || most == 0 {
		return maxTokens
	}
	return min(maxTokens, most)
}

// Hedged reports whether a slow request to this model may be sent to a
// second deployment too, so that two attempts can complete and be paid.
func (m *Model) Hedged() bool { return m.hedge }

// Router holds the model table. It is safe for concurrent use.
type Router struct {
	models      map[string]*Model
	names       []string
	maxAttempts int
	log         *zap.Logger
	now         func() time.Time
	pools       map[string]*pool // by provider
	adapters    map[string]providers.Provider
	catalog     CatalogLookup
	rc          config.Router
	rt          config.Routing
	strategies  map[string]Strategy
	registry    Strategies // WithStrategies; BuiltinStrategies by default
	plans       sync.Pool  // of *plan
	mu          sync.Mutex
	shared      map[string]*Deployment // by provider/model, breakers included
	dynamic     map[string]*Model      // provider/model names built on demand
	// dynamicDeployments counts the shared deployments built for
	// caller-chosen names, capped at maxDynamic.
	dynamicDeployments int
	// onRejected is told when a pool key was refused upstream by enough
	// requests and callers, and by its probe, after it has left the pool
	// for good (disable it in the store, audit it with reason).
	onRejected func(provider, credentialID, reason string)
	guard      *keyGuard
	probes     sync.WaitGroup
	probeCtx   context.Context
	stopProbes context.CancelFunc
	// redact takes secrets out of upstream text (nil: shapes are not
	// looked for, invalid UTF-8 is still replaced).
	redact Redactor
	// tracer makes attempts spans (nil: tracing off).
	tracer trace.Tracer
	// aff holds the session pins (affinity.go); affRedis shares them.
	aff      *affinity
	affRedis redis.UniversalClient
	affWait  time.Duration
}

// Redactor takes secrets out of text an upstream wrote (keys.Redactor).
type Redactor interface {
	Redact(s string) string
	RedactBytes(b []byte) []byte
}

// WithRedactor makes every upstream failure leave the router with its
// text redacted (the caller, the logs and the audit see only that), and
// every upstream error event relayed as it came too.
func WithRedactor(rd Redactor) Option { return func(r *Router) { r.redact = rd } }

// Option tunes New.
type Option func(*Router)

// WithRouting sets the routing settings (strategies, deployment weights,
// priorities and tags, hedging, breaker ratio, budget).
func WithRouting(rt config.Routing) Option { return func(r *Router) { r.rt = rt } }

// WithOnRejected sets the hook told of a pool key refused upstream by
// enough requests and callers, and by its probe, after it has left the
// pool for good (disable it in the store, audit it with reason).
func WithOnRejected(f func(provider, credentialID, reason string)) Option {
	return func(r *Router) { r.onRejected = f }
}

// WithStrategies sets the strategies the routing settings may name
// (default: BuiltinStrategies).
func WithStrategies(ss Strategies) Option { return func(r *Router) { r.registry = ss } }

// ErrNoDeployment means every deployment of a model was skipped (breakers
// open, cooling down after a 429) without an attempt.
var ErrNoDeployment = errors.New("no healthy deployment available")

// CatalogLookup finds a deployment's catalog entry; nil means none known.
type CatalogLookup func(provider, model string) (catalog.Model, bool)

// maxDynamic bounds the provider/model names remembered (callers choose
// them, so the table must not grow without limit).
const maxDynamic = 4096

// New builds the router from config and the adapters by provider name.
// lookup may be nil.
func New(cfg config.Config, adapters map[string]providers.Provider, log *zap.Logger, now func() time.Time, lookup CatalogLookup, opts ...Option) (*Router, error) {
	r := &Router{models: map[string]*Model{}, maxAttempts: cfg.Router.MaxAttempts, log: log, now: now, pools: map[string]*pool{},
		adapters: adapters, catalog: lookup, rc: cfg.Router, shared: map[string]*Deployment{}, dynamic: map[string]*Model{}}
	r.plans.New = func() any { return new(plan) }
	r.guard = newKeyGuard(cfg.Router.KeyFailureThreshold, cfg.Router.KeyFailureCallers, cfg.Router.KeyFailureWindow)
	if r.guard.window <= 0 {
		r.guard.window = int64(5 * time.Minute)
	}
	r.probeCtx, r.stopProbes = context.WithCancel(context.Background())
	for _, o := range opts {
		o(r)
	}
	if err := r.rt.Validate(); err != nil {
		return nil, err
	}
	r.rt = r.rt.WithDefaults()
	if r.registry == nil {
		r.registry = BuiltinStrategies()
	}
	r.strategies = r.registry.build(r.rt)
	r.aff = newAffinity(r.rt.Affinity.Entries, r.rt.Affinity.TTL, now, log, r.affRedis, r.affWait)
	if _, ok := r.strategies[r.rt.DefaultStrategy]; !ok {
		return nil, unknownStrategy("routing.default_strategy", r.rt.DefaultStrategy, r.strategies)
	}
	for _, pc := range cfg.Providers {
		r.pools[pc.Name] = &pool{}
	}
	created := now().Unix()
	for _, mc := range cfg.Models {
		m := &Model{Name: mc.Name, OwnedBy: mc.OwnedBy, Created: created}
		if err := r.configure(m); err != nil {
			return nil, err
		}
		for _, dc := range mc.Deployments {
			a, ok := adapters[dc.Provider]
			if !ok {
				return nil, fmt.Errorf("model %s: provider %q has no adapter", mc.Name, dc.Provider)
			}
			if m.OwnedBy == "" {
				m.OwnedBy = dc.Provider
			}
			d := r.deployment(dc.Provider, dc.Model, a)
			m.Deployments = append(m.Deployments, d)
		}
		r.models[m.Name] = m
		r.names = append(r.names, m.Name)
	}
	sort.Strings(r.names)
	for name := range r.rt.Models {
		if _, ok := r.models[name]; !ok {
			log.Warn("routing.models names a model that is not configured", zap.String("model", name))
		}
	}
	return r, nil
}

// configure applies routing.models to m.
func (r *Router) configure(m *Model) error {
	mr := r.rt.Models[m.Name]
	m.strategyName = r.rt.DefaultStrategy
	if mr.Strategy != "" {
		m.strategyName = mr.Strategy
	}
	s, ok := r.strategies[m.strategyName]
	if !ok {
		return unknownStrategy(fmt.Sprintf("routing.models[%q].strategy", m.Name), m.strategyName, r.strategies)
	}
	m.strategy = s
	m.hedge = r.rt.Hedge.Enabled
	if mr.Hedge != nil {
		m.hedge = *mr.Hedge
	}
	m.maxAttempts = r.maxAttempts
	if mr.MaxAttempts > 0 {
		m.maxAttempts = mr.MaxAttempts
	}
	m.affinity = mr.Affinity == nil || *mr.Affinity
	m.breakpoints = mr.CacheBreakpoints == nil || *mr.CacheBreakpoints
	return nil
}

// deployment returns the shared deployment of provider/model, creating it
// (with its breaker) on first use.
func (r *Router) deployment(provider, model string, a providers.Provider) *Deployment {
	return r.deploymentCapped(provider, model, a, false)
}

// deploymentCapped is deployment for names callers choose ("provider/x"):
// once maxDynamic of those are remembered, a new one is built for the
// request only, so callers cannot grow the table without limit.
func (r *Router) deploymentCapped(provider, model string, a providers.Provider, callerChosen bool) *Deployment {
	key := provider + "/" + model
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.shared[key]; d != nil {
		return d
	}
	remember := !callerChosen || r.dynamicDeployments < maxDynamic
	d := &Deployment{Provider: provider, Model: model, name: key, adapter: a, pool: r.pools[provider], weight: 1,
		firstByte: r.rc.FirstByteTimeout, idle: r.rc.StreamIdleTimeout}
	if dr, ok := r.rt.Deployments[key]; ok {
		if dr.Weight > 0 {
			d.weight = dr.Weight
		}
		if dr.FirstByteTimeout > 0 {
			d.firstByte = dr.FirstByteTimeout
		}
		if dr.StreamIdleTimeout > 0 {
			d.idle = dr.StreamIdleTimeout
		}
		d.priority = dr.Priority
		d.tags = dr.Tags
	}
	d.breaker = newBreaker(d, r.rc, r.rt, r.log)
	if r.catalog != nil {
		if info, ok := r.catalog(provider, model); ok {
			d.Info = &info
			d.quirks = info.RequestQuirks()
		}
	}
	if remember {
		r.shared[key] = d
		if callerChosen {
			r.dynamicDeployments++
		}
	}
	return d
}

// Lookup finds a public model, or builds one for "provider/model" (the
// OpenRouter-style address of one provider's model) when provider is
// configured.
func (r *Router) Lookup(name string) (*Model, bool) {
	if m, ok := r.models[name]; ok {
		return m, true
	}
	provider, model, found := strings.Cut(name, "/")
	a, ok := r.adapters[provider]
	if !found || !ok || model == "" {
		return nil, false
	}
	r.mu.Lock()
	m, ok := r.dynamic[name]
	r.mu.Unlock()
	if ok {
		return m, true
	}
	// A public catalog name on that provider maps to the provider's id.
	id := model
	if r.catalog != nil {
		if info, ok := r.catalog(provider, model); ok {
			id = info.ID
		}
	}
	m = &Model{Name: name, OwnedBy: provider, Created: r.now().Unix(), Deployments: []*Deployment{r.deploymentCapped(provider, id, a, true)}}
	if err := r.configure(m); err != nil {
		m.strategy, m.strategyName = r.strategies[r.rt.DefaultStrategy], r.rt.DefaultStrategy
	}
	r.mu.Lock()
	if len(r.dynamic) < maxDynamic {
		r.dynamic[name] = m
	}
	r.mu.Unlock()
	return m, true
}

// Models lists the public models, sorted by name.
func (r *Router) Models() []*Model {
	out := make([]*Model, len(r.names))
	for i, n := range r.names {
		out[i] = r.models[n]
	}
	return out
}

// SetCredentials replaces a provider's key pool (from the vault). An empty
// list falls back to the config's key.
func (r *Router) SetCredentials(provider string, creds []Credential) error {
	p, ok := r.pools[provider]
	if !ok {
		return fmt.Errorf("router: unknown provider %q", provider)
	}
	cs := make([]Credential, 0, len(creds))
	for _, c := range creds {
		if c.Weight <= 0 {
			c.Weight = 1
		}
		cs = append(cs, c)
	}
	p.set(cs)
	return nil
}

// Credentials returns the ids in a provider's pool.
func (r *Router) Credentials(provider string) []string {
	p, ok := r.pools[provider]
	if !ok || p.creds.Load() == nil {
		return nil
	}
	var ids []string
	for _, c := range *p.creds.Load() {
		ids = append(ids, c.ID)
	}
	return ids
}
