package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// upstreams are the mocks: the OpenAI one always, the Anthropic one when
// the messages-stream phase runs (else nil). The base URLs end in /v1.
type upstreams struct {
	openai, anthropic         *child
	openaiBase, anthropicBase string
}

// startServers starts the gateways of the targets, all up front so that
// they all see the same machine. An xroute that does not start is skipped
// (noted in the report); any other failure ends the bench.
func (b *bench) startServers(ctx context.Context, l *lab, report *loadtest.Report, xrouteBin string, up upstreams) ([]*server, error) {
	var servers []*server
	msgs := up.anthropic != nil && b.wantsAPI(apiMsgs)
	for _, name := range b.cfg.targets {
		if _, skip := report.Skipped[name]; skip || !b.wants(name) {
			continue
		}
		s := &server{upstream: up.openai}
		switch name {
		case targetDirect:
			s.target = loadtest.Target{Name: name, BaseURL: up.openaiBase, APIKey: mockKey}
			if msgs {
				s.messages = &server{upstream: up.anthropic, target: loadtest.Target{Name: name, BaseURL: up.anthropicBase, APIKey: mockKey}}
			}
		case targetProxy:
			c, base, err := l.startProxy(ctx, "proxy", strings.TrimSuffix(up.openaiBase, "/v1"))
			if err != nil {
				return nil, err
			}
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey}
			if msgs {
				c, base, err := l.startProxy(ctx, "proxy-anthropic", strings.TrimSuffix(up.anthropicBase, "/v1"))
				if err != nil {
					return nil, err
				}
				s.messages = &server{gateway: c, upstream: up.anthropic, target: loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey}}
			}
		case targetXroute, targetXrouteInfo, targetXrouteTranslated:
			x := xrouteSetup{name: name, logLevel: "warn", mockBase: up.openaiBase, nativeResponses: name != targetXrouteTranslated}
			if name == targetXrouteInfo {
				x.logLevel = "info"
			}
			if msgs {
				x.messagesModel = b.cfg.messagesModel
				if name != targetXrouteTranslated {
					x.anthropicBase = strings.TrimSuffix(up.anthropicBase, "/v1")
				}
			}
			c, base, key, err := l.startXroute(ctx, xrouteBin, x)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				b.progress("bench: %v", err)
				report.Skipped[name] = "did not start: " + firstLine(err.Error())
				continue
			}
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: key}
			if x.anthropicBase != "" {
				s.messages = &server{gateway: c, upstream: up.anthropic, target: s.target}
			}
		case targetPortkey:
			c, base, note, err := l.startPortkey(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				b.progress("bench: portkey: %v", err)
				report.Skipped[name] = firstLine(err.Error())
				continue
			}
			report.Notes = append(report.Notes, note)
			// Portkey routes by headers: the provider, and a custom host
			// (the mock) instead of the provider's public API.
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey, Header: http.Header{
				"X-Portkey-Provider":    {"openai"},
				"X-Portkey-Custom-Host": {up.openaiBase},
			}}
			if msgs {
				s.messages = &server{gateway: c, upstream: up.anthropic, target: loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey, Header: http.Header{
					"X-Portkey-Provider":    {"anthropic"},
					"X-Portkey-Custom-Host": {up.anthropicBase},
				}}}
			}
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// cpuPairs are the gateway CPU-per-request ratios the report derives.
func cpuPairs() [][2]string {
	return [][2]string{
		{targetXroute, targetProxy}, {targetXrouteInfo, targetProxy}, {targetXrouteInfo, targetXroute},
		{targetXrouteTranslated, targetProxy}, {targetXrouteTranslated, targetXroute},
		{targetPortkey, targetProxy}, {targetXroute, targetPortkey},
	}
}

