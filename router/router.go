// Package router picks the deployments that serve a public model name and
// runs the failover loop: candidates in order, a circuit breaker per
// deployment, retryable failures moving on to the next candidate, streams
// failing over only before their first chunk reaches the caller.
package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
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
	// quirks rewrite the body for this provider/model (dropped params...).
	quirks  catalog.Quirks
	adapter providers.Provider // built from the config's key (or keyless)
	pool    *pool              // the provider's vault keys, shared by its deployments
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// Credential is one provider key, as an adapter built with it.
type Credential struct {
	ID      string
	Weight  int
	Adapter providers.Provider
}

// pool holds a provider's credentials; readers take a snapshot.
type pool struct {
	creds atomic.Pointer[[]Credential]
}

// pick chooses a credential by weight; ok is false when the pool is empty.
func (p *pool) pick() (Credential, bool) {
	cs := p.creds.Load()
	if cs == nil || len(*cs) == 0 {
		return Credential{}, false
	}
	total := 0
	for _, c := range *cs {
		total += c.Weight
	}
	n := rand.IntN(total)
	for _, c := range *cs {
		if n < c.Weight {
			return c, true
		}
		n -= c.Weight
	}
	return (*cs)[len(*cs)-1], true
}

// adapterFor returns the adapter for one attempt: a pool key when the
// provider has any, else the config's.
func (d *Deployment) adapterFor() (providers.Provider, string) {
	if c, ok := d.pool.pick(); ok {
		return c.Adapter, c.ID
	}
	return d.adapter, ""
}

// Name is "provider/model", unique in a router.
func (d *Deployment) Name() string { return d.Provider + "/" + d.Model }

// BreakerState is "closed", "half-open" or "open".
func (d *Deployment) BreakerState() string { return d.breaker.State().String() }

// Model is a public model name and the deployments that serve it.
type Model struct {
	Name        string
	OwnedBy     string
	Created     int64
	Deployments []*Deployment
}

// Router holds the model table. It is safe for concurrent use.
type Router struct {
	models      map[string]*Model
	names       []string
	maxAttempts int
	log         *zap.Logger
	pools       map[string]*pool // by provider
	adapters    map[string]providers.Provider
	catalog     CatalogLookup
	rc          config.Router
	mu          sync.Mutex
	shared      map[string]*Deployment // by provider/model, breakers included
	dynamic     map[string]*Model      // provider/model names built on demand
	// OnRejected is told when a provider answers a pool key with 401/403,
	// after the key has left the pool (disable it in the store, audit it).
	OnRejected func(provider, credentialID string)
}

// ErrNoDeployment means every deployment of a model was skipped (breakers
// open) without an attempt.
var ErrNoDeployment = errors.New("no healthy deployment available")

// CatalogLookup finds a deployment's catalog entry; nil means none known.
type CatalogLookup func(provider, model string) (catalog.Model, bool)

// maxDynamic bounds the provider/model names remembered (callers choose
// them, so the table must not grow without limit).
const maxDynamic = 4096

