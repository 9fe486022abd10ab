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
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// Deployment is one provider serving one upstream model.
type Deployment struct {
	Provider string
	Model    string
	adapter  providers.Provider // built from the config's key (or keyless)
	pool     *pool              // the provider's vault keys, shared by its deployments
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
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
	// OnRejected is told when a provider answers a pool key with 401/403,
	// after the key has left the pool (disable it in the store, audit it).
	OnRejected func(provider, credentialID string)
}

// ErrNoDeployment means every deployment of a model was skipped (breakers
// open) without an attempt.
var ErrNoDeployment = errors.New("no healthy deployment available")

// New builds the router from config and the adapters by provider name.
func New(cfg config.Config, adapters map[string]providers.Provider, log *zap.Logger, now func() time.Time) (*Router, error) {
	r := &Router{models: map[string]*Model{}, maxAttempts: cfg.Router.MaxAttempts, log: log, pools: map[string]*pool{}}
	for _, pc := range cfg.Providers {
		r.pools[pc.Name] = &pool{}
	}
	shared := map[string]*Deployment{}
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
			key := dc.Provider + "/" + dc.Model
			d := shared[key]
			if d == nil {
				d = &Deployment{Provider: dc.Provider, Model: dc.Model, adapter: a, pool: r.pools[dc.Provider], breaker: newBreaker(key, cfg.Router, log)}
				shared[key] = d
			}
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

// Lookup finds a public model.
func (r *Router) Lookup(name string) (*Model, bool) {
	m, ok := r.models[name]
	return m, ok
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

// Chat runs a non-streaming request with failover.
func (r *Router) Chat(ctx context.Context, m *Model, req *providers.ChatRequest) (*providers.ChatResponse, Result, error) {
	var res Result
	var last error = ErrNoDeployment
	for _, d := range m.Deployments {
		if res.Attempts >= r.maxAttempts {
			break
		}
		done, err := d.breaker.Allow()
		if err != nil {
			continue // open: skip without spending an attempt
		}
		res.Attempts++
		res.Deployment = d
		adapter, cred := d.adapterFor()
		resp, err := adapter.Chat(ctx, &providers.Call{Request: req, Model: d.Model})
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
	return nil, res, fmt.Errorf("route %s: %w", m.Name, last)
}

// ChatStream starts a stream with failover. It reads the first chunk before
// returning, so that a deployment failing before its first byte is replaced
// while the caller has seen nothing yet.
func (r *Router) ChatStream(ctx context.Context, m *Model, req *providers.ChatRequest) (providers.Stream, Result, error) {
	var res Result
	var last error = ErrNoDeployment
	for _, d := range m.Deployments {
		if res.Attempts >= r.maxAttempts {
			break
		}
		done, err := d.breaker.Allow()
		if err != nil {
			continue
		}
		res.Attempts++
		res.Deployment = d
		adapter, cred := d.adapterFor()
		s, err := adapter.ChatStream(ctx, &providers.Call{Request: req, Model: d.Model})
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
	return nil, res, fmt.Errorf("route %s: %w", m.Name, last)
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