func (b *bench) knobs() map[string]string {
	c := b.cfg
	k := map[string]string{
		"duration":          c.duration.String(),
		"warmup":            c.warmup.String(),
		"rate":              strconv.FormatFloat(c.rate, 'f', -1, 64),
		"streams":           strconv.Itoa(c.streams),
		"many_streams":      fmt.Sprintf("%d (max_tokens %d at %g tokens/s)", c.manyStreams, c.manyTokens, c.manyTPS),
		"rounds":            strconv.Itoa(c.rounds),
		"priced_models":     fmt.Sprintf("%s, %s: input %s, output %s USD/Mtok", pricedModel(c.model), pricedModel(c.messagesModel), benchInputPrice, benchOutputPrice),
		"stream_ramp":       b.ramp(phaseStream, c.duration).String(),
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
	if b.wantsAPI(apiMsgs) {
		k["messages_model"] = c.messagesModel
	}
	if slices.Contains(c.targets, targetPortkey) {
		k["portkey"] = "@portkey-ai/gateway@" + c.portkeyVersion
	}
	return k
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

// phaseNote says under a phase's heading what it sends and what each
// target does with it.
func (b *bench) phaseNote(phase string) string {
	spec := specOf(phase)
	var notes []string
	switch {
	case spec.many:
		notes = append(notes, fmt.Sprintf("The stream phase's request with %d concurrent streams: memory at scale "+
			"(the gateways' peak RSS is the number to read).", b.cfg.manyStreams))
	case spec.api == apiResp && spec.stream:
		notes = append(notes, b.responsesPhaseNote())
	case spec.api == apiMsgs && spec.stream:
		notes = append(notes, b.messagesPhaseNote())
	case spec.api == apiResp:
		notes = append(notes, fmt.Sprintf("POST /v1/responses, `store: false`, `max_output_tokens: %d`, not streamed; the "+
			"routes are those of responses-stream (xroute: native passthrough; xroute-translated: the chat pivot).", b.cfg.maxTokens))
	case spec.api == apiMsgs:
		notes = append(notes, fmt.Sprintf("POST /v1/messages, `max_tokens: %d`, model `%s`, not streamed; the routes are "+
			"those of messages-stream (xroute: native passthrough to the Anthropic mock; xroute-translated: the chat pivot "+
			"to the OpenAI mock).", b.cfg.maxTokens, b.cfg.messagesModel))
	}
	if spec.paid {
		notes = append(notes, fmt.Sprintf("**Money on**: the model is `%s` (`%s` for Messages), deployed with a price "+
			"(input %s, output %s USD per million tokens) and asked for with a key of a funded account, so that xroute holds "+
			"credit before each request, settles it and writes the ledger after; the other targets send the same request "+
			"(the mock ignores the name).", pricedModel(b.cfg.model), pricedModel(b.cfg.messagesModel), benchInputPrice, benchOutputPrice))
	}
	return strings.Join(notes, " ")
}

// responsesPhaseNote says under the responses-stream heading what it sends
// and what each xroute does with it.
func (b *bench) responsesPhaseNote() string {
	return fmt.Sprintf("POST /v1/responses, `stream: true`, `store: false`, `max_output_tokens: %d`; TTFT is the first "+
		"`response.output_text.delta`. direct and proxy: the mock's own Responses API. xroute: native passthrough "+
		"(its mock provider lists `native_formats: [responses]`: the body goes to the mock's /v1/responses with only "+
		"the model rewritten, and the events come back as they are). xroute-translated: xroute without native_formats, "+
		"which translates the request into the chat-completions pivot, streams the mock's /v1/chat/completions and "+
		"re-encodes the answer as Responses events. Every stream is checked: event order (created, in_progress, "+
		"output item, content part, deltas, done events, completed last), `sequence_number` strictly increasing, "+
		"deltas = `output_text.done` text = the completed response's text, usage in `response.completed`.",
		b.cfg.streamMaxTokens)
}

// messagesPhaseNote says under the messages-stream heading what it sends
// and what each target does with it.
func (b *bench) messagesPhaseNote() string {
	return fmt.Sprintf("POST /v1/messages, `stream: true`, `max_tokens: %d`, model `%s`, headers `x-api-key` and "+
		"`anthropic-version: %s`; TTFT is the first `text_delta`. direct: the Anthropic mock (`xroute mock anthropic`, "+
		"same knobs as the OpenAI mock); proxy: a bare proxy of its own in front of it. xroute: native passthrough "+
		"(the model is deployed on an `anthropic` provider pointing at the Anthropic mock: the body goes upstream with "+
		"only the model rewritten, and the events come back as they are). xroute-translated: the model is deployed on "+
		"the OpenAI mock, so xroute translates the request into the chat-completions pivot, streams the OpenAI mock's "+
		"/v1/chat/completions and re-encodes the answer as Messages events (its mock CPU column is the OpenAI mock's). "+
		"Every stream is checked: message_start first and message_stop last, content_block_start/stop paired by index, "+
		"the text_deltas' text = the mock's, a stop_reason and usage in message_delta, `usage.output_tokens` against "+
		"the text_delta count.",
		b.cfg.streamMaxTokens, b.cfg.messagesModel, loadtest.AnthropicVersion)
}

// probeStream reads two streams of a streaming phase from the mock
// directly to learn what a good stream looks like: if the text is the same
// both times it becomes the expected content (catching reordered chunks),
// and the ratio of usage tokens to content chunks sets the chunk-count
// check.
func (b *bench) probeStream(ctx context.Context, mockBase, phase string) (loadtest.StreamCheck, string) {
	check := loadtest.StreamCheck{ExpectUsage: true}
	chunk, tokensField := "chunk", "usage.completion_tokens"
	switch specOf(phase).api {
	case apiResp:
		chunk, tokensField = "output_text delta", "usage.output_tokens"
	case apiMsgs:
		chunk, tokensField = "text_delta", "message_delta usage.output_tokens"
	}
	c := loadtest.NewClient(loadtest.Target{Name: "probe", BaseURL: mockBase, APIKey: mockKey}, 2)
	defer c.CloseIdle()
	req := b.request(phase, loadtest.StreamCheck{ExpectUsage: true, CollectContent: true})
	var texts [2]string
	var chunks, tokens int
	for i := range texts {
		var o loadtest.Outcome
		c.Do(ctx, &req, time.Now(), &o)
		if o.ErrKind != "" {
			return check, fmt.Sprintf("probe stream from the mock failed (%s): content and %s-count checks off", o.ErrKind, chunk)
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
		notes = append(notes, fmt.Sprintf("%s count checked against %s (%d tokens in %d %ss: %d token(s)/%s)",
			chunk, tokensField, tokens, chunks, chunk, check.TokensPerChunk, chunk))
	} else {
		notes = append(notes, fmt.Sprintf("%s=%d does not match %d %ss: %s-count check off", tokensField, tokens, chunks, chunk, chunk))
	}
	return check, strings.Join(notes, "; ")
}

// smokePhases are the phases a target's smoke test tries: the money-off
// chat ones for every target that runs them (whatever -phases says, as
// before), the others when they run.
func (b *bench) smokePhases(target string) []string {
	var ps []string
	for _, p := range knownPhases() {
		if runsIn(target, p) && (p == phaseNonStream || p == phaseStream || b.wantsPhase(p)) {
			ps = append(ps, p)
		}
	}
	return ps
}

// smoke sends one request of a phase to a target.
func (b *bench) smoke(ctx context.Context, t loadtest.Target, phase string) error {
	c := loadtest.NewClient(t, 2)
	defer c.CloseIdle()
	req := b.request(phase, b.checks[phase])
	var o loadtest.Outcome
	c.Do(ctx, &req, time.Now(), &o)
	if o.ErrKind != "" {
		if o.Stream.Unexpected != "" {
			return fmt.Errorf("%s request: %s (%s)", phase, o.ErrKind, o.Stream.Unexpected)
		}
		return fmt.Errorf("%s request: %s", phase, o.ErrKind)
	}
	return nil
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
