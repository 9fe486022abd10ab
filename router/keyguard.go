package router

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
)

// A pool key the upstream refuses leaves the pool only on evidence that the
// key, not a caller's requests, is at fault. Any caller can make an
// upstream refuse a request (a model or a region the account may not use:
// 403), so only a refusal of the key itself counts (401, invalid_api_key;
// providers.Error.KeyRejected), and only once per request. When
// key_failure_threshold distinct requests saw it within key_failure_window,
// the key is probed with a call that involves no caller (the provider's
// models list; providers.Prober). If those requests came from
// key_failure_callers distinct caller keys the key is out of the pool
// meanwhile. A probe the upstream refuses too disables the key for good
// (WithOnRejected: the store, the audit); a probe it accepts, or one that
// cannot tell (timeout, 5xx), puts the key back. The last key of a
// provider's pool is never taken out, and never disabled automatically.

// probeTimeout bounds one key probe.
const probeTimeout = 15 * time.Second

// keyGuard counts the refusals of each pool key.
type keyGuard struct {
	threshold, callers int
	window             int64 // ns

	mu    sync.Mutex
	marks map[string]*keyMarks // by credential id
	anon  uint64               // requests without an id
}

type keyMarks struct {
	since    int64 // the window's first refusal (ns)
	requests map[string]struct{}
	callers  map[string]struct{}
	probing  bool
}

func newKeyGuard(threshold, callers int, window time.Duration) *keyGuard {
	return &keyGuard{threshold: max(threshold, 1), callers: max(callers, 1), window: int64(window), marks: map[string]*keyMarks{}}
}

// refusal is what one refusal of a key leads to.
type refusal struct {
	requests, callers int
	probe             bool // start a probe now
	takeOut           bool // the key may leave the pool during the probe
}

// refused records that cred was refused in request of caller at now.
func (g *keyGuard) refused(cred, caller, request string, now int64) refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.marks[cred]
	if m == nil || (!m.probing && now-m.since > g.window) {
		m = &keyMarks{since: now, requests: map[string]struct{}{}, callers: map[string]struct{}{}}
		g.marks[cred] = m
	}
	if request == "" {
		g.anon++
		request = "anonymous-" + strconv.FormatUint(g.anon, 10)
	}
	// Bounded: past the threshold nothing more is learned (a probe runs).
	if len(m.requests) < g.threshold {
		m.requests[request] = struct{}{}
	}
	if len(m.callers) < g.callers {
		m.callers[caller] = struct{}{}
	}
	v := refusal{requests: len(m.requests), callers: len(m.callers)}
	if !m.probing && v.requests >= g.threshold {
		m.probing, v.probe = true, true
		v.takeOut = v.callers >= g.callers
	}
	return v
}

// settled forgets cred's refusals once its probe is done: a new window
// starts with the next refusal.
func (g *keyGuard) settled(cred string) {
	g.mu.Lock()
	delete(g.marks, cred)
	g.mu.Unlock()
}

// checkRejected counts a refusal of a pool key and, on enough evidence,
// probes it (see above).
func (r *Router) checkRejected(ctx context.Context, d *Deployment, cred string, err error) {
	var pe *providers.Error
	if cred == "" || !errors.As(err, &pe) || !pe.KeyRejected() {
		return
	}
	c := callerFrom(ctx)
	v := r.guard.refused(cred, c.KeyID, c.RequestID, r.now().UnixNano())
	fields := []zap.Field{zap.String("provider", d.Provider), zap.String("credential", cred), zap.Int("status", pe.Status),
		zap.Int("requests", v.requests), zap.Int("callers", v.callers)}
	if !v.probe {
		r.log.Warn("provider key refused upstream", fields...)
		return
	}
	cr, gen, found := d.pool.get(cred)
	if !found {
		r.guard.settled(cred) // gone already (another replica, an operator)
		return
	}
	out := v.takeOut && d.pool.remove(cred, gen)
	r.log.Warn("provider key refused upstream repeatedly; probing it", append(fields, zap.Bool("out_of_pool", out))...)
	r.probes.Add(1)
	go r.probe(d, cr, gen, out, v)
}

// probe checks a suspect key alone, then disables it for good or puts it
// back (out: it was taken out of the pool, at generation gen).
func (r *Router) probe(d *Deployment, c Credential, gen uint64, out bool, v refusal) {
	defer r.probes.Done()
	defer r.guard.settled(c.ID)
	ctx, cancel := context.WithTimeout(r.probeCtx, probeTimeout)
	defer cancel()
	fields := []zap.Field{zap.String("provider", d.Provider), zap.String("credential", c.ID)}
	p, ok := c.Adapter.(providers.Prober)
	if !ok {
		r.log.Warn("provider key refused upstream but its adapter cannot probe it; kept", fields...)
		r.restore(d, c, gen, out)
		return
	}
	err := r.scrub(p.Probe(ctx, d.Model))
	var pe *providers.Error
	if err == nil || !errors.As(err, &pe) || !pe.KeyRejected() {
		// Accepted, or no refusal (timeout, 5xx, 429): the key stays.
		r.log.Info("provider key probe did not confirm the refusals; kept in the pool", append(fields, zap.NamedError("probe", err))...)
		r.restore(d, c, gen, out)
		return
	}
	if !d.pool.removeUnlessLast(c.ID) {
		r.log.Error("provider key refused upstream and by its probe, but it is the provider's last key: kept in the pool; replace it", fields...)
		r.restore(d, c, gen, out)
		return
	}
	r.log.Warn("provider key refused upstream and by its probe; disabled", fields...)
	if r.onRejected != nil {
		r.onRejected(d.Provider, c.ID, "refused upstream ("+strconv.Itoa(pe.Status)+") in "+strconv.Itoa(v.requests)+
			" requests of "+strconv.Itoa(v.callers)+" callers, and by a probe")
	}
}

// restore puts a key taken out for its probe back in the pool.
func (r *Router) restore(d *Deployment, c Credential, gen uint64, out bool) {
	if out {
		d.pool.add(c, gen)
	}
}

// Close stops the key probes in flight and waits for them.
func (r *Router) Close() {
	r.stopProbes()
	r.probes.Wait()
}
