// Command bench measures what xroute adds on top of an upstream: latency
// (p50/p99), time to first token, gateway CPU time per request and peak
// RSS, xroute in front of the mock upstream against the mock called
// directly, a bare httputil.ReverseProxy (the floor) and, as a peer,
// Portkey's open-source gateway, at a fixed request rate and with many
// concurrent streams.
//
//	go run ./loadtest/cmd/bench [-duration 10s] [-rounds 3] [-rate 1000] [-streams 500] [-many-streams 5000] [-json out.json] [-md docs/benchmarks-run.md] [-charts DIR] [-quick]
//
// Phases: for each ingress (Chat Completions: nonstream and stream;
// Responses API: responses and responses-stream; Anthropic Messages:
// messages and messages-stream), plain requests (open loop at -rate) and
// streams (closed loop, -streams concurrent), each with money off (the
// model deployed free: true) and on (the "-paid" twin: a priced model and
// a key of a funded account, so that xroute holds, settles and writes the
// ledger on every request); then many-streams, -many-streams slow chat
// streams open at once (memory at scale). Each phase runs -rounds times
// with the targets interleaved (A B C A B C …); the report gives each
// target's medians and ranges, and opens with a table of xroute's ratios
// to the bare proxy against issue 22's targets.
//
// Targets: direct (the mock), proxy (the bare reverse proxy), xroute,
// xroute-info (xroute logging every request), xroute-translated and
// portkey. xroute's mock provider lists native_formats: [responses], so
// that it passes Responses requests through; xroute-translated is xroute
// without it, translating them into chat completions and the answer back
// into Responses events. portkey runs when node is installed: the bench
// installs npm @portkey-ai/gateway once into the user's cache dir, with
// @hono/node-server pinned to 1.13.5 and Portkey's one-line patch
// (portkey.go), and routes it by its x-portkey-provider and
// x-portkey-custom-host headers to the mocks.
//
// The Messages phases have an upstream of their own, the Anthropic mock
// (`xroute mock anthropic`, with the same -mock-* knobs): direct calls it,
// proxy is a second bare proxy in front of it, and xroute serves
// -messages-model from an anthropic provider pointing at it, passing the
// requests and the events through natively. xroute-translated serves that
// model from the OpenAI mock instead: it translates each Messages request
// into a chat completion and re-encodes the stream as Messages events.
// xroute-translated only runs in the Responses and Messages phases, where
// the routes differ.
//
// With -md, PNG charts (latency by percentile, completed requests per second;
// the first round) go to -charts, by default a directory named after the
// Markdown file (docs/benchmarks.md: docs/benchmarks/), and the Markdown
// links to them.
//
// Every server is a separate process started (and stopped) by the bench, so
// that its CPU time and peak RSS can be read from /proc, and runs in the
// bench's temp dir: nothing is written to the working directory. The load
// generator runs on the same machine and shares its cores with the servers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xroute/xroute/loadtest"
)

// config is the command line.
type config struct {
	duration        time.Duration
	warmup          time.Duration
	ramp            time.Duration
	drain           time.Duration
	rate            float64
	streams         int
	manyStreams     int
	manyTPS         float64
	manyTokens      int
	rounds          int
	portkeyVersion  string
	portkeyDir      string
	maxInFlight     int
	maxTokens       int
	streamMaxTokens int
	model           string
	messagesModel   string
	targets         []string
	phases          []string
	jsonOut         string
	mdOut           string
	chartsDir       string
	xrouteBin       string
	xrouteEnv       string
	mockBin         string
	mockArgs        string
	mockLatency     time.Duration
	mockTPS         int
	mockChunkTokens int
	keepTmp         bool
	quiet           bool
	timeout         time.Duration
}

const (
	targetDirect     = "direct"
	targetProxy      = "proxy"
	targetXroute     = "xroute"
	targetXrouteInfo = "xroute-info" // xroute with log level info: the cost of request logs
	// targetXrouteTranslated is xroute whose mock provider has no
	// native_formats: a Responses request goes through the chat pivot.
	targetXrouteTranslated = "xroute-translated"
	// targetPortkey is Portkey's open-source gateway (npm
	// @portkey-ai/gateway) run by node: a peer, when node is there.
	targetPortkey = "portkey"
)

