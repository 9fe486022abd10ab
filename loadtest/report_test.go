package loadtest

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func fakeRun(phase, target string, p50, p99 float64, gwCPU float64, stream bool) Run {
	res := &Result{
		Target: target, Phase: phase, Mode: "open", TargetRate: 1000, Duration: 5,
		Completed: 5000, Sent: 5000, AchievedRate: 1000,
		Latency: Summary{Count: 5000, P50Ms: p50, P99Ms: p99},
	}
	if stream {
		res.Mode, res.Workers = "closed", 500
		res.TTFT = &Summary{Count: 5000, P50Ms: p50 / 2, P99Ms: p99 / 2}
		res.ChunkGap = &Summary{Count: 10}
		res.Streams = &StreamCounts{Total: 5000, Valid: 5000}
	}
	r := Run{Result: res, Procs: []ProcUsage{{Name: "mock", Role: "upstream", CPUSeconds: 1, CPUMicrosPerOp: 200}}}
	if gwCPU > 0 {
		r.Procs = append(r.Procs, ProcUsage{Name: target, Role: "gateway", CPUSeconds: gwCPU, CPUMicrosPerOp: gwCPU * 1e6 / 5000, PeakRSSBytes: 64 << 20})
	}
	return r
}

func TestReportDeriveAndRender(t *testing.T) {
	r := &Report{
		Title: "t",
		Env:   CurrentEnv(time.Unix(0, 0)),
		Knobs: map[string]string{"rate": "1000"},
		Runs: []Run{
			fakeRun("nonstream", "direct", 21, 24, 0, false),
			fakeRun("nonstream", "proxy", 22, 30, 1, false),
			fakeRun("nonstream", "xroute", 23, 40, 2, false),
			fakeRun("stream", "direct", 400, 600, 0, true),
			fakeRun("stream", "xroute", 500, 900, 3, true),
		},
		Skipped: map[string]string{"xroute-info": "not asked"},
	}
	r.Runs[2].Result.Errors = map[string]int64{"http_502": 3}
	r.Derive("direct", [][2]string{{"xroute", "proxy"}})

	want := []Comparison{
		{Phase: "nonstream", Target: "proxy", Baseline: "direct", AddedP50Ms: 1, AddedP99Ms: 6},
		{Phase: "nonstream", Target: "xroute", Baseline: "direct", AddedP50Ms: 2, AddedP99Ms: 16},
		{Phase: "stream", Target: "xroute", Baseline: "direct", AddedP50Ms: 100, AddedP99Ms: 300, AddedTTFTP50Ms: 50, AddedTTFTP99Ms: 150},
	}
	if len(r.Comparisons) != len(want) {
		t.Fatalf("comparisons = %+v", r.Comparisons)
	}
	for i, c := range r.Comparisons {
		if c != want[i] {
			t.Errorf("comparison %d = %+v, want %+v", i, c, want[i])
		}
	}
	// The stream phase has no proxy run: one ratio only.
	if len(r.CPURatios) != 1 || math.Abs(r.CPURatios[0].Ratio-2) > 1e-9 {
		t.Fatalf("cpu ratios = %+v, want xroute:proxy = 2 in nonstream", r.CPURatios)
	}

	md := r.Markdown()
	for _, s := range []string{
		"## nonstream — open loop at 1000 req/s",
		"## stream — closed loop, 500 concurrent",
		"| xroute | 5000 | 0 | 1000 | 23.00 |",
		"xroute errors: http_502=3",
		"skipped target xroute-info",
		"| nonstream | xroute : proxy | 2.00 |",
		"| stream | xroute | direct | +100.00 | +300.00 | +50.00 | +150.00 |",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Runs) != 5 || back.Runs[4].Result.Streams.Valid != 5000 || back.CPURatios[0].Ratio != r.CPURatios[0].Ratio {
		t.Fatalf("JSON round trip lost data: %s", b)
	}
}