// New builds the router from config and the adapters by provider name.
// lookup may be nil.
func New(cfg config.Config, adapters map[string]providers.Provider, log *zap.Logger, now func() time.Time, lookup CatalogLookup) (*Router, error) {
	r := &Router{models: map[string]*Model{}, maxAttempts: cfg.Router.MaxAttempts, log: log, pools: map[string]*pool{},
		adapters: adapters, catalog: lookup, rc: cfg.Router, shared: map[string]*Deployment{}, dynamic: map[string]*Model{}}
	for _, pc := range cfg.Providers {
		r.pools[pc.Name] = &pool{}
	}
	created := now().Unix()
	for _, mc := range cfg.Models {
		m := &Model{Name: mc.Name, OwnedBy: mc.OwnedBy, Created: created}
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
	return r, nil
}

func newBreaker(name string, rc config.Router, log *zap.Logger) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1, // one probe while half-open
		Timeout:     rc.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= rc.BreakerFailures },
		IsSuccessful: func(err error) bool {
			// A request the upstream rejected on its merits says nothing
			// about the deployment's health.
			var pe *providers.Error
			if err == nil || errors.Is(err, context.Canceled) {
				return true
			}
			if errors.As(err, &pe) {
				return !pe.Retryable() && pe.Status != http.StatusUnauthorized && pe.Status != http.StatusForbidden
			}
			return false
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("breaker state change", zap.String("deployment", name), zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
}

// deployment returns the shared deployment of provider/model, creating it
// (with its breaker) on first use.
func (r *Router) deployment(provider, model string, a providers.Provider) *Deployment {
	key := provider + "/" + model
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.shared[key]; d != nil {
		return d
	}
	d := &Deployment{Provider: provider, Model: model, adapter: a, pool: r.pools[provider], breaker: newBreaker(key, r.rc, r.log)}
	if r.catalog != nil {
		if info, ok := r.catalog(provider, model); ok {
			d.Info = &info
			d.quirks = info.RequestQuirks()
		}
	}
	r.shared[key] = d
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
	m = &Model{Name: name, OwnedBy: provider, Created: time.Now().Unix(), Deployments: []*Deployment{r.deployment(provider, id, a)}}
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

// Result says where a request went.
type Result struct {
	Deployment *Deployment
	Attempts   int
}

// CapabilityError means no deployment of a model can serve the request
// (tools, images, JSON schema, context length): a 400 for the caller.
type CapabilityError struct {
	Model   string
	Reasons []string
}

func (e *CapabilityError) Error() string {
	return "model " + e.Model + " cannot serve this request: " + strings.Join(e.Reasons, "; ")
}

// prepare checks that d can serve req and applies its quirks; a non-nil
// error is the reason to skip d.
func (d *Deployment) prepare(req *providers.ChatRequest) (*providers.ChatRequest, error) {
	if d.Info != nil {
		if err := d.Info.Supports(catalog.Needs{Tools: req.HasTools, Vision: req.HasImages, JSONSchema: req.JSONSchema, ContextTokens: req.ContextTokens}); err != nil {
			return nil, err
		}
	}
	if d.quirks.IsZero() {
		return req, nil
	}
	body, err := d.quirks.Apply(req.Body)
	if err != nil {
		return nil, err
	}
	out := *req
	out.Body = body
	return &out, nil
}

// capabilityFailure is what a request gets when every deployment was
// skipped for what it lacks.
func capabilityFailure(m *Model, reasons []string, attempts int, last error) error {
	if attempts == 0 && len(reasons) > 0 {
		return &CapabilityError{Model: m.Name, Reasons: reasons}
	}
	return last
}

// Chat runs a non-streaming request with failover.
func (r *Router) Chat(ctx context.Context, m *Model, req *providers.ChatRequest) (*providers.ChatResponse, Result, error) {
	var res Result
	var last error = ErrNoDeployment
	var skipped []string
	for _, d := range m.Deployments {
		if res.Attempts >= r.maxAttempts {
			break
		}
		dreq, err := d.prepare(req)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		done, err := d.breaker.Allow()
		if err != nil {
			continue // open: skip without spending an attempt
		}
		res.Attempts++
		res.Deployment = d
		adapter, cred := d.adapterFor()
		resp, err := adapter.Chat(ctx, &providers.Call{Request: dreq, Model: d.Model})
		done(err)
		r.checkRejected(d, cred, err)
		if err == nil {
			return resp, res, nil
		}
		last = err
		if !r.failover(ctx, d, err) {
			break
		}
	}
	return nil, res, fmt.Errorf("route %s: %w", m.Name, capabilityFailure(m, skipped, res.Attempts, last))
}

// ChatStream starts a stream with failover. It reads the first chunk before
// returning, so that a deployment failing before its first byte is replaced
// while the caller has seen nothing yet.
func (r *Router) ChatStream(ctx context.Context, m *Model, req *providers.ChatRequest) (providers.Stream, Result, error) {
	var res Result
	var last error = ErrNoDeployment
	var skipped []string
	for _, d := range m.Deployments {
		if res.Attempts >= r.maxAttempts {
			break
		}
		dreq, err := d.prepare(req)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		done, err := d.breaker.Allow()
		if err != nil {
			continue
		}
		res.Attempts++
		res.Deployment = d
		adapter, cred := d.adapterFor()
		s, err := adapter.ChatStream(ctx, &providers.Call{Request: dreq, Model: d.Model})
		if err == nil {
			var first providers.Chunk
			first, err = s.Recv()
			if err == nil || errors.Is(err, io.EOF) {
				done(nil)
				return &peeked{Stream: s, first: first, firstErr: err, pending: true}, res, nil
			}
			s.Close()
		}
		done(err)
		r.checkRejected(d, cred, err)
		last = err
		if !r.failover(ctx, d, err) {
			break
		}
	}
	return nil, res, fmt.Errorf("route %s: %w", m.Name, capabilityFailure(m, skipped, res.Attempts, last))
}

// Embed runs an embeddings request with failover over the deployments whose
// adapter serves embeddings.
func (r *Router) Embed(ctx context.Context, m *Model, inputs []string, dimensions int) ([][]float32, providers.Usage, Result, error) {
	var res Result
	var last error = ErrNoDeployment
	var skipped []string
	for _, d := range m.Deployments {
		if res.Attempts >= r.maxAttempts {
			break
		}
		adapter, cred := d.adapterFor()
		emb, ok := adapter.(providers.Embedder)
		if !ok {
			skipped = append(skipped, d.Provider+" does not serve embeddings")
			continue
		}
		done, err := d.breaker.Allow()
		if err != nil {
			continue
		}
		res.Attempts++
		res.Deployment = d
		vecs, usage, err := emb.Embed(ctx, d.Model, inputs, dimensions)
		done(err)
		r.checkRejected(d, cred, err)
		if err == nil {
			return vecs, usage, res, nil
		}
		last = err
		if !r.failover(ctx, d, err) {
			break
		}
	}
	return nil, providers.Usage{}, res, fmt.Errorf("route %s: %w", m.Name, capabilityFailure(m, skipped, res.Attempts, last))
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
	p.creds.Store(&cs)
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

// checkRejected takes a pool key out when the provider refused it (401 or
// 403): the key is wrong or revoked upstream, and every further use would
// fail too.
func (r *Router) checkRejected(d *Deployment, cred string, err error) {
	var pe *providers.Error
	if cred == "" || !errors.As(err, &pe) || (pe.Status != http.StatusUnauthorized && pe.Status != http.StatusForbidden) {
		return
	}
	for {
		old := d.pool.creds.Load()
		if old == nil {
			return
		}
		next := make([]Credential, 0, len(*old))
		for _, c := range *old {
			if c.ID != cred {
				next = append(next, c)
			}
		}
		if len(next) == len(*old) {
			return // another request removed it already
		}
		if d.pool.creds.CompareAndSwap(old, &next) {
			break
		}
	}
	r.log.Warn("provider key rejected upstream; taken out of the pool", zap.String("provider", d.Provider), zap.String("credential", cred), zap.Int("status", pe.Status))
	if r.OnRejected != nil {
		r.OnRejected(d.Provider, cred)
	}
}

// failover decides whether to try the next candidate after err.
func (r *Router) failover(ctx context.Context, d *Deployment, err error) bool {
	if ctx.Err() != nil {
		return false // the caller left or its deadline passed
	}
	var pe *providers.Error
	if !errors.As(err, &pe) || !pe.Retryable() {
		return false
	}
	r.log.Info("failover", zap.String("deployment", d.Name()), zap.Int("status", pe.Status), zap.Bool("mid_stream", pe.MidStream))
	return true
}

// peeked replays the first chunk the router read while choosing.
type peeked struct {
	providers.Stream
	first    providers.Chunk
	firstErr error
	pending  bool
}

func (p *peeked) Recv() (providers.Chunk, error) {
	if p.pending {
		p.pending = false
		return p.first, p.firstErr
	}
	return p.Stream.Recv()
}
