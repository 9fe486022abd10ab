package router

import (
	"sort"
	"time"
)

// DeploymentStatus is a snapshot of one deployment for operators.
type DeploymentStatus struct {
	Name, Provider, Model string
	// Models are the public models it serves (provider/model addresses
	// used so far included).
	Models []string
	// Breaker is "closed", "half-open" or "open".
	Breaker string
	// Moving averages (0: no sample yet): whole-request latency and per
	// output token of non-streams, time to first token of streams, with
	// their p95 estimates.
	Latency, LatencyP95, PerToken, TTFT, TTFTP95 time.Duration
	// ErrorRate is the moving share of failed attempts, 0..1.
	ErrorRate          float64
	InFlight           int64
	Requests, Failures uint64
	// CooldownUntil is when a deployment skipped after a 429 is tried
	// again (zero: not cooling down).
	CooldownUntil time.Time
	// PoolSize is the number of vault keys (0: the config's key is used).
	PoolSize int
	Weight   int
	Priority *int
	Tags     []string
	// Input and Output are catalog prices in micro-USD per million
	// tokens; HasPrice is false when the catalog does not know it.
	Input, Output int64
	HasPrice      bool
}

// Deployments lists every deployment the router has built, by name.
func (r *Router) Deployments() []DeploymentStatus {
	r.mu.Lock()
	ds := make([]*Deployment, 0, len(r.shared))
	for _, d := range r.shared {
		ds = append(ds, d)
	}
	served := map[*Deployment][]string{}
	for _, m := range r.models {
		for _, d := range m.Deployments {
			served[d] = append(served[d], m.Name)
		}
	}
	for _, m := range r.dynamic {
		for _, d := range m.Deployments {
			served[d] = append(served[d], m.Name)
		}
	}
	r.mu.Unlock()
	sort.Slice(ds, func(i, j int) bool { return ds[i].name < ds[j].name })
	now := r.now().UnixNano()
	out := make([]DeploymentStatus, 0, len(ds))
	for _, d := range ds {
		h := &d.health
		names := served[d]
		sort.Strings(names)
		st := DeploymentStatus{
			Name: d.name, Provider: d.Provider, Model: d.Model, Models: names,
			Breaker:    d.BreakerState(),
			Latency:    time.Duration(h.latency.load()),
			LatencyP95: time.Duration(h.latencyP95.load()),
			PerToken:   time.Duration(h.perToken.load()),
			TTFT:       time.Duration(h.ttft.load()),
			TTFTP95:    time.Duration(h.ttftP95.load()),
			ErrorRate:  h.errRate.load(),
			InFlight:   h.inflight.Load(),
			Requests:   h.requests.Load(),
			Failures:   h.failures.Load(),
			Weight:     d.weight,
			Priority:   d.priority,
			Tags:       append([]string(nil), d.tags...),
		}
		if until := h.coolUntil.Load(); until > now {
			st.CooldownUntil = time.Unix(0, until)
		}
		if d.pool != nil {
			if cs := d.pool.creds.Load(); cs != nil {
				st.PoolSize = len(*cs)
			}
		}
		if d.Info != nil {
			st.Input, st.Output, st.HasPrice = int64(d.Info.Input), int64(d.Info.Output), true
		}
		out = append(out, st)
	}
	return out
}
