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
}

// ChartRef is a chart image the Markdown shows in a phase's section.
type ChartRef struct {
	Phase string `json:"phase"`
	Title string `json:"title"`
	Path  string `json:"path"` // as linked from the Markdown
}

// Derive fills Comparisons (every target against baseline, per phase) and
// CPURatios (each [target, reference] pair's gateway CPU per request).
func (r *Report) Derive(baseline string, ratios [][2]string) {
	r.Comparisons, r.CPURatios = nil, nil
	for _, phase := range r.phases() {
		base := r.find(phase, baseline)
		if base == nil {
			continue
		}
		for i := range r.Runs {
			run := &r.Runs[i]
			if run.Result.Phase != phase || run.Result.Target == baseline || run.Result.Latency.Count == 0 {
				continue
			}
			c := Comparison{
				Phase:      phase,
				Target:     run.Result.Target,
				Baseline:   baseline,
				AddedP50Ms: run.Result.Latency.P50Ms - base.Result.Latency.P50Ms,
				AddedP99Ms: run.Result.Latency.P99Ms - base.Result.Latency.P99Ms,
			}
			if run.Result.TTFT != nil && base.Result.TTFT != nil {
				c.AddedTTFTP50Ms = run.Result.TTFT.P50Ms - base.Result.TTFT.P50Ms
				c.AddedTTFTP99Ms = run.Result.TTFT.P99Ms - base.Result.TTFT.P99Ms
			}
			r.Comparisons = append(r.Comparisons, c)
		}
		for _, pair := range ratios {
			a, b := r.find(phase, pair[0]), r.find(phase, pair[1])
			if a == nil || b == nil {
				continue
			}
			pa, okA := a.Proc("gateway")
			pb, okB := b.Proc("gateway")
			if !okA || !okB || pb.CPUMicrosPerOp == 0 {
				continue
			}
			r.CPURatios = append(r.CPURatios, CPURatio{
				Phase: phase, Target: pair[0], Reference: pair[1],
				Ratio: pa.CPUMicrosPerOp / pb.CPUMicrosPerOp,
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
			p("## %s — open loop at %.0f req/s for %.0f s\n\n", phase, first.TargetRate, first.Duration)
		} else {
			p("## %s — closed loop, %d concurrent for %.0f s\n\n", phase, first.Workers, first.Duration)
		}
		if n := r.PhaseNotes[phase]; n != "" {
			p("%s\n\n", n)
		}
		stream := first.Streams != nil
		p("| target | completed | errors | rate/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |")
		if stream {
			p(" TTFT p50 ms | TTFT p99 ms | gap p99 ms | bad streams |")
		}
		p(" gateway CPU s | gateway CPU µs/req | gateway peak RSS MiB | mock CPU µs/req | loadgen CPU s |\n")
		p("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
		if stream {
			p("--:|--:|--:|--:|")
		}
		p("--:|--:|--:|--:|--:|\n")
		for _, run := range runs {
			res := run.Result
			l := res.Latency
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
