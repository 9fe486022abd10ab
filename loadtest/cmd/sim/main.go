// Command sim runs the routing simulation: five mock OpenAI upstreams
// in-process, of different prices, latencies and error rates, behind the
// router (real OpenAI adapters over HTTP), driven by concurrent workers in
// phases:
//
//  1. calibrate: each upstream called directly, for its own p50;
//  2. cost: the "cost" strategy's spend against the cheapest deployment;
//  3. latency and latency-stream: the "latency" strategy's p50 (and time
//     to first token) against the fastest deployment's;
//  4. outage: the cheapest upstream dies mid-run and comes back; success
//     rate and how soon traffic returns to it.
//
// It prints the verdict as Markdown and exits 1 when a check fails.
//
//	go run ./loadtest/cmd/sim [-phase 5s] [-workers 16] [-cooldown 2s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest"
	"github.com/xroute/xroute/loadtest/mock"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/builtin"
	"github.com/xroute/xroute/providers/catalog"
	"github.com/xroute/xroute/router"
)

// upstream is one simulated provider.
type upstream struct {
	name          string
	mock          mock.Config
	input, output catalog.Price // micro-USD per million tokens
}

var upstreams = []upstream{
	{"cheap", mock.Config{Latency: 60 * time.Millisecond, Seed: 1}, 100_000, 400_000},
	{"fast", mock.Config{Latency: 10 * time.Millisecond, Seed: 2}, 3_000_000, 12_000_000},
	{"mid", mock.Config{Latency: 30 * time.Millisecond, FailRate500: 0.05, Seed: 3}, 500_000, 1_500_000},
	{"flaky", mock.Config{Latency: 20 * time.Millisecond, FailRate503: 0.10, Seed: 4}, 1_000_000, 4_000_000},
	{"slow", mock.Config{Latency: 90 * time.Millisecond, FailRate500: 0.02, Seed: 5}, 200_000, 800_000},
}

const (
	publicModel = "sim"
	upstreamID  = "gpt-sim"
	dies        = "cheap" // the upstream that dies mid-run
)

