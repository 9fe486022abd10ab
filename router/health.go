package router

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// Smoothing of the moving averages: a new sample weighs alpha.
const (
	latencyAlpha = 0.1
	errorAlpha   = 0.05
	// staleAfter: a deployment without a sample for this long is tried
	// once more by the latency-aware strategies (its numbers may be old).
	staleAfter = 30 * time.Second
	// z95 turns a mean and a standard deviation into a p95 estimate.
	z95 = 1.645
)

// afloat is a float64 read and written atomically.
type afloat struct{ bits atomic.Uint64 }

func (f *afloat) load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *afloat) store(v float64) { f.bits.Store(math.Float64bits(v)) }

// moments is an exponentially weighted mean and variance.
type moments struct{ mean, variance float64 }

func (m *moments) add(x float64) {
	if m.mean == 0 && m.variance == 0 {
		m.mean = x
		return
	}
	d := x - m.mean
	inc := latencyAlpha * d
	m.mean += inc
	m.variance = (1 - latencyAlpha) * (m.variance + d*inc)
}

func (m *moments) p95() float64 { return m.mean + z95*math.Sqrt(m.variance) }

// health is what the router knows of a deployment's recent behaviour.
// Readers (strategies, the admin listing) only load atomics; writers
// serialise on mu, once per attempt.
type health struct {
	inflight atomic.Int64
	requests atomic.Uint64 // attempts ended
	failures atomic.Uint64 // attempts that counted as failures
	// Published values in nanoseconds (0: no sample yet).
	ttft, ttftP95       afloat // streams: start to first chunk
	latency, latencyP95 afloat // non-streams: whole request
	perToken            afloat // whole request per completion token
	errRate             afloat // share of attempts that failed, 0..1
	lastSample          atomic.Int64
	coolUntil           atomic.Int64 // unix ns; skipped until then (429)

	mu              sync.Mutex
	ttftM, latencyM moments
	perTokenM       moments
	errM            float64
}

func (h *health) observeTTFT(ns float64, now int64) {
	h.mu.Lock()
	h.ttftM.add(ns)
	h.ttft.store(h.ttftM.mean)
	h.ttftP95.store(h.ttftM.p95())
	h.mu.Unlock()
	h.lastSample.Store(now)
}

func (h *health) observeLatency(ns float64, completion int, now int64) {
	h.mu.Lock()
	h.latencyM.add(ns)
	h.latency.store(h.latencyM.mean)
	h.latencyP95.store(h.latencyM.p95())
	if completion > 0 {
		h.perTokenM.add(ns / float64(completion))
		h.perToken.store(h.perTokenM.mean)
	}
	h.mu.Unlock()
	h.lastSample.Store(now)
}

func (h *health) observePerToken(ns float64, completion int) {
	if completion <= 0 {
		return
	}
	h.mu.Lock()
	h.perTokenM.add(ns / float64(completion))
	h.perToken.store(h.perTokenM.mean)
	h.mu.Unlock()
}

// observeOutcome feeds the error rate: failed is a health failure.
func (h *health) observeOutcome(failed bool) {
	x := 0.0
	if failed {
		h.failures.Add(1)
		x = 1
	}
	h.mu.Lock()
	h.errM += errorAlpha * (x - h.errM)
	h.errRate.store(h.errM)
	h.mu.Unlock()
}

// markFailed turns a success already counted into a failure (a stream
// that broke after its first chunk).
func (h *health) markFailed() {
	h.failures.Add(1)
	h.mu.Lock()
	h.errM += errorAlpha * (1 - h.errM)
	h.errRate.store(h.errM)
	h.mu.Unlock()
}

// resetErrors forgets past failures (the breaker closed again).
func (h *health) resetErrors() {
	h.mu.Lock()
	h.errM = 0
	h.errRate.store(0)
	h.mu.Unlock()
}

// claimStale reports whether the deployment's numbers are stale and, if
// so, marks them fresh so that only one request explores it.
func (h *health) claimStale(now int64) bool {
	last := h.lastSample.Load()
	return last != 0 && now-last > int64(staleAfter) && h.lastSample.CompareAndSwap(last, now)
}

// coolDown skips the deployment until now+d (never shortening a cooldown).
func (h *health) coolDown(now int64, d time.Duration) {
	until := now + int64(d)
	for {
		old := h.coolUntil.Load()
		if old >= until || h.coolUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// breakerVerdict classifies an attempt's error for the breaker and the
// error rate.
type verdict int

const (
	healthy  verdict = iota // success, or the caller's own mistake
	failed                  // counts against the deployment
	excluded                // says nothing: cancelled, or rate limited (cooldown instead)
)

func judge(err error) verdict {
	if err == nil {
		return healthy
	}
	if errors.Is(err, context.Canceled) {
		return excluded
	}
	var re *providers.RequestError
	if errors.As(err, &re) {
		// The adapter could not express the request (a PDF for Gemini):
		// nothing was sent, nothing is wrong with the deployment.
		return excluded
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		return failed
	}
	switch {
	case pe.Status == http.StatusTooManyRequests:
		return excluded
	case pe.Status == http.StatusUnauthorized, pe.Status == http.StatusForbidden, pe.Retryable():
		return failed
	}
	// A request the upstream rejected on its merits says nothing about
	// the deployment's health.
	return healthy
}

func newBreaker(d *Deployment, rc config.Router, rt config.Routing, log *zap.Logger) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	b := rt.Breaker
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         d.Name(),
		MaxRequests:  b.Probes,
		Interval:     b.Window,
		BucketPeriod: b.Window / 10,
		Timeout:      rc.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= rc.BreakerFailures {
				return true
			}
			n := c.TotalSuccesses + c.TotalFailures
			return b.FailureRatio > 0 && n >= b.MinRequests && float64(c.TotalFailures) >= b.FailureRatio*float64(n)
		},
		IsSuccessful: func(err error) bool { return judge(err) == healthy },
		IsExcluded:   func(err error) bool { return judge(err) == excluded },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateClosed {
				d.health.resetErrors()
			}
			log.Warn("breaker state change", zap.String("deployment", name), zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
}
