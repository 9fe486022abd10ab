package main

import (
	"strings"
	"testing"

	"github.com/xroute/xroute/loadtest"
)

// fakeRun is one measured run for the verdict tests: latency p50/p99, TTFT
// p99 (0: not a stream), gateway CPU µs per request and peak RSS MiB (0:
// no gateway).
func fakeRun(phase, target string, round int, p50, p99, ttft99, cpu, rssMiB float64) loadtest.Run {
	res := &loadtest.Result{Phase: phase, Target: target, Completed: 1000,
		Latency: loadtest.Summary{Count: 1000, P50Ms: p50, P99Ms: p99}}
	if ttft99 > 0 {
		res.TTFT = &loadtest.Summary{Count: 1000, P50Ms: ttft99 / 2, P99Ms: ttft99}
		res.Streams = &loadtest.StreamCounts{Total: 1000, Valid: 1000}
	}
	r := loadtest.Run{Round: round, Result: res}
	if cpu > 0 {
		r.Procs = []loadtest.ProcUsage{{Role: "gateway", CPUMicrosPerOp: cpu, PeakRSSBytes: int64(rssMiB * (1 << 20))}}
	}
	return r
}

func TestVerdicts(t *testing.T) {
	r := &loadtest.Report{}
	for round := 1; round <= 3; round++ {
		f := float64(round)
		r.Runs = append(r.Runs,
			// Money off, plain: xroute 1.05× (pass).
			fakeRun(phaseNonStream, targetDirect, round, 20, 22, 0, 0, 0),
			fakeRun(phaseNonStream, targetProxy, round, 20.4, 23, 0, 100*f, 10),
			fakeRun(phaseNonStream, targetXroute, round, 20.6, 24, 0, 105*f, 90),
			fakeRun(phaseNonStream, targetPortkey, round, 25, 30, 0, 300*f, 100),
			// Money on, stream: 1.15× is within 1.20, TTFT p99 +2 ms is not.
			fakeRun(phaseStream+paidSuffix, targetDirect, round, 300, 310, 60, 0, 0),
			fakeRun(phaseStream+paidSuffix, targetProxy, round, 300, 311, 61, 1000, 80),
			fakeRun(phaseStream+paidSuffix, targetXroute, round, 300, 312, 63, 1150, 140),
			// Many streams: RSS 1.25×; no CPU target.
			fakeRun(phaseManyStreams, targetDirect, round, 8000, 8100, 100, 0, 0),
			fakeRun(phaseManyStreams, targetProxy, round, 8000, 8100, 100.5, 300, 400),
			fakeRun(phaseManyStreams, targetXroute, round, 8000, 8100, 101, 600, 500),
			// No proxy: no row.
			fakeRun(phaseMessages, targetXroute, round, 20, 21, 0, 100, 90),
		)
	}
	r.Derive(targetDirect, cpuPairs())
	vs := verdicts(r)
	if len(vs) != 3 {
		t.Fatalf("verdicts = %+v, want 3 rows", vs)
	}
	plain, paid, many := vs[0], vs[1], vs[2]
	if plain.Phase != phaseNonStream || plain.Money != "off" || plain.CPUTarget != cpuTargetMoneyOff ||
		plain.CPURatio.N != 3 || plain.CPURatio.Min != 1.05 || plain.CPURatio.Max != 1.05 || len(plain.Misses) != 0 {
		t.Errorf("nonstream verdict = %+v", plain)
	}
	if plain.PortkeyCPURatio.Median != 3 || plain.TTFTOverProxyMs != nil {
		t.Errorf("nonstream: portkey ratio %+v, TTFT %v", plain.PortkeyCPURatio, plain.TTFTOverProxyMs)
	}
	if d := plain.AddedP99Ms; d < 1.99 || d > 2.01 {
		t.Errorf("nonstream: added p99 = %v, want +2", d)
	}
	if paid.Money != "on" || paid.CPUTarget != cpuTargetMoneyOn || paid.TTFTOverProxyMs == nil ||
		strings.Join(paid.Misses, "; ") != "TTFT p99 +2.00 ms > +1 ms" {
		t.Errorf("stream-paid verdict = %+v (misses %q)", paid, paid.Misses)
	}
	if many.CPUTarget != 0 || many.RSSTarget != rssTargetMany || strings.Join(many.Misses, "; ") != "RSS 1.25× > 1.10×" {
		t.Errorf("many-streams verdict = %+v (misses %q)", many, many.Misses)
	}

	md := verdictMarkdown(vs, 3)
	for _, s := range []string{
		"## Ratios against the targets (issue 22)",
		"| nonstream | off | 1.05 | ≤ 1.10 | +0.60 / +2.00 (+0.40 / +1.00) | — | 9.00 | 3.00 | pass |",
		"| stream-paid | on | 1.15 | ≤ 1.20 |",
		"| +2.00 | 1.75 | — | **miss**: TTFT p99 +2.00 ms > +1 ms |",
		"| many-streams | off | 2.00 | — |",
		"1.25 (target ≤ 1.10) | — | **miss**: RSS 1.25× > 1.10× |",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	if verdictMarkdown(nil, 3) != "" {
		t.Error("a table without rows")
	}
}

// TestRequests: a money-on phase asks for the priced model, many-streams
// for long, slow streams, and each API gets its own path.
func TestRequests(t *testing.T) {
	b := &bench{cfg: config{model: "m", messagesModel: "c", maxTokens: 16, streamMaxTokens: 64, manyTokens: 32, manyTPS: 4}}
	for _, tc := range []struct {
		phase, path string
		want        []string
	}{
		{phaseNonStream, "/chat/completions", []string{`"model":"m"`, `"max_tokens":16`}},
		{phaseNonStream + paidSuffix, "/chat/completions", []string{`"model":"m-priced"`}},
		{phaseResponses + paidSuffix, "/responses", []string{`"model":"m-priced"`, `"max_output_tokens":16`}},
		{phaseMessagesStream + paidSuffix, "/messages", []string{`"model":"c-priced"`, `"max_tokens":64`, `"stream":true`}},
		{phaseManyStreams, "/chat/completions", []string{`"max_tokens":32`, `#mock:tps=4`, `"stream":true`}},
	} {
		req := b.request(tc.phase, loadtest.StreamCheck{})
		if req.Path != tc.path {
			t.Errorf("%s: path %s, want %s", tc.phase, req.Path, tc.path)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(req.Body), w) {
				t.Errorf("%s: body %s lacks %s", tc.phase, req.Body, w)
			}
		}
	}
}