func knownTargets() []string {
	return []string{targetDirect, targetProxy, targetXroute, targetXrouteInfo, targetXrouteTranslated, targetPortkey}
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var targets, phases string
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each phase against each target")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "warm-up before each measured run (not counted)")
	fs.DurationVar(&cfg.ramp, "ramp", -1, "stream phase: spread the streams' starts over this time (-1: one stream's expected length, at most a third of -duration)")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "time in-flight requests may take after a run's end before they are canceled")
	fs.Float64Var(&cfg.rate, "rate", 1000, "open-loop arrival rate of the non-streaming phase, requests/s")
	fs.IntVar(&cfg.streams, "streams", 500, "concurrent streams held open in the streaming phases")
	fs.IntVar(&cfg.manyStreams, "many-streams", 5000, "concurrent streams held open in the many-streams phase (memory at scale)")
	fs.Float64Var(&cfg.manyTPS, "many-streams-tps", 4, "many-streams: the mock's tokens per second for these streams (a #mock:tps directive in the prompt): long, slow streams, so that all of them are open at once")
	fs.IntVar(&cfg.manyTokens, "many-streams-tokens", 32, "many-streams: max_tokens of each stream")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds of every phase, the targets interleaved (A B C A B C …); the report gives medians and ranges")
	fs.StringVar(&cfg.portkeyVersion, "portkey-version", "1.15.2", "portkey target: the version of npm @portkey-ai/gateway")
	fs.StringVar(&cfg.portkeyDir, "portkey-dir", "", "portkey target: where it is installed (default: the user cache dir's xroute-bench/portkey-VERSION)")
	quick := fs.Bool("quick", false, "a short run for tests and smoke checks: durations, rates, streams and tokens cut down (flags given explicitly still win)")
	fs.IntVar(&cfg.maxInFlight, "max-inflight", 5000, "open loop: requests due beyond this many in flight are dropped (errors)")
	fs.IntVar(&cfg.maxTokens, "max-tokens", 16, "max_tokens of the non-streaming request")
	fs.IntVar(&cfg.streamMaxTokens, "stream-max-tokens", 64, "max_tokens (Responses: max_output_tokens) of the streaming requests")
	fs.StringVar(&cfg.model, "model", "gpt-4o-mini", "model name in the requests and the xroute config")
	fs.StringVar(&cfg.messagesModel, "messages-model", "claude-sonnet-4-5", "messages-stream: model name in the requests and the xroute config (must differ from -model)")
	fs.StringVar(&targets, "targets", "direct,proxy,xroute,xroute-translated,portkey", "targets, in order: direct, proxy, xroute, xroute-info, xroute-translated (Responses and Messages phases only), portkey (skipped when node or the package is not there)")
	fs.StringVar(&phases, "phases", strings.Join(knownPhases(), ","), "phases, in order: "+strings.Join(knownPhases(), ", "))
	fs.StringVar(&cfg.jsonOut, "json", "", "write the results as JSON to this file")
	fs.StringVar(&cfg.mdOut, "md", "", "write the Markdown report to this file too")
	fs.StringVar(&cfg.chartsDir, "charts", "", "write PNG charts to this directory and link them from the Markdown (default with -md: the -md path without its extension, e.g. docs/benchmarks/; \"-\": none)")
	fs.StringVar(&cfg.xrouteBin, "xroute-bin", "", "xroute binary to use instead of building ./cmd/xroute")
	fs.StringVar(&cfg.xrouteEnv, "xroute-env", "", "extra environment for xroute, space-separated KEY=VALUE")
	fs.StringVar(&cfg.mockBin, "mock-bin", "", "OpenAI mock binary taking the mock flags directly (default: \"xroute mock\", or ./loadtest/cmd/mock built when xroute does not build); the Anthropic mock is \"xroute mock anthropic\" or \"./loadtest/cmd/mock anthropic\"")
	fs.StringVar(&cfg.mockArgs, "mock-args", "", "extra flags of both mocks, space-separated (e.g. \"-fail-500 0.01\")")
	fs.DurationVar(&cfg.mockLatency, "mock-latency", 20*time.Millisecond, "mock: latency before the first byte")
	fs.IntVar(&cfg.mockTPS, "mock-tps", 200, "mock: tokens per second")
	fs.IntVar(&cfg.mockChunkTokens, "mock-chunk-tokens", 0, "mock: tokens per stream chunk (0: the mock's default)")
	fs.BoolVar(&cfg.keepTmp, "keep-tmp", false, "keep the temp dir (configs, databases, server logs)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no progress lines on stderr")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Hour, "hard limit on the whole bench")
	// Hidden mode: the bare reverse proxy, run by the bench itself.
	proxyOnly := fs.Bool("proxy-only", false, "internal: serve only the bare reverse proxy")
	listen := fs.String("listen", "127.0.0.1:0", "internal: -proxy-only listen address")
	upstream := fs.String("upstream", "", "internal: -proxy-only upstream URL")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *proxyOnly {
		return serveProxy(ctx, *listen, *upstream, stdout, stderr)
	}

	if *quick {
		quickMode(fs, &cfg)
	}
	cfg.targets = splitList(targets)
	cfg.phases = splitList(phases)
	if err := cfg.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	progress := func(format string, a ...any) {
		if !cfg.quiet {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}
	var progressW io.Writer = stderr
	if cfg.quiet {
		progressW = nil
	}

	b := &bench{cfg: cfg, progress: progress, progressW: progressW, procs: loadtest.NewProcReader("", nil)}
	report, runErr := b.run(ctx)
	if report != nil && len(report.Runs) > 0 {
		if err := writeReport(report, cfg, stdout); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

func (c *config) validate() error {
	known := knownTargets()
	for _, t := range c.targets {
		if !slices.Contains(known, t) {
			return fmt.Errorf("-targets: unknown target %q (known: %s)", t, strings.Join(known, ", "))
		}
	}
	for _, p := range c.phases {
		if !slices.Contains(knownPhases(), p) {
			return fmt.Errorf("-phases: unknown phase %q (known: %s)", p, strings.Join(knownPhases(), ", "))
		}
	}
	switch {
	case len(c.targets) == 0 || len(c.phases) == 0:
		return errors.New("-targets and -phases must not be empty")
	case c.duration <= 0 || c.warmup < 0:
		return errors.New("-duration must be > 0 and -warmup >= 0")
	case c.rate <= 0 || c.streams <= 0 || c.manyStreams <= 0 || c.manyTPS <= 0 || c.manyTokens <= 0:
		return errors.New("-rate, -streams, -many-streams, -many-streams-tps and -many-streams-tokens must be > 0")
	case c.rounds <= 0:
		return errors.New("-rounds must be > 0")
	case slices.ContainsFunc(c.phases, func(p string) bool { return specOf(p).api == apiMsgs }) && (c.messagesModel == "" || c.messagesModel == c.model):
		return errors.New("-messages-model must be set and differ from -model: xroute routes it to the Anthropic mock")
	}
	return nil
}

// quickMode cuts the knobs down for a run of seconds (-quick), leaving
// alone every flag given on the command line.
func quickMode(fs *flag.FlagSet, cfg *config) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, apply := range map[string]func(){
		"duration":            func() { cfg.duration = 500 * time.Millisecond },
		"warmup":              func() { cfg.warmup = 0 },
		"rate":                func() { cfg.rate = 40 },
		"streams":             func() { cfg.streams = 8 },
		"many-streams":        func() { cfg.manyStreams = 32 },
		"many-streams-tps":    func() { cfg.manyTPS = 400 },
		"many-streams-tokens": func() { cfg.manyTokens = 16 },
		"rounds":              func() { cfg.rounds = 1 },
		"max-inflight":        func() { cfg.maxInFlight = 200 },
		"stream-max-tokens":   func() { cfg.streamMaxTokens = 16 },
		"mock-latency":        func() { cfg.mockLatency = 2 * time.Millisecond },
		"mock-tps":            func() { cfg.mockTPS = 2000 },
		"drain":               func() { cfg.drain = 5 * time.Second },
		"timeout":             func() { cfg.timeout = 3 * time.Minute },
	} {
		if !set[name] {
			apply()
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// serveProxy is the -proxy-only mode.
func serveProxy(ctx context.Context, listen, upstream string, stdout, stderr io.Writer) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("-upstream: want an absolute URL, got %q", upstream)
	}
	return loadtest.ServeProxy(ctx, listen, u, stderr, func(a net.Addr) {
		fmt.Fprintf(stdout, "proxy listening on http://%s\n", a)
	})
}

func writeReport(r *loadtest.Report, cfg config, stdout io.Writer) error {
	// Charts first, so that the Markdown and the JSON link them. A chart
	// that fails is reported but does not stop the rest.
	var chartErr error
	if dir, link := chartsDir(cfg); dir != "" {
		chartErr = r.WriteCharts(dir, link)
	}
	md := r.Markdown()
	if _, err := io.WriteString(stdout, md); err != nil {
		return errors.Join(chartErr, fmt.Errorf("write report: %w", err))
	}
	if cfg.mdOut != "" {
		if err := writeFile(cfg.mdOut, withKept(cfg.mdOut, []byte(md))); err != nil {
			return errors.Join(chartErr, err)
		}
	}
	if cfg.jsonOut != "" {
		b, err := jsonIndent(r)
		if err != nil {
			return err
		}
		if err := writeFile(cfg.jsonOut, b); err != nil {
			return errors.Join(chartErr, err)
		}
	}
	return chartErr
}

// keptMarker starts the part of a Markdown report that this tool does not
// write (the tracing phase, measured by go test -bench): a new run keeps
// it after its own report.
const keptMarker = "<!-- kept: the sections below are written by hand from go test benchmarks; the bench tool keeps them -->"

// withKept is md followed by the kept part of the report at path, if it
// has one.
func withKept(path string, md []byte) []byte {
	old, err := os.ReadFile(path)
	if err != nil {
		return md
	}
	i := strings.Index(string(old), keptMarker)
	if i < 0 {
		return md
	}
	return append(append(md, '\n'), old[i:]...)
}

// chartsDir is where the charts go and how the Markdown links to that
// directory: -charts, else the -md path without its extension; "" for no
// charts (-charts -, or neither flag).
func chartsDir(cfg config) (dir, link string) {
	dir = cfg.chartsDir
	switch {
	case dir == "-":
		return "", ""
	case dir == "" && cfg.mdOut == "":
		return "", ""
	case dir == "":
		dir = strings.TrimSuffix(cfg.mdOut, filepath.Ext(cfg.mdOut))
		if dir == cfg.mdOut || filepath.Base(dir) == "" {
			dir = cfg.mdOut + "-charts"
		}
	}
	link = dir
	if cfg.mdOut != "" {
		if rel, err := filepath.Rel(filepath.Dir(cfg.mdOut), dir); err == nil {
			link = rel
		} else if abs, err := filepath.Abs(dir); err == nil {
			link = abs
		}
	}
	return dir, filepath.ToSlash(link)
}
