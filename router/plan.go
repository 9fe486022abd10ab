package router

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
)

// plan is one request's way through the candidates: the requested model's
// deployments in strategy order, then those of its fallback models.
type plan struct {
	r     *Router
	q     Query
	req   *providers.ChatRequest // extensions stripped; nil for embeddings
	embed bool
	prefs *Preferences
	// override is the request's or the caller's strategy (nil: each
	// model's own).
	override     Strategy
	overrideName string

	first     *Model
	fallbacks []*Model // from the request's models list
	mi        int      // index in models of the candidates
	// The candidates of models[mi] are buf[:n], or big when they do not
	// fit (a slice into buf would make the plan point to itself and
	// escape to the heap).
	buf  [32]*Deployment
	big  []*Deployment
	n    int
	ci   int
	used []*Deployment // tried already, when there are fallback models

	maxAttempts int
	attempts    int
	deadline    int64 // no attempt starts after it (unix ns; 0: none)
	skipped     []string
	// coolest is the earliest end of the cooldowns that made the plan skip
	// a deployment (unix ns; 0: none skipped for a 429).
	coolest, cooledAt int64
	// refusedKeys are the pool keys the upstream refused during this
	// request; again is a deployment to try once more with another of its
	// pool's keys (d nil: none).
	refusedKeys []string
	again       candidate
	// sess is the request's session affinity (nil: none).
	sess *session
}

// putPlan clears p (it must not keep deployments, requests or strings
// alive) and returns it to the pool. Plans are pooled because the
// strategies, behind an interface, make their candidate buffer escape.
func (r *Router) putPlan(p *plan) {
	*p = plan{}
	r.plans.Put(p)
}

// candidate is a deployment admitted for an attempt.
type candidate struct {
	d    *Deployment
	m    *Model
	req  *providers.ChatRequest // with d's quirks applied
	done func(error)            // the breaker's verdict callback
	// avoid are pool keys not to use (refused during this request).
	avoid []string
	// prefer is the pool key the session is pinned to on d ("": any).
	prefer string
}

// init prepares p (the caller's, usually on its stack) for one request.
func (p *plan) init(ctx context.Context, r *Router, m *Model, req *providers.ChatRequest, embed bool, embedTokens int) error {
	now := r.now().UnixNano()
	p.r, p.req, p.embed, p.maxAttempts, p.mi = r, req, embed, m.maxAttempts, -1
	p.q.Now = now
	if p.maxAttempts <= 0 {
		p.maxAttempts = r.maxAttempts
	}
	if r.rt.Budget > 0 {
		p.deadline = now + int64(r.rt.Budget)
	}
	if embed {
		p.q.PromptTokens = embedTokens
	} else {
		prefs, body, err := parsePreferences(req.Body)
		if err != nil {
			return err
		}
		if prefs != nil {
			p.req, p.prefs = req.WithBody(body), prefs
		}
		p.q.Stream = req.Stream
		p.q.CompletionTokens = req.MaxTokens
		if p.q.CompletionTokens <= 0 {
			p.q.CompletionTokens = defaultCompletion
		}
		p.q.PromptTokens = max(req.ContextTokens-req.MaxTokens, 0)
		p.sess = r.lookupSession(ctx, m, p.req)
	}
	caller := callerFrom(ctx)
	switch {
	case p.prefs != nil && p.prefs.Strategy != "":
		s, ok := r.strategies[p.prefs.Strategy]
		if !ok {
			return badRequest("provider.sort", "Invalid 'provider.sort': "+unknownStrategy("provider.sort", p.prefs.Strategy, r.strategies).Error()+"; OpenRouter's price, latency and throughput are accepted too.")
		}
		p.override, p.overrideName = s, p.prefs.Strategy
	case caller.Strategy != "":
		if s, ok := r.strategies[caller.Strategy]; ok {
			p.override, p.overrideName = s, caller.Strategy
		} else {
			r.log.Warn("caller's default strategy is unknown; using the model's", zap.String("strategy", caller.Strategy))
		}
	}
	p.first = m
	if p.prefs != nil && len(p.prefs.Models) > 0 && caller.AllowModel != nil {
		for _, name := range p.prefs.Models {
			fm, ok := r.Lookup(name)
			if !ok || fm == m || !caller.AllowModel(name) || containsModel(p.fallbacks, fm) {
				continue
			}
			p.fallbacks = append(p.fallbacks, fm)
		}
	}
	p.nextModel()
	return nil
}

func containsModel(ms []*Model, m *Model) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func (p *plan) strategyName() string {
	if p.overrideName != "" {
		return p.overrideName
	}
	return p.first.strategyName
}

// model is the i-th model of the plan: the requested one, then the
// fallbacks.
func (p *plan) model(i int) *Model {
	if i == 0 {
		return p.first
	}
	return p.fallbacks[i-1]
}

