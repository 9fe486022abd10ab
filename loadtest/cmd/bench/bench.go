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
}

func (b *bench) wants(target string) bool { return slices.Contains(b.cfg.targets, target) }

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
	needXroute := b.wants(targetXroute) || b.wants(targetXrouteInfo)
	var xrouteBin string
	if needXroute || b.cfg.mockBin == "" {
		xrouteBin, err = l.buildXroute(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			b.progress("bench: %v", err)
			for _, t := range []string{targetXroute, targetXrouteInfo} {
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
	mock, mockBase, err := l.startMock(ctx, mockBin, mockPre)
	if err != nil {
		return report, err
	}

	servers, err := b.startServers(ctx, l, report, xrouteBin, mock, mockBase)
	if err != nil {
		return report, err
	}

	streamCheck, note := b.probeStream(ctx, mockBase)
	if note != "" {
		b.progress("bench: %s", note)
		report.Notes = append(report.Notes, "stream check: "+note)
	}
	for _, s := range servers {
		if err := b.smoke(ctx, s.target, streamCheck); err != nil {
			if ctx.Err() != nil {
				return report, err
			}
			b.progress("bench: smoke test of %s failed: %v", s.target.Name, err)
			report.Skipped[s.target.Name] = "smoke test failed: " + firstLine(err.Error())
		}
	}

	for _, phase := range b.cfg.phases {
		for _, s := range servers {
			if _, skip := report.Skipped[s.target.Name]; skip {
				continue
			}
			run, err := b.measure(ctx, phase, s, streamCheck)
			if run != nil && err != nil {
				run.Note = "run incomplete: " + firstLine(err.Error())
			}
			if run != nil {
				report.Runs = append(report.Runs, *run)
			}
			if err != nil {
				report.Derive(targetDirect, cpuPairs())
				return report, fmt.Errorf("%s against %s: %w", phase, s.target.Name, err)
			}
		}
	}
	report.Derive(targetDirect, cpuPairs())
	return report, nil
}

// startServers starts the gateways of the targets, all up front so that
// they all see the same machine. An xroute that does not start is skipped
// (noted in the report); any other failure ends the bench.
func (b *bench) startServers(ctx context.Context, l *lab, report *loadtest.Report, xrouteBin string, mock *child, mockBase string) ([]server, error) {
	var servers []server
	for _, name := range b.cfg.targets {
		if _, skip := report.Skipped[name]; skip {
			continue
		}
		s := server{upstream: mock}
		switch name {
		case targetDirect:
			s.target = loadtest.Target{Name: name, BaseURL: mockBase, APIKey: mockKey}
		case targetProxy:
			c, base, err := l.startProxy(ctx, strings.TrimSuffix(mockBase, "/v1"))
			if err != nil {
				return nil, err
			}
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey}
		case targetXroute, targetXrouteInfo:
			level := "warn"
			if name == targetXrouteInfo {
				level = "info"
			}
			c, base, key, err := l.startXroute(ctx, name, xrouteBin, level, mockBase)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				b.progress("bench: %v", err)
				report.Skipped[name] = "did not start: " + firstLine(err.Error())
				continue
			}
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: key}
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// cpuPairs are the gateway CPU-per-request ratios the report derives.
func cpuPairs() [][2]string {
	return [][2]string{{targetXroute, targetProxy}, {targetXrouteInfo, targetProxy}, {targetXrouteInfo, targetXroute}}
}

func (b *bench) knobs() map[string]string {
	c := b.cfg
	k := map[string]string{
		"duration":          c.duration.String(),
		"warmup":            c.warmup.String(),
		"rate":              strconv.FormatFloat(c.rate, 'f', -1, 64),
		"streams":           strconv.Itoa(c.streams),
		"stream_ramp":       b.ramp(c.duration).String(),
		"max_inflight":      strconv.Itoa(c.maxInFlight),
		"max_tokens":        strconv.Itoa(c.maxTokens),
		"stream_max_tokens": strconv.Itoa(c.streamMaxTokens),
		"mock_latency":      c.mockLatency.String(),
		"mock_tokens_per_s": strconv.Itoa(c.mockTPS),
		"targets":           strings.Join(c.targets, ","),
		"xroute_log_level":  "warn (xroute-info: info)",
	}
	if c.mockChunkTokens > 0 {
		k["mock_chunk_tokens"] = strconv.Itoa(c.mockChunkTokens)
	}
	if c.mockArgs != "" {
		k["mock_args"] = c.mockArgs
	}
	return k
}

func (b *bench) request(phase string, check loadtest.StreamCheck) loadtest.Request {
	const prompt = "Say hello in a few words"
	if phase == phaseStream {
		req := loadtest.ChatRequest(b.cfg.model, prompt, b.cfg.streamMaxTokens, true)
		req.Check = check
		return req
	}
	return loadtest.ChatRequest(b.cfg.model, prompt, b.cfg.maxTokens, false)
}

// probeStream reads two streams from the mock directly to learn what a good
// stream looks like: if the text is the same both times it becomes the
// expected content (catching reordered chunks), and the ratio of usage
// tokens to content chunks sets the chunk-count check.
func (b *bench) probeStream(ctx context.Context, mockBase string) (loadtest.StreamCheck, string) {
	check := loadtest.StreamCheck{ExpectUsage: true}
	c := loadtest.NewClient(loadtest.Target{Name: "probe", BaseURL: mockBase, APIKey: mockKey}, 2)
	defer c.CloseIdle()
	req := b.request(phaseStream, loadtest.StreamCheck{ExpectUsage: true, CollectContent: true})
	var texts [2]string
	var chunks, tokens int
	for i := range texts {
		var o loadtest.Outcome
		c.Do(ctx, &req, time.Now(), &o)
		if o.ErrKind != "" {
			return check, fmt.Sprintf("probe stream from the mock failed (%s): content and chunk-count checks off", o.ErrKind)
		}
		texts[i] = string(o.Stream.Content)
		chunks, tokens = o.Stream.ContentChunks, o.Stream.UsageTokens
	}
	var notes []string
	if texts[0] == texts[1] && texts[0] != "" {
		check.ExpectContent = texts[0]
		notes = append(notes, fmt.Sprintf("content checked against the mock's deterministic text (%d bytes)", len(texts[0])))
	} else {
		notes = append(notes, "mock text varies between requests: content check off")
	}
	for k := 1; k <= max(tokens, 1) && chunks > 0; k++ {
		if (tokens+k-1)/k == chunks {
			check.TokensPerChunk = k
			break
		}
	}
	if check.TokensPerChunk > 0 {
		notes = append(notes, fmt.Sprintf("chunk count checked against usage.completion_tokens (%d tokens in %d chunks: %d token(s)/chunk)", tokens, chunks, check.TokensPerChunk))
	} else {
		notes = append(notes, fmt.Sprintf("usage.completion_tokens=%d does not match %d chunks: chunk-count check off", tokens, chunks))
	}
	return check, strings.Join(notes, "; ")
}

// smoke sends one non-streaming and one streaming request to a target.
func (b *bench) smoke(ctx context.Context, t loadtest.Target, check loadtest.StreamCheck) error {
	c := loadtest.NewClient(t, 2)
	defer c.CloseIdle()
	for _, phase := range []string{phaseNonStream, phaseStream} {
		req := b.request(phase, check)
		var o loadtest.Outcome
		c.Do(ctx, &req, time.Now(), &o)
		if o.ErrKind != "" {
			return fmt.Errorf("%s request: %s", phase, o.ErrKind)
		}
	}
	return nil
}

// measure runs one phase against one server: warm-up, then the measured run
// bracketed by /proc readings of the gateway, the mock and the bench itself.
func (b *bench) measure(ctx context.Context, phase string, s server, check loadtest.StreamCheck) (*loadtest.Run, error) {
	req := b.request(phase, check)
	conns := max(b.cfg.streams, b.cfg.maxInFlight)
	c := loadtest.NewClient(s.target, conns)
	defer c.CloseIdle()

	runOnce := func(label string, d time.Duration) (*loadtest.Result, error) {
		r := loadtest.NewRunner(c, &req, label, b.progressW)
		if phase == phaseStream {
			return r.Closed(ctx, loadtest.ClosedLoop{Workers: b.cfg.streams, Duration: d, Drain: b.cfg.drain, Ramp: b.ramp(d)})
		}
		return r.Open(ctx, loadtest.OpenLoop{Rate: b.cfg.rate, Duration: d, MaxInFlight: b.cfg.maxInFlight, Drain: b.cfg.drain})
	}
	if b.cfg.warmup > 0 {
		b.progress("bench: %s/%s: warm-up %v", phase, s.target.Name, b.cfg.warmup)
		if _, err := runOnce(fmt.Sprintf("[%s %s warm-up]", phase, s.target.Name), b.cfg.warmup); err != nil {
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

	b.progress("bench: %s/%s: measuring %v", phase, s.target.Name, b.cfg.duration)
	res, err := runOnce(fmt.Sprintf("[%s %s]", phase, s.target.Name), b.cfg.duration)
	if res == nil {
		return nil, err
	}
	res.Target, res.Phase = s.target.Name, phase
	run := &loadtest.Run{Result: res}
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
func (b *bench) ramp(run time.Duration) time.Duration {
	if b.cfg.ramp >= 0 {
		return b.cfg.ramp
	}
	stream := b.cfg.mockLatency
	if b.cfg.mockTPS > 0 {
		stream += time.Duration(float64(b.cfg.streamMaxTokens) / float64(b.cfg.mockTPS) * float64(time.Second))
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
