package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest"
)

// bench runs the phases against the targets and assembles the report.
type bench struct {
	cfg       config
	progress  func(string, ...any)
	progressW io.Writer
	procs     *loadtest.ProcReader
	checks    map[string]loadtest.StreamCheck // by streaming phase, from the probes
}

// wants reports whether target is asked for and takes part in a phase
// asked for.
func (b *bench) wants(target string) bool {
	if !slices.Contains(b.cfg.targets, target) {
		return false
	}
	for _, p := range b.cfg.phases {
		if runsIn(target, p) {
			return true
		}
	}
	return false
}

func (b *bench) wantsPhase(phase string) bool { return slices.Contains(b.cfg.phases, phase) }

// skipKey is the key of report.Skipped for target in phase: the target
// itself (phase ""), or "target (phase)" when only that phase of the
// target is off.
func skipKey(target, phase string) string {
	if phase == "" {
		return target
	}
	return target + " (" + phase + ")"
}

func skipped(r *loadtest.Report, target, phase string) bool {
	_, all := r.Skipped[target]
	_, one := r.Skipped[skipKey(target, phase)]
	return all || one
}

func (b *bench) run(ctx context.Context) (*loadtest.Report, error) {
	report := &loadtest.Report{
		Title:   "xroute benchmark: gateway overhead over the mock upstream",
		Env:     loadtest.CurrentEnv(time.Now()),
		Knobs:   b.knobs(),
		Skipped: map[string]string{},
	}
	defer func() { report.Env.LoadAvgEnd = loadtest.LoadAverage() }()
	if f := strings.Fields(report.Env.LoadAvgStart); len(f) > 0 {
		if load, err := strconv.ParseFloat(f[0], 64); err == nil && load > float64(report.Env.NumCPU)/2 {
			b.progress("bench: warning: host load average is %.2f on %d CPU(s): other work will skew the numbers", load, report.Env.NumCPU)
		}
	}
	report.Env.Note = fmt.Sprintf("the load generator runs on the same %d CPU(s) as the servers under test "+
		"(its own CPU time is in the loadgen column); read the numbers as relative, not as capacity", report.Env.NumCPU)

	l, err := newLab(b.cfg, b.progress)
	if err != nil {
		return nil, err
	}
	defer l.close(b.cfg.keepTmp)

	// Binaries: xroute (built unless given), the mock (xroute mock, or a
	// fallback when xroute does not build yet).
	xroutes := []string{targetXroute, targetXrouteInfo, targetXrouteTranslated}
	needXroute := slices.ContainsFunc(xroutes, b.wants)
	var xrouteBin string
	if needXroute || b.cfg.mockBin == "" {
		xrouteBin, err = l.buildXroute(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			b.progress("bench: %v", err)
			for _, t := range xroutes {
				if b.wants(t) {
					report.Skipped[t] = "xroute did not build: " + firstLine(err.Error())
				}
			}
		}
	}
	mockBin, mockPre, err := l.mockCommand(ctx, xrouteBin)
	if err != nil {
		return report, err
	}
	var up upstreams
	up.openai, up.openaiBase, err = l.startMock(ctx, "mock", mockBin, mockPre)
	if err != nil {
		return report, err
	}
	if b.wantsAPI(apiMsgs) {
		bin, pre, err := l.anthropicMockCommand(ctx, xrouteBin)
		if err != nil {
			return report, err
		}
		up.anthropic, up.anthropicBase, err = l.startMock(ctx, "mock-anthropic", bin, pre)
		if err != nil {
			return report, err
		}
	}

	servers, err := b.startServers(ctx, l, report, xrouteBin, up)
	if err != nil {
		return report, err
	}

	// Probes: what a good stream looks like, read from the mock directly.
	// The chat one always (the smoke tests stream chat), the others when
	// their phase runs.
	b.checks = map[string]loadtest.StreamCheck{}
	for _, phase := range knownPhases() {
		if !streaming(phase) || (phase != phaseStream && !b.wantsPhase(phase)) {
			continue
		}
		base := up.openaiBase
		if specOf(phase).api == apiMsgs {
			base = up.anthropicBase
		}
		check, note := b.probeStream(ctx, base, phase)
		b.checks[phase] = check
		if note != "" {
			b.progress("bench: %s check: %s", phase, note)
			report.Notes = append(report.Notes, phase+" check: "+note)
		}
	}
	report.PhaseNotes = map[string]string{}
	for _, phase := range b.cfg.phases {
		report.PhaseNotes[phase] = b.phaseNote(phase)
	}
	for _, s := range servers {
		for _, phase := range b.smokePhases(s.target.Name) {
			if skipped(report, s.target.Name, phase) {
				continue
			}
			if err := b.smoke(ctx, s.in(phase).target, phase); err != nil {
				if ctx.Err() != nil {
					return report, err
				}
				b.progress("bench: smoke test of %s (%s) failed: %v", s.target.Name, phase, err)
				// A chat failure takes the target out of every phase,
				// another only out of its own.
				key := skipKey(s.target.Name, phase)
				if chatPhase(phase) {
					key = s.target.Name
				}
				report.Skipped[key] = "smoke test failed: " + firstLine(err.Error())
			}
		}
	}
	for _, phase := range []string{phaseResponsesStream, phaseMessagesStream} {
		if !b.wantsPhase(phase) {
			continue
		}
		if note := b.checkRoutes(ctx, phase, servers, report); note != "" {
			b.progress("bench: %s", note)
			report.Notes = append(report.Notes, note)
		}
	}

	// Each phase runs its rounds with the targets interleaved (A B C A
	// B C …), so that a drift of the machine's load over the bench falls
	// on every target alike.
	for _, phase := range b.cfg.phases {
		for round := 1; round <= b.cfg.rounds; round++ {
			for _, s := range servers {
				if !runsIn(s.target.Name, phase) || skipped(report, s.target.Name, phase) {
					continue
				}
				run, err := b.measure(ctx, phase, round, s.in(phase))
				if run != nil && err != nil {
					run.Note = "run incomplete: " + firstLine(err.Error())
				}
				if run != nil {
					report.Runs = append(report.Runs, *run)
				}
				if err != nil {
					b.derive(report)
					return report, fmt.Errorf("%s against %s (round %d): %w", phase, s.target.Name, round, err)
				}
			}
		}
	}
	b.derive(report)
	if slices.ContainsFunc(b.cfg.phases, func(p string) bool { return specOf(p).paid }) {
		for _, name := range b.cfg.targets {
			a, ok := l.accounts[name]
			if !ok {
				continue
			}
			bal, err := a.balance(ctx)
			if err != nil {
				bal = "unknown: " + firstLine(err.Error())
			}
			report.Notes = append(report.Notes, fmt.Sprintf("%s: the bench account, funded with %s USD, after the run: %s", name, benchCredit, bal))
		}
	}
	return report, nil
}