func main() {
	phase := flag.Duration("phase", 5*time.Second, "length of the cost and latency phases")
	workers := flag.Int("workers", 16, "concurrent requests")
	cooldown := flag.Duration("cooldown", 2*time.Second, "breaker timeout (router.breaker_cooldown)")
	verbose := flag.Bool("v", false, "log breaker state changes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ok, err := run(ctx, os.Stdout, *phase, *workers, *cooldown, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// sim is the running simulation.
type sim struct {
	hosts    map[string]*loadtest.SimHost
	adapters map[string]providers.Provider
	prices   map[string]catalog.Model
	router   *router.Router
	model    *router.Model
	client   *http.Client
}

func run(ctx context.Context, out io.Writer, phase time.Duration, workers int, cooldown time.Duration, verbose bool) (bool, error) {
	s, err := start(cooldown, verbose)
	if err != nil {
		return false, err
	}
	defer s.close()
	began := time.Now()
	var names []string
	for _, u := range upstreams {
		names = append(names, u.name)
	}

	// 1. Calibrate: every upstream alone, called directly.
	direct := map[string]loadtest.SimSummary{}
	directTTFT := map[string]loadtest.SimSummary{}
	for _, u := range upstreams {
		direct[u.name] = s.phase(ctx, "direct "+u.name, workers, phase/5, s.directCall(u.name, false)).Summary()
		directTTFT[u.name] = s.phase(ctx, "direct stream "+u.name, workers, phase/5, s.directCall(u.name, true)).Summary()
	}
	fastest, fastestTTFT := fastestOf(direct), fastestOf(directTTFT)

	// 2-3. Strategies in steady state.
	cost := s.phase(ctx, "cost", workers, phase, s.routed("cost", false)).Summary()
	lat := s.phase(ctx, "latency", workers, phase, s.routed("latency", false)).Summary()
	latStream := s.phase(ctx, "latency (stream TTFT)", workers, phase, s.routed("latency", true)).Summary()

	// 4. Outage: the cheapest dies after a while and comes back.
	outage := loadtest.NewSimTally("outage (cost)")
	// Down for 2.5 breaker timeouts: the revival falls between two probes.
	preKill, outageFor := phase/2, 2*cooldown+cooldown/2
	var killed, revived time.Time
	outageDone := make(chan struct{})
	go func() {
		defer close(outageDone)
		loadtest.RunWorkers(ctx, workers, preKill+outageFor+2*cooldown+phase/5, func(ctx context.Context, _ int) {
			s.routed("cost", false)(ctx, outage)
		})
	}()
	sleep(ctx, preKill)
	killed = time.Now()
	s.hosts[dies].Kill()
	sleep(ctx, outageFor)
	if err := s.hosts[dies].Revive(); err != nil {
		return false, err
	}
	revived = time.Now()
	<-outageDone
	outSum := outage.Summary()
	back, found := outage.FirstAfter(dies, revived)
	recovery := time.Duration(-1)
	if found {
		recovery = back.At.Sub(revived)
	}
	elapsed := time.Since(began)

	all := []loadtest.SimSummary{cost, lat, latStream, outSum}
	total, failed := 0, 0
	for _, x := range all {
		total += x.Requests
		failed += x.Failed
	}
	succ := 1 - float64(failed)/float64(max(total, 1))
	checks := []loadtest.SimCheck{
		{Name: "success rate, all routed phases", Measured: fmt.Sprintf("%.4f%% (%d/%d)", succ*100, total-failed, total), Target: ">= 99.9%", Pass: succ >= 0.999},
		{Name: "success rate during the outage", Measured: fmt.Sprintf("%.4f%% (%d/%d)", outSum.SuccessRate()*100, outSum.Requests-outSum.Failed, outSum.Requests), Target: ">= 99.9%", Pass: outSum.SuccessRate() >= 0.999},
		{Name: "cost: spend vs cheapest possible", Measured: fmt.Sprintf("%+.3f%% (%s vs %s)", cost.Overspend()*100, usd(cost.Spend), usd(cost.Cheapest)), Target: "<= +1%", Pass: cost.Overspend() <= 0.01},
		{Name: "latency: p50 vs fastest (" + fastest + " direct)", Measured: fmt.Sprintf("%s vs %s (%+.1f%%)", ms(lat.P50), ms(direct[fastest].P50), pct(lat.P50, direct[fastest].P50)), Target: "<= +10%", Pass: pct(lat.P50, direct[fastest].P50) <= 10},
		{Name: "latency: stream TTFT p50 vs fastest (" + fastestTTFT + " direct)", Measured: fmt.Sprintf("%s vs %s (%+.1f%%)", ms(latStream.P50), ms(directTTFT[fastestTTFT].P50), pct(latStream.P50, directTTFT[fastestTTFT].P50)), Target: "<= +10%", Pass: pct(latStream.P50, directTTFT[fastestTTFT].P50) <= 10},
		{Name: "recovery: revival to first answer from " + dies, Measured: recoveryText(recovery, cooldown), Target: fmt.Sprintf("<= 2 breaker timeouts (%s)", 2*cooldown), Pass: found && recovery <= 2*cooldown},
		{Name: "outage spend vs cheapest up (info)", Measured: fmt.Sprintf("%+.2f%%", outSum.Overspend()*100), Target: "-", Pass: true},
	}
	pass := true
	for _, c := range checks {
		pass = pass && c.Pass
	}

	fmt.Fprintf(out, "## Routing simulation\n\n%d mock upstreams in-process, %d workers, breaker timeout %s; %s killed %.1fs into the outage phase, revived %.1fs later. Ran %.1fs.\n\n",
		len(upstreams), workers, cooldown, dies, preKill.Seconds(), revived.Sub(killed).Seconds(), elapsed.Seconds())
	fmt.Fprintln(out, "| upstream | latency | fail 500 | fail 503 | price in/out ($/Mtok) | direct p50 | direct TTFT p50 |")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, u := range upstreams {
		fmt.Fprintf(out, "| %s | %s | %.0f%% | %.0f%% | %.2f / %.2f | %s | %s |\n", u.name, u.mock.Latency, u.mock.FailRate500*100, u.mock.FailRate503*100,
			float64(u.input)/1e6, float64(u.output)/1e6, ms(direct[u.name].P50), ms(directTTFT[u.name].P50))
	}
	fmt.Fprintf(out, "\n%s\n%s\n", loadtest.SimMarkdown(checks), loadtest.SimTrafficMarkdown(all, names))
	fmt.Fprintln(out, "| deployment | breaker | latency | TTFT | error rate | requests | failures |")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, d := range s.router.Deployments() {
		fmt.Fprintf(out, "| %s | %s | %s | %s | %.3f | %d | %d |\n", d.Name, d.Breaker, ms(d.Latency), ms(d.TTFT), d.ErrorRate, d.Requests, d.Failures)
	}
	if errs := outage.Errors(); len(errs) > 0 {
		fmt.Fprintln(out, "\nFailed requests during the outage:")
		for e, n := range errs {
			fmt.Fprintf(out, "- %d × %s\n", n, e)
		}
	}
	return pass, nil
}

// start serves the mocks and builds the router in front of them.
func start(cooldown time.Duration, verbose bool) (*sim, error) {
	s := &sim{hosts: map[string]*loadtest.SimHost{}, prices: map[string]catalog.Model{}}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 256
	s.client = &http.Client{Transport: t}
	cfg := config.Default()
	cfg.Router.BreakerCooldown = cooldown
	m := config.Model{Name: publicModel}
	for _, u := range upstreams {
		h, err := loadtest.StartSimHost(u.name, u.mock)
		if err != nil {
			s.close()
			return nil, err
		}
		s.hosts[u.name] = h
		cfg.Providers = append(cfg.Providers, config.Provider{Name: u.name, Type: "openai", BaseURL: h.BaseURL(), APIKey: "sk-mock"})
		m.Deployments = append(m.Deployments, config.Deployment{Provider: u.name, Model: upstreamID})
		s.prices[u.name] = catalog.Model{Name: publicModel, Provider: u.name, ID: upstreamID, Input: u.input, CachedInput: u.input, Output: u.output,
			Context: 128_000, MaxOutput: 4096, Caps: catalog.Capabilities{Tools: true, StreamingUsage: true}}
	}
	cfg.Models = []config.Model{m}
	reg := builtin.Registry()
	s.adapters = map[string]providers.Provider{}
	for _, pc := range cfg.Providers {
		a, err := reg.New(pc, providers.Deps{Client: s.client})
		if err != nil {
			s.close()
			return nil, err
		}
		s.adapters[pc.Name] = a
	}
	log := zap.NewNop()
	if verbose {
		zc := zap.NewDevelopmentConfig()
		zc.Level = zap.NewAtomicLevelAt(zapcore.WarnLevel)
		zc.DisableStacktrace = true
		log, _ = zc.Build()
	}
	lookup := func(provider, model string) (catalog.Model, bool) {
		p, ok := s.prices[provider]
		return p, ok && model == upstreamID
	}
	r, err := router.New(cfg, s.adapters, log, time.Now, lookup, router.WithRouting(config.Routing{}))
	if err != nil {
		s.close()
		return nil, err
	}
	s.router = r
	s.model, _ = r.Lookup(publicModel)
	return s, nil
}

func (s *sim) close() {
	for _, h := range s.hosts {
		h.Close()
	}
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
}

type call func(ctx context.Context, t *loadtest.SimTally)

func (s *sim) phase(ctx context.Context, name string, workers int, d time.Duration, c call) *loadtest.SimTally {
	t := loadtest.NewSimTally(name)
	loadtest.RunWorkers(ctx, workers, d, func(ctx context.Context, _ int) { c(ctx, t) })
	return t
}

// body is the chat request; sort, when set, is the request's own
// strategy (provider.sort, which the router strips before the upstream).
func body(sort string, stream bool) []byte {
	b := `{"model":"` + publicModel + `","messages":[{"role":"user","content":"How do gateways route requests?"}],"max_tokens":16`
	if stream {
		b += `,"stream":true`
	}
	if sort != "" {
		b += `,"provider":{"sort":"` + sort + `"}`
	}
	return []byte(b + "}")
}

// routed sends one request through the router with the strategy.
func (s *sim) routed(strategy string, stream bool) call {
	raw := body(strategy, stream)
	return func(ctx context.Context, t *loadtest.SimTally) {
		req, err := providers.ParseChatRequest(raw)
		if err != nil {
			panic(err)
		}
		start := time.Now()
		var usage providers.Usage
		var res router.Result
		if stream {
			var st providers.Stream
			st, res, err = s.router.ChatStream(ctx, s.model, req)
			if err == nil {
				lat := time.Since(start) // TTFT: the router returns after the first chunk
				usage, err = drain(st)
				s.record(ctx, t, start, lat, res, usage, err)
				return
			}
		} else {
			var resp *providers.ChatResponse
			resp, res, err = s.router.Chat(ctx, s.model, req)
			if err == nil {
				usage = resp.Usage
			}
		}
		s.record(ctx, t, start, time.Since(start), res, usage, err)
	}
}

func (s *sim) record(ctx context.Context, t *loadtest.SimTally, start time.Time, lat time.Duration, res router.Result, usage providers.Usage, err error) {
	if ctx.Err() != nil {
		return // the phase ended under it: not an outcome
	}
	o := loadtest.SimOutcome{At: time.Now(), Latency: lat, Err: err, Attempts: res.Attempts}
	if err == nil {
		o.Provider = res.Deployment.Provider
		o.Spend = s.prices[o.Provider].Cost(usage.PromptTokens, usage.CachedTokens, usage.CompletionTokens)
		o.Cheapest = s.cheapestUp(usage)
	}
	t.Add(o)
}

// cheapestUp is the usage's price on the cheapest upstream serving now.
func (s *sim) cheapestUp(u providers.Usage) int64 {
	best := int64(-1)
	for name, p := range s.prices {
		if !s.hosts[name].Up() {
			continue
		}
		if c := p.Cost(u.PromptTokens, u.CachedTokens, u.CompletionTokens); best < 0 || c < best {
			best = c
		}
	}
	return best
}

// directCall calls one upstream's adapter, bypassing the router.
func (s *sim) directCall(name string, stream bool) call {
	raw := body("", stream)
	a := s.adapters[name]
	return func(ctx context.Context, t *loadtest.SimTally) {
		req, _ := providers.ParseChatRequest(raw)
		c := &providers.Call{Request: req, Model: upstreamID}
		start := time.Now()
		var lat time.Duration
		var err error
		if stream {
			var st providers.Stream
			if st, err = a.ChatStream(ctx, c); err == nil {
				if _, err = st.Recv(); err == nil {
					lat = time.Since(start)
				}
				st.Close()
			}
		} else {
			_, err = a.Chat(ctx, c)
			lat = time.Since(start)
		}
		if ctx.Err() == nil {
			t.Add(loadtest.SimOutcome{At: time.Now(), Provider: name, Latency: lat, Err: err, Attempts: 1})
		}
	}
}

// drain reads a stream to its end and returns its usage.
func drain(st providers.Stream) (providers.Usage, error) {
	defer st.Close()
	var u providers.Usage
	for {
		c, err := st.Recv()
		if c.Usage != nil {
			u = *c.Usage
		}
		if errors.Is(err, io.EOF) {
			return u, nil
		}
		if err != nil {
			return u, err
		}
	}
}

func fastestOf(sums map[string]loadtest.SimSummary) string {
	best := ""
	for name, s := range sums {
		if s.Requests-s.Failed == 0 {
			continue
		}
		if best == "" || s.P50 < sums[best].P50 {
			best = name
		}
	}
	return best
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func pct(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return (float64(a)/float64(b) - 1) * 100
}

func usd(nano int64) string { return fmt.Sprintf("$%.6f", float64(nano)/1e9) }

func recoveryText(d, cooldown time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2fs (%.2f breaker timeouts)", d.Seconds(), d.Seconds()/cooldown.Seconds())
}
