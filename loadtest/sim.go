package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"strings"
	"sync"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// This file holds the pieces of the routing simulation (./loadtest/cmd/sim)
// that know nothing of the router: in-process mock upstreams that can die
// and come back, a tally of outcomes, and the Markdown verdict.

// SimHost is a mock upstream served in-process on a fixed local address.
// Kill closes its listener and connections (callers get "connection
// refused"); Revive listens on the same address again with the same mock.
type SimHost struct {
	Name string
	Mock *mock.Server
	addr string

	mu  sync.Mutex
	srv *http.Server
}

// StartSimHost serves a new mock with cfg on a free local port.
func StartSimHost(name string, cfg mock.Config) (*SimHost, error) {
	h := &SimHost{Name: name, Mock: mock.New(cfg), addr: "127.0.0.1:0"}
	if err := h.Revive(); err != nil {
		return nil, err
	}
	return h, nil
}

// BaseURL is the OpenAI base URL of the host ("http://ADDR/v1").
func (h *SimHost) BaseURL() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return "http://" + h.addr + "/v1"
}

// Up reports whether the host is serving.
func (h *SimHost) Up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.srv != nil
}

// Kill stops serving at once: the listener and every connection close.
func (h *SimHost) Kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		h.srv.Close()
		h.srv = nil
	}
}

// Revive serves again on the same address.
func (h *SimHost) Revive() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly should the kernel hold it.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("sim host %s: %w", h.Name, err)
	}
	h.addr = ln.Addr().String()
	srv := &http.Server{Handler: h.Mock, ReadHeaderTimeout: 5 * time.Second}
	h.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the next request sees the host down
		}
	}()
	return nil
}

// Close stops the host for good.
func (h *SimHost) Close() { h.Kill() }

// SimOutcome is one routed request.
type SimOutcome struct {
	At       time.Time // when it finished
	Provider string    // deployment's provider that answered ("" on failure)
	Latency  time.Duration
	Err      error
	// Spend is its price on the deployment that answered; Cheapest its
	// price on the cheapest deployment that was up (both nano-USD).
	Spend, Cheapest int64
	Attempts        int
}

// SimTally collects the outcomes of one phase. It is safe for concurrent
// use.
type SimTally struct {
	Phase string

	mu       sync.Mutex
	outcomes []SimOutcome
	lat      *Histogram
}

// NewSimTally returns an empty tally for phase.
func NewSimTally(phase string) *SimTally {
	return &SimTally{Phase: phase, lat: NewHistogram()}
}

// Add records one outcome.
func (t *SimTally) Add(o SimOutcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outcomes = append(t.outcomes, o)
	if o.Err == nil {
		t.lat.Record(o.Latency)
	}
}

// SimSummary sums up a tally.
type SimSummary struct {
	Phase           string
	Requests        int
	Failed          int
	Attempts        int
	Spend, Cheapest int64
	P50, P99        time.Duration
	// Share is the fraction of successful requests per provider.
	Share map[string]float64
}

// SuccessRate is the share of requests that got an answer.
func (s SimSummary) SuccessRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return 1 - float64(s.Failed)/float64(s.Requests)
}

// Overspend is how much more than the cheapest possible was spent (0.01:
// 1% more).
func (s SimSummary) Overspend() float64 {
	if s.Cheapest == 0 {
		return 0
	}
	return float64(s.Spend-s.Cheapest) / float64(s.Cheapest)
}

// Summary sums up the outcomes so far.
func (t *SimTally) Summary() SimSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := SimSummary{Phase: t.Phase, Requests: len(t.outcomes), Share: map[string]float64{}}
	ok := 0
	for _, o := range t.outcomes {
		s.Attempts += o.Attempts
		if o.Err != nil {
			s.Failed++
			continue
		}
		ok++
		s.Spend += o.Spend
		s.Cheapest += o.Cheapest
		s.Share[o.Provider]++
	}
	for p := range s.Share {
		s.Share[p] /= float64(ok)
	}
	if ok > 0 {
		s.P50, s.P99 = t.lat.Quantile(0.50), t.lat.Quantile(0.99)
	}
	return s
}

// FirstAfter returns the first successful outcome served by provider that
// finished after t.
func (t *SimTally) FirstAfter(provider string, after time.Time) (SimOutcome, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best SimOutcome
	found := false
	for _, o := range t.outcomes {
		if o.Err == nil && o.Provider == provider && o.At.After(after) && (!found || o.At.Before(best.At)) {
			best, found = o, true
		}
	}
	return best, found
}

// Errors counts the failed requests by error text (the first few kinds).
func (t *SimTally) Errors() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for _, o := range t.outcomes {
		if o.Err != nil {
			out[o.Err.Error()]++
		}
	}
	return out
}

// RunWorkers calls do from n goroutines until ctx ends or d passes.
func RunWorkers(ctx context.Context, n int, d time.Duration, do func(ctx context.Context, worker int)) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				do(ctx, w)
			}
		}()
	}
	wg.Wait()
}

// SimCheck is one line of the verdict.
type SimCheck struct {
	Name, Measured, Target string
	Pass                   bool
}

// SimMarkdown renders the checks as a Markdown table.
func SimMarkdown(checks []SimCheck) string {
	var b strings.Builder
	b.WriteString("| check | measured | target | result |\n| --- | --- | --- | --- |\n")
	for _, c := range checks {
		verdict := "pass"
		if !c.Pass {
			verdict = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.Measured, c.Target, verdict)
	}
	return b.String()
}

// SimTrafficMarkdown renders each phase's requests and traffic split.
func SimTrafficMarkdown(sums []SimSummary, providers []string) string {
	var b strings.Builder
	b.WriteString("| phase | requests | failed | attempts/request | p50 | p99 |")
	for _, p := range providers {
		b.WriteString(" " + p + " |")
	}
	b.WriteString("\n| --- | ---: | ---: | ---: | ---: | ---: |")
	for range providers {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, s := range sums {
		apr := 0.0
		if s.Requests > 0 {
			apr = float64(s.Attempts) / float64(s.Requests)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f | %s | %s |", s.Phase, s.Requests, s.Failed, apr, fmtDur(s.P50), fmtDur(s.P99))
		for _, p := range providers {
			fmt.Fprintf(&b, " %.1f%% |", s.Share[p]*100)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