// derive fills the report's derived numbers and the verdict table.
func (b *bench) derive(report *loadtest.Report) {
	report.Derive(targetDirect, cpuPairs())
	vs := verdicts(report)
	report.Verdicts = vs
	report.Lead = verdictMarkdown(vs, b.cfg.rounds)
}

// wantsAPI reports whether a phase of api runs.
func (b *bench) wantsAPI(api string) bool {
	return slices.ContainsFunc(b.cfg.phases, func(p string) bool { return specOf(p).api == api })
}

// request is the request of a phase; the streaming ones carry check.
// A money-on phase asks for the priced twin of the model.
func (b *bench) request(phase string, check loadtest.StreamCheck) loadtest.Request {
	const basePrompt = "Say hello in a few words"
	spec := specOf(phase)
	model, msgsModel := b.cfg.model, b.cfg.messagesModel
	if spec.paid {
		model, msgsModel = pricedModel(model), pricedModel(msgsModel)
	}
	maxTokens := b.cfg.maxTokens
	if spec.stream {
		maxTokens = b.cfg.streamMaxTokens
	}
	prompt := basePrompt
	if spec.many {
		// Long, slow streams (the mock paces them as the directive
		// says), so that -many-streams are open at once without
		// thousands of new requests a second.
		maxTokens = b.cfg.manyTokens
		prompt += " #mock:tps=" + strconv.FormatFloat(b.cfg.manyTPS, 'f', -1, 64)
	}
	var req loadtest.Request
	switch spec.api {
	case apiResp:
		req = loadtest.ResponsesRequest(model, prompt, maxTokens, spec.stream)
	case apiMsgs:
		req = loadtest.MessagesRequest(msgsModel, prompt, maxTokens, spec.stream)
	default:
		req = loadtest.ChatRequest(model, prompt, maxTokens, spec.stream)
	}
	if spec.stream {
		req.Check = check
	}
	return req
}