func TestReportPhaseNotes(t *testing.T) {
	r := &Report{
		Runs: []Run{
			fakeRun("stream", "direct", 400, 600, 0, true),
			fakeRun("responses-stream", "direct", 400, 600, 0, true),
			fakeRun("responses-stream", "xroute-translated", 410, 640, 2, true),
		},
		PhaseNotes: map[string]string{"responses-stream": "POST /v1/responses"},
	}
	r.Derive("direct", [][2]string{{"xroute-translated", "proxy"}})
	md := r.Markdown()
	for _, s := range []string{
		"## responses-stream — closed loop, 500 concurrent for 5 s\n\nPOST /v1/responses\n\n| target |",
		"| responses-stream | xroute-translated | direct | +10.00 | +40.00 | +5.00 | +20.00 |",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	if strings.Count(md, "POST /v1/responses") != 1 {
		t.Errorf("the note belongs to its phase only:\n%s", md)
	}
}

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Spread
	}{
		{"none", nil, Spread{}},
		{"one", []float64{3}, Spread{Median: 3, Min: 3, Max: 3, N: 1}},
		{"odd", []float64{5, 1, 3}, Spread{Median: 3, Min: 1, Max: 5, N: 3}},
		{"even", []float64{4, 1, 2, 10}, Spread{Median: 3, Min: 1, Max: 10, N: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			if got := SpreadOf(tc.in); got != tc.want {
				t.Errorf("SpreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.in[i] {
					t.Fatal("SpreadOf reordered its input")
				}
			}
		})
	}
}

// TestReportRounds: with interleaved rounds, the comparisons and ratios
// come from the medians, the phase opens with a table of medians and
// ranges, and every run stays listed with its round.
func TestReportRounds(t *testing.T) {
	r := &Report{Title: "t"}
	for round, v := range []struct{ p99, proxyCPU, xrouteCPU float64 }{{30, 1, 3}, {90, 2, 2.5}, {50, 1.5, 2}} {
		for _, run := range []Run{
			fakeRun("nonstream", "direct", 20, 24, 0, false),
			fakeRun("nonstream", "proxy", 21, 26, v.proxyCPU, false),
			fakeRun("nonstream", "xroute", 22, v.p99, v.xrouteCPU, false),
		} {
			run.Round = round + 1
			r.Runs = append(r.Runs, run)
		}
	}
	r.Lead = "## Verdict\n\nlead table\n"
	r.Derive("direct", [][2]string{{"xroute", "proxy"}})

	x, ok := r.Aggregate("nonstream", "xroute")
	if !ok || x.Rounds != 3 || x.Completed != 15000 || x.P99Ms != (Spread{Median: 50, Min: 30, Max: 90, N: 3}) {
		t.Fatalf("xroute aggregate = %+v", x)
	}
	// CPU µs/req = CPU s × 1e6 / 5000 completed: 400, 500, 600.
	if x.CPUMicrosPerOp != (Spread{Median: 500, Min: 400, Max: 600, N: 3}) {
		t.Errorf("xroute CPU = %+v", x.CPUMicrosPerOp)
	}
	if len(r.Comparisons) != 2 || r.Comparisons[1].AddedP99Ms != 26 {
		t.Errorf("comparisons = %+v, want xroute +26 ms p99 (median 50 − 24)", r.Comparisons)
	}
	if len(r.CPURatios) != 1 || math.Abs(r.CPURatios[0].Ratio-500.0/300) > 1e-9 {
		t.Errorf("cpu ratios = %+v, want 500/300 (medians)", r.CPURatios)
	}
	md := r.Markdown()
	for _, s := range []string{
		"# t\n\n## Verdict\n\nlead table\n",
		"Medians over 3 interleaved rounds",
		"| xroute | 3 | 15000 | 0 | 22.00 | 50.00 (30.00–90.00) | 500 (400–600) | 64.0 | 200 |",
		"<details><summary>every run of nonstream (3 rounds, interleaved)</summary>",
		"| 2 | xroute | 5000 | 0 | 1000 | 22.00 |",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}
