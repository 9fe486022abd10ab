package loadtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Env describes where a benchmark ran.
type Env struct {
	Date       string `json:"date"`
	NumCPU     int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel,omitempty"`
	CPUModel   string `json:"cpu_model,omitempty"`
	// Host load averages (1, 5, 15 min) when the bench began and ended: other
	// work on the machine skews every number.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
	Note         string `json:"note,omitempty"`
}

// CurrentEnv describes this machine and process, reading /proc when there.
func CurrentEnv(now time.Time) Env {
	e := Env{
		Date:       now.UTC().Format(time.RFC3339),
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.Lines(b) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				e.CPUModel = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	e.LoadAvgStart = LoadAverage()
	return e
}

// LoadAverage returns the host's 1, 5 and 15 minute load averages from
// /proc/loadavg, or "" where there is none.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Run is one measured run: one phase against one target.
type Run struct {
	// Round is the run's round when the bench interleaves rounds (A B C
	// A B C …), from 1; 0 when it does not.
	Round  int         `json:"round,omitempty"`
	Result *Result     `json:"result"`
	Procs  []ProcUsage `json:"processes"`
	Note   string      `json:"note,omitempty"`
}

// Proc returns the usage of the process with the given role, if any.
func (r *Run) Proc(role string) (ProcUsage, bool) {
	for _, p := range r.Procs {
		if p.Role == role {
			return p, true
		}
	}
	return ProcUsage{}, false
}

// Comparison is a target's latency over the baseline's in one phase.
type Comparison struct {
	Phase          string  `json:"phase"`
	Target         string  `json:"target"`
	Baseline       string  `json:"baseline"`
	AddedP50Ms     float64 `json:"added_p50_ms"`
	AddedP99Ms     float64 `json:"added_p99_ms"`
	AddedTTFTP50Ms float64 `json:"added_ttft_p50_ms,omitempty"`
	AddedTTFTP99Ms float64 `json:"added_ttft_p99_ms,omitempty"`
}

// CPURatio is a gateway's CPU per request over another's in one phase.
type CPURatio struct {
	Phase     string  `json:"phase"`
	Target    string  `json:"target"`
	Reference string  `json:"reference"`
	Ratio     float64 `json:"ratio"` // Target's CPU µs/request ÷ Reference's
}

// Report is a whole benchmark: where it ran, its knobs, each run and the
// numbers derived from them.
type Report struct {
	Title       string            `json:"title"`
	Env         Env               `json:"env"`
	Knobs       map[string]string `json:"knobs"`
	Runs        []Run             `json:"runs"`
	Comparisons []Comparison      `json:"comparisons"`
	CPURatios   []CPURatio        `json:"cpu_ratios"`
	Skipped     map[string]string `json:"skipped,omitempty"` // target -> why
	Notes       []string          `json:"notes,omitempty"`
	PhaseNotes  map[string]string `json:"phase_notes,omitempty"` // phase -> what it sends, shown under its heading
	Charts      []ChartRef        `json:"charts,omitempty"`      // set by WriteCharts
	// Aggregates are each target's runs of a phase over the rounds
	// (medians and ranges), set by Derive.
	Aggregates []Aggregate `json:"aggregates,omitempty"`
	// Lead is Markdown shown first, under the title (a verdict table the
	// caller derives), and Verdicts its data for the JSON.
	Lead     string `json:"-"`
	Verdicts any    `json:"verdicts,omitempty"`
}

// Spread is one metric over a target's rounds: the median, the range and
// how many rounds had it (0: none did, the metric does not apply).
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// SpreadOf is the median and range of vs (the zero Spread when empty).
func SpreadOf(vs []float64) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Aggregate is one target in one phase over its rounds.
type Aggregate struct {
	Phase          string `json:"phase"`
	Target         string `json:"target"`
	Rounds         int    `json:"rounds"`
	Completed      int64  `json:"completed"` // over every round
	Errors         int64  `json:"errors"`
	BadStreams     int64  `json:"bad_streams,omitempty"`
	Streams        int64  `json:"streams,omitempty"`
	Stream         bool   `json:"stream"`
	P50Ms          Spread `json:"p50_ms"`
	P99Ms          Spread `json:"p99_ms"`
	TTFTP50Ms      Spread `json:"ttft_p50_ms"`
	TTFTP99Ms      Spread `json:"ttft_p99_ms"`
	CPUMicrosPerOp Spread `json:"gateway_cpu_us_per_req"`
	PeakRSSMiB     Spread `json:"gateway_peak_rss_mib"`
	MockCPUPerOp   Spread `json:"mock_cpu_us_per_req"`
}

// Aggregate returns target's aggregate in phase, if it ran there.
func (r *Report) Aggregate(phase, target string) (Aggregate, bool) {
	for _, a := range r.Aggregates {
		if a.Phase == phase && a.Target == target {
			return a, true
		}
	}
	return Aggregate{}, false
}

// aggregate digests the runs of target in phase (nil: none).
func (r *Report) aggregate(phase, target string) *Aggregate {
	a := &Aggregate{Phase: phase, Target: target}
	var p50, p99, t50, t99, cpu, rss, mock []float64
	for i := range r.Runs {
		run := &r.Runs[i]
		res := run.Result
		if res.Phase != phase || res.Target != target {
			continue
		}
		a.Rounds++
		a.Completed += res.Completed
		a.Errors += res.ErrorsTotal
		if res.Streams != nil {
			a.Stream = true
			a.BadStreams += res.Streams.Invalid
			a.Streams += res.Streams.Total
		}
		if res.Latency.Count > 0 {
			p50, p99 = append(p50, res.Latency.P50Ms), append(p99, res.Latency.P99Ms)
		}
		if res.TTFT != nil && res.TTFT.Count > 0 {
			t50, t99 = append(t50, res.TTFT.P50Ms), append(t99, res.TTFT.P99Ms)
		}
		if gw, ok := run.Proc("gateway"); ok && res.Completed > 0 {
			cpu = append(cpu, gw.CPUMicrosPerOp)
			rss = append(rss, float64(gw.PeakRSSBytes)/(1<<20))
		}
		if up, ok := run.Proc("upstream"); ok && res.Completed > 0 {
			mock = append(mock, up.CPUMicrosPerOp)
		}
	}
	if a.Rounds == 0 {
		return nil
	}
	a.P50Ms, a.P99Ms, a.TTFTP50Ms, a.TTFTP99Ms = SpreadOf(p50), SpreadOf(p99), SpreadOf(t50), SpreadOf(t99)
	a.CPUMicrosPerOp, a.PeakRSSMiB, a.MockCPUPerOp = SpreadOf(cpu), SpreadOf(rss), SpreadOf(mock)
	return a
}

// targets are the targets of phase's runs, in the order they first ran.
func (r *Report) targets(phase string) []string {
	var ts []string
	for _, run := range r.Runs {
		if run.Result.Phase == phase && !slices.Contains(ts, run.Result.Target) {
			ts = append(ts, run.Result.Target)
		}
	}
	return ts
}

// ChartRef is a chart image the Markdown shows in a phase's section.
type ChartRef struct {
	Phase string `json:"phase"`
	Title string `json:"title"`
	Path  string `json:"path"` // as linked from the Markdown
}

// Derive fills Aggregates (each target's runs of a phase over its
// rounds), Comparisons (every target's medians against baseline's, per
// phase) and CPURatios (each [target, reference] pair's median gateway CPU
// per request).
func (r *Report) Derive(baseline string, ratios [][2]string) {
	r.Aggregates, r.Comparisons, r.CPURatios = nil, nil, nil
	for _, phase := range r.phases() {
		for _, t := range r.targets(phase) {
			if a := r.aggregate(phase, t); a != nil {
				r.Aggregates = append(r.Aggregates, *a)
			}
		}
	}
	for _, phase := range r.phases() {
		base, ok := r.Aggregate(phase, baseline)
		if !ok {
			continue
		}
		for _, a := range r.Aggregates {
			if a.Phase != phase || a.Target == baseline || a.P50Ms.N == 0 || base.P50Ms.N == 0 {
				continue
			}
			c := Comparison{
				Phase:      phase,
				Target:     a.Target,
				Baseline:   baseline,
				AddedP50Ms: a.P50Ms.Median - base.P50Ms.Median,
				AddedP99Ms: a.P99Ms.Median - base.P99Ms.Median,
			}
			if a.TTFTP50Ms.N > 0 && base.TTFTP50Ms.N > 0 {
				c.AddedTTFTP50Ms = a.TTFTP50Ms.Median - base.TTFTP50Ms.Median
				c.AddedTTFTP99Ms = a.TTFTP99Ms.Median - base.TTFTP99Ms.Median
			}
			r.Comparisons = append(r.Comparisons, c)
		}
	}
	for _, phase := range r.phases() {
		for _, pair := range ratios {
			a, okA := r.Aggregate(phase, pair[0])
			b, okB := r.Aggregate(phase, pair[1])
			if !okA || !okB || a.CPUMicrosPerOp.N == 0 || b.CPUMicrosPerOp.Median == 0 {
				continue
			}
			r.CPURatios = append(r.CPURatios, CPURatio{
				Phase: phase, Target: pair[0], Reference: pair[1],
				Ratio: a.CPUMicrosPerOp.Median / b.CPUMicrosPerOp.Median,
			})
		}
	}
}

func (r *Report) phases() []string {
	var ps []string
	for _, run := range r.Runs {
		if !slices.Contains(ps, run.Result.Phase) {
			ps = append(ps, run.Result.Phase)
		}
	}
	return ps
}

func (r *Report) find(phase, target string) *Run {
	for i := range r.Runs {
		if r.Runs[i].Result.Phase == phase && r.Runs[i].Result.Target == target {
			return &r.Runs[i]
		}
	}
	return nil
}

// Markdown renders the report as Markdown tables.
func (r *Report) Markdown() string {
	var b strings.Builder
	r.WriteMarkdown(&b)
	return b.String()
}

// WriteMarkdown writes the report as Markdown to w.
func (r *Report) WriteMarkdown(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	title := r.Title
	if title == "" {
		title = "Benchmark"
	}
	p("# %s\n\n", title)
	if r.Lead != "" {
		p("%s\n", strings.TrimRight(r.Lead, "\n")+"\n")
	}
	e := r.Env
	p("- date: %s\n", e.Date)
	p("- machine: nproc=%d, GOMAXPROCS=%d, %s, kernel %s, CPU %s\n", e.NumCPU, e.GOMAXPROCS, e.OS, orDash(e.Kernel), orDash(e.CPUModel))
	p("- Go: %s\n", e.GoVersion)
	if e.LoadAvgStart != "" {
		p("- host load average (1/5/15 min): %s at start, %s at end\n", e.LoadAvgStart, orDash(e.LoadAvgEnd))
	}
	if e.Note != "" {
		p("- note: %s\n", e.Note)
	}
	if len(r.Knobs) > 0 {
		keys := make([]string, 0, len(r.Knobs))
		for k := range r.Knobs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("`%s=%s`", k, r.Knobs[k])
		}
		p("- knobs: %s\n", strings.Join(parts, " "))
	}
	for _, n := range r.Notes {
		p("- %s\n", n)
	}
	for _, t := range sortedKeys(r.Skipped) {
		p("- **skipped target %s**: %s\n", t, r.Skipped[t])
	}
	p("\n")

	for _, phase := range r.phases() {
		var runs []*Run
		for i := range r.Runs {
			if r.Runs[i].Result.Phase == phase {
				runs = append(runs, &r.Runs[i])
			}
		}
		first := runs[0].Result
		if first.Mode == "open" {
			p("## %s — open loop at %.0f req/s for %g s\n\n", phase, first.TargetRate, first.Duration)
		} else {
			p("## %s — closed loop, %d concurrent for %g s\n\n", phase, first.Workers, first.Duration)
		}
		if n := r.PhaseNotes[phase]; n != "" {
			p("%s\n\n", n)
		}
		stream := first.Streams != nil
		rounds := r.writeAggregates(w, phase, stream)
		if rounds > 1 {
			p("<details><summary>every run of %s (%d rounds, interleaved)</summary>\n\n", phase, rounds)
		}
		if rounds > 1 {
			p("| round ")
		}
		p("| target | completed | errors | rate/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |")
		if stream {
			p(" TTFT p50 ms | TTFT p99 ms | gap p99 ms | bad streams |")
		}
		p(" gateway CPU s | gateway CPU µs/req | gateway peak RSS MiB | mock CPU µs/req | loadgen CPU s |\n")
		if rounds > 1 {
			p("|--:")
		}
		p("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
		if stream {
			p("--:|--:|--:|--:|")
		}
		p("--:|--:|--:|--:|--:|\n")
		for _, run := range runs {
			res := run.Result
			l := res.Latency
			if rounds > 1 {
				p("| %d ", run.Round)
			}
			p("| %s | %d | %d | %.0f | %s | %s | %s | %s | %s |", res.Target, res.Completed, res.ErrorsTotal,
				res.AchievedRate, ms(l.P50Ms), ms(l.P90Ms), ms(l.P99Ms), ms(l.P999Ms), ms(l.MaxMs))
			if stream {
				bad := "—"
				if res.Streams != nil {
					bad = fmt.Sprintf("%d / %d", res.Streams.Invalid, res.Streams.Total)
				}
				var t50, t99, g99 string = "—", "—", "—"
				if res.TTFT != nil && res.TTFT.Count > 0 {
					t50, t99 = ms(res.TTFT.P50Ms), ms(res.TTFT.P99Ms)
				}
				if res.ChunkGap != nil && res.ChunkGap.Count > 0 {
					g99 = ms(res.ChunkGap.P99Ms)
				}
				p(" %s | %s | %s | %s |", t50, t99, g99, bad)
			}
			gwCPU, gwPer, gwRSS := "—", "—", "—"
			if gw, ok := run.Proc("gateway"); ok {
				gwCPU = fmt.Sprintf("%.2f", gw.CPUSeconds)
				gwPer = fmt.Sprintf("%.0f", gw.CPUMicrosPerOp)
				gwRSS = fmt.Sprintf("%.1f", float64(gw.PeakRSSBytes)/(1<<20))
			}
			mockPer, lgCPU := "—", "—"
			if up, ok := run.Proc("upstream"); ok {
				mockPer = fmt.Sprintf("%.0f", up.CPUMicrosPerOp)
			}
			if lg, ok := run.Proc("loadgen"); ok {
				lgCPU = fmt.Sprintf("%.2f", lg.CPUSeconds)
			}
			p(" %s | %s | %s | %s | %s |\n", gwCPU, gwPer, gwRSS, mockPer, lgCPU)
		}
		p("\n")
		if rounds > 1 {
			p("</details>\n\n")
		}
		for _, run := range runs {
			if len(run.Result.Errors) == 0 && run.Note == "" {
				continue
			}
			var parts []string
			for _, k := range sortedKeys(run.Result.Errors) {
				parts = append(parts, fmt.Sprintf("%s=%d", k, run.Result.Errors[k]))
			}
			line := strings.Join(parts, ", ")
			if run.Note != "" {
				line = strings.TrimPrefix(line+"; "+run.Note, "; ")
			}
			if rounds > 1 {
				p("- %s (round %d) errors: %s\n", run.Result.Target, run.Round, line)
				continue
			}
			p("- %s errors: %s\n", run.Result.Target, line)
		}
		p("\n")
		for _, c := range r.Charts {
			if c.Phase == phase {
				p("![%s](%s)\n\n", c.Title, c.Path)
			}
		}
	}

	if len(r.Comparisons) > 0 || len(r.CPURatios) > 0 {
		p("## Derived\n\n")
	}
	if len(r.Comparisons) > 0 {
		p("| phase | target | vs | added p50 ms | added p99 ms | added TTFT p50 ms | added TTFT p99 ms |\n")
		p("|---|---|---|--:|--:|--:|--:|\n")
		for _, c := range r.Comparisons {
			t50, t99 := "—", "—"
			if c.AddedTTFTP50Ms != 0 || c.AddedTTFTP99Ms != 0 {
				t50, t99 = signedMs(c.AddedTTFTP50Ms), signedMs(c.AddedTTFTP99Ms)
			}
			p("| %s | %s | %s | %s | %s | %s | %s |\n", c.Phase, c.Target, c.Baseline,
				signedMs(c.AddedP50Ms), signedMs(c.AddedP99Ms), t50, t99)
		}
		p("\n")
	}
	if len(r.CPURatios) > 0 {
		p("| phase | gateway CPU per request | ratio |\n|---|---|--:|\n")
		for _, c := range r.CPURatios {
			p("| %s | %s : %s | %.2f |\n", c.Phase, c.Target, c.Reference, c.Ratio)
		}
		p("\n")
	}
}

// writeAggregates writes the table of phase's medians over the rounds
// when a target ran more than once there, and returns the most rounds a
// target ran.
func (r *Report) writeAggregates(w io.Writer, phase string, stream bool) int {
	rounds := 0
	for _, a := range r.Aggregates {
		if a.Phase == phase {
			rounds = max(rounds, a.Rounds)
		}
	}
	if rounds <= 1 {
		return rounds
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("Medians over %d interleaved rounds (range in brackets):\n\n", rounds)
	p("| target | rounds | completed | errors | p50 ms | p99 ms |")
	if stream {
		p(" TTFT p50 ms | TTFT p99 ms | bad streams |")
	}
	p(" gateway CPU µs/req | gateway peak RSS MiB | mock CPU µs/req |\n|---|--:|--:|--:|--:|--:|")
	if stream {
		p("--:|--:|--:|")
	}
	p("--:|--:|--:|\n")
	for _, a := range r.Aggregates {
		if a.Phase != phase {
			continue
		}
		p("| %s | %d | %d | %d | %s | %s |", a.Target, a.Rounds, a.Completed, a.Errors,
			spreadCell(a.P50Ms, ms), spreadCell(a.P99Ms, ms))
		if stream {
			p(" %s | %s | %d / %d |", spreadCell(a.TTFTP50Ms, ms), spreadCell(a.TTFTP99Ms, ms), a.BadStreams, a.Streams)
		}
		p(" %s | %s | %s |\n", spreadCell(a.CPUMicrosPerOp, whole), spreadCell(a.PeakRSSMiB, tenths), spreadCell(a.MockCPUPerOp, whole))
	}
	p("\n")
	return rounds
}

// spreadCell is "median (min–max)", or the median alone when the range
// is one value, or "—" when no round had the metric.
func spreadCell(s Spread, f func(float64) string) string {
	switch {
	case s.N == 0:
		return "—"
	case s.Min == s.Max:
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

func whole(v float64) string  { return fmt.Sprintf("%.0f", v) }
func tenths(v float64) string { return fmt.Sprintf("%.1f", v) }

func ms(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func signedMs(v float64) string { return fmt.Sprintf("%+.2f", v) }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