// measure runs one phase against one server: warm-up, then the measured run
// bracketed by /proc readings of the gateway, the mock and the bench itself.
func (b *bench) measure(ctx context.Context, phase string, round int, s *server) (*loadtest.Run, error) {
	req := b.request(phase, b.checks[phase])
	workers := b.cfg.streams
	if specOf(phase).many {
		workers = b.cfg.manyStreams
	}
	conns := max(workers, b.cfg.maxInFlight)
	c := loadtest.NewClient(s.target, conns)
	defer c.CloseIdle()

	runOnce := func(label string, d time.Duration) (*loadtest.Result, error) {
		r := loadtest.NewRunner(c, &req, label, b.progressW)
		if streaming(phase) {
			return r.Closed(ctx, loadtest.ClosedLoop{Workers: workers, Duration: d, Drain: b.cfg.drain, Ramp: b.ramp(phase, d)})
		}
		return r.Open(ctx, loadtest.OpenLoop{Rate: b.cfg.rate, Duration: d, MaxInFlight: b.cfg.maxInFlight, Drain: b.cfg.drain})
	}
	if b.cfg.warmup > 0 {
		b.progress("bench: %s/%s round %d: warm-up %v", phase, s.target.Name, round, b.cfg.warmup)
		if _, err := runOnce(fmt.Sprintf("[%s %s r%d warm-up]", phase, s.target.Name, round), b.cfg.warmup); err != nil {
			return nil, err
		}
	}

	type watched struct {
		name, role string
		pid        int
		before     loadtest.ProcSample
	}
	var ws []*watched
	if s.gateway != nil {
		ws = append(ws, &watched{name: s.gateway.name, role: "gateway", pid: s.gateway.PID()})
	}
	ws = append(ws, &watched{name: s.upstream.name, role: "upstream", pid: s.upstream.PID()},
		&watched{name: "bench", role: "loadgen", pid: os.Getpid()})
	for _, w := range ws {
		if w.role != "loadgen" {
			_ = b.procs.ResetPeakRSS(w.pid) // best effort: without it the peak is the lifetime peak
		}
		before, err := b.procs.Read(w.pid)
		if err != nil {
			return nil, err
		}
		w.before = before
	}

	b.progress("bench: %s/%s round %d: measuring %v", phase, s.target.Name, round, b.cfg.duration)
	res, err := runOnce(fmt.Sprintf("[%s %s r%d]", phase, s.target.Name, round), b.cfg.duration)
	if res == nil {
		return nil, err
	}
	res.Target, res.Phase = s.target.Name, phase
	run := &loadtest.Run{Round: round, Result: res}
	for _, w := range ws {
		after, perr := b.procs.Read(w.pid)
		if perr != nil {
			return run, errors.Join(err, perr)
		}
		run.Procs = append(run.Procs, loadtest.Usage(w.name, w.role, w.pid, w.before, after, res.Completed))
	}
	if s.gateway != nil && s.gateway.exited() {
		err = errors.Join(err, fmt.Errorf("%s exited during the run: %v; log:\n%s", s.gateway.name, s.gateway.err, s.gateway.logTail()))
	}
	if s.upstream.exited() {
		err = errors.Join(err, fmt.Errorf("mock exited during the run: %v; log:\n%s", s.upstream.err, s.upstream.logTail()))
	}
	// Let the servers settle (GC, closing connections) before the next run.
	c.CloseIdle()
	runtime.GC()
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
	}
	return run, err
}

// ramp is how long a streaming run spreads its workers' starts: -ramp, or
// by default the expected length of one stream (mock latency plus tokens at
// the mock's speed), at most a third of the run.
func (b *bench) ramp(phase string, run time.Duration) time.Duration {
	if b.cfg.ramp >= 0 {
		return b.cfg.ramp
	}
	tokens, tps := float64(b.cfg.streamMaxTokens), float64(b.cfg.mockTPS)
	if specOf(phase).many {
		tokens, tps = float64(b.cfg.manyTokens), b.cfg.manyTPS
	}
	stream := b.cfg.mockLatency
	if tps > 0 {
		stream += time.Duration(tokens / tps * float64(time.Second))
	}
	return min(stream, run/3)
}

// firstLine squeezes an error message onto one line for the report.
func firstLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "# ") {
			parts = append(parts, l)
		}
	}
	line := strings.Join(parts, " | ")
	if len(line) > 400 {
		line = line[:400] + "…"
	}
	return line
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return append(b, '\n'), nil
}

func writeFile(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