// nextModel orders the deployments of the next model; false when none is
// left.
func (p *plan) nextModel() bool {
	p.mi++
	if p.mi > len(p.fallbacks) {
		return false
	}
	m := p.model(p.mi)
	var cands []*Deployment
	if len(m.Deployments) <= len(p.buf) {
		p.big = nil
		cands = p.buf[:len(m.Deployments)]
	} else {
		p.big = make([]*Deployment, len(m.Deployments))
		cands = p.big
	}
	copy(cands, m.Deployments)
	p.ci = 0
	s := m.strategy
	if p.override != nil {
		s = p.override
	}
	pinned := p.pinnedIn(cands)
	_, aware := s.(cacheAware)
	if pinned != nil && aware {
		p.q.Warm, p.q.CacheTokens = pinned, p.sess.pin.Tokens
	}
	s.Order(&p.q, cands)
	p.q.Warm, p.q.CacheTokens = nil, 0
	if pinned != nil && !aware {
		toFront(cands, pinned)
	}
	if p.prefs != nil {
		cands = p.prefs.apply(cands)
	}
	p.n = len(cands)
	return true
}

// pinnedIn is the deployment of cands the session is pinned to, for the
// requested model only (nil: none).
func (p *plan) pinnedIn(cands []*Deployment) *Deployment {
	if p.mi != 0 || p.sess == nil || !p.sess.pinned {
		return nil
	}
	for _, d := range cands {
		if d.name == p.sess.pin.Deployment {
			return d
		}
	}
	return nil
}

// toFront moves d to the front of ds, keeping the others' order.
func toFront(ds []*Deployment, d *Deployment) {
	for i, x := range ds {
		if x == d {
			copy(ds[1:i+1], ds[:i])
			ds[0] = d
			return
		}
	}
}

func (p *plan) cands() []*Deployment {
	if p.big != nil {
		return p.big[:p.n]
	}
	return p.buf[:p.n]
}

// next admits the next candidate for an attempt: one that can serve the
// request, is not cooling down after a 429 and whose breaker lets the
// request through. ok is false when none is left or the attempts or the
// budget are spent.
func (p *plan) next() (c candidate, ok bool) {
	for p.attempts < p.maxAttempts {
		if p.again.d != nil {
			c, p.again = p.again, candidate{}
			done, err := c.d.breaker.Allow()
			if err != nil {
				continue
			}
			p.attempts++
			c.done, c.avoid = done, p.refusedKeys
			return c, true
		}
		if p.ci >= p.n {
			if !p.nextModel() {
				return c, false
			}
			continue
		}
		d := p.cands()[p.ci]
		p.ci++
		if len(p.fallbacks) > 0 {
			if containsDeployment(p.used, d) {
				continue
			}
			p.used = append(p.used, d)
		}
		req := p.req
		if p.embed {
			if _, ok := d.adapter.(providers.Embedder); !ok {
				p.skipped = append(p.skipped, d.Provider+" does not serve embeddings")
				continue
			}
		} else {
			var err error
			if req, err = d.prepare(p.req); err != nil {
				p.skipped = append(p.skipped, err.Error())
				continue
			}
		}
		now := p.q.Now
		if p.attempts > 0 {
			now = p.r.now().UnixNano()
		}
		if p.deadline > 0 && p.attempts > 0 && now > p.deadline {
			return c, false
		}
		if until := d.health.coolUntil.Load(); until > now {
			if p.coolest == 0 || until < p.coolest {
				p.coolest, p.cooledAt = until, now
			}
			continue
		}
		done, err := d.breaker.Allow()
		if err != nil {
			continue // open, or half-open with its probes out
		}
		p.attempts++
		c = candidate{d: d, m: p.model(p.mi), req: req, done: done}
		if p.sess != nil && p.sess.pinned && d.name == p.sess.pin.Deployment {
			c.prefer = p.sess.pin.Credential
		}
		return c, true
	}
	return c, false
}

// keyRefused notes that the upstream refused pool key cred on c's
// deployment: the key is at fault, not the request, so the deployment is
// offered again (next attempt) with another of its pool's keys, if any.
// A dead key costs the caller one attempt, not the answer.
func (p *plan) keyRefused(c candidate, cred string) {
	if cred == "" {
		return
	}
	p.refusedKeys = append(p.refusedKeys, cred)
	if c.d.pool.hasOther(p.refusedKeys) {
		c.done, c.avoid = nil, nil
		p.again = c
	}
}

func containsDeployment(ds []*Deployment, d *Deployment) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// failure is the error of a request that no deployment served: what the
// deployments lack when none was even tried, a 429 with the shortest
// Retry-After when rate limits kept it from trying any, else the last
// error.
func (p *plan) failure(last error) error {
	if p.attempts == 0 && len(p.skipped) > 0 {
		return &CapabilityError{Model: p.first.Name, Reasons: p.skipped}
	}
	if p.attempts == 0 && p.coolest > 0 {
		return &providers.Error{Provider: "xroute", Status: http.StatusTooManyRequests, Type: "rate_limit_error",
			Message: "every deployment of " + p.first.Name + " is rate limited upstream", RetryAfter: time.Duration(p.coolest - p.cooledAt)}
	}
	if last == nil {
		return ErrNoDeployment
	}
	return last
}
