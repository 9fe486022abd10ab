package loadtest

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chartRun is a run with synthetic chart data: latencies around baseMs with
// a tail, and a steady rate with a ramp down at the end.
func chartRun(phase, target string, baseMs float64, stream bool, seed uint64) Run {
	rng := rand.New(rand.NewPCG(seed, 1))
	h := NewHistogram()
	for range 20000 {
		v := baseMs + rng.ExpFloat64()*0.5
		if rng.IntN(1000) == 0 {
			v += 30 * rng.Float64()
		}
		h.RecordMicros(int64(v * 1000))
	}
	done := map[int64]int64{}
	start := time.Unix(1_700_000_000, 0)
	n := 5000 + int(seed)*100 // each target a different rate
	for i := range n {
		end := start.Add(time.Duration(i)*5*time.Second/time.Duration(n) + 20*time.Millisecond)
		done[end.UnixNano()/int64(throughputBin)]++
	}
	run := fakeRun(phase, target, baseMs, baseMs*1.5, 1, stream)
	run.Result.Throughput = throughputSeries(done, start)
	if stream {
		run.Result.TTFTCurve = percentileCurve(h)
	} else {
		run.Result.LatencyCurve = percentileCurve(h)
	}
	return run
}

func chartReport() *Report {
	return &Report{Title: "t", Runs: []Run{
		chartRun("nonstream", "direct", 20, false, 1),
		chartRun("nonstream", "proxy", 20.4, false, 2),
		chartRun("nonstream", "xroute", 20.9, false, 3),
		chartRun("stream", "direct", 21, true, 4),
		chartRun("stream", "proxy", 21.3, true, 5),
		chartRun("stream", "xroute", 21.8, true, 6),
	}}
}

func TestChartsRenderValidPNGs(t *testing.T) {
	charts := chartReport().charts()
	wantFiles := []string{"nonstream-latency.png", "nonstream-throughput.png", "stream-ttft.png", "stream-throughput.png"}
	if len(charts) != len(wantFiles) {
		t.Fatalf("got %d charts, want %d", len(charts), len(wantFiles))
	}
	for i, c := range charts {
		t.Run(c.file, func(t *testing.T) {
			if c.file != wantFiles[i] {
				t.Errorf("file = %q, want %q", c.file, wantFiles[i])
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, c.chart.render()); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&buf)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if b := img.Bounds(); b.Dx() != chartW || b.Dy() != chartH {
				t.Fatalf("size = %v, want %dx%d", b.Size(), chartW, chartH)
			}
			for j, s := range c.chart.series {
				if n := countNear(img, plotRect(), seriesColor(s.name, j)); n < 50 {
					t.Errorf("series %s: %d pixels of its colour in the plot area, want a line", s.name, n)
				}
			}
			if n := countNear(img, image.Rect(0, 0, chartW, plotTop), colText); n < 50 {
				t.Errorf("title: %d text pixels above the plot", n)
			}
		})
	}
}

// countNear counts the pixels of r in img within a small distance of c.
func countNear(img image.Image, r image.Rectangle, c color.RGBA) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr>>8, c.R) && near(pg>>8, c.G) && near(pb>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(a uint32, b uint8) bool { return int(a)-int(b) <= 24 && int(b)-int(a) <= 24 }

func TestWriteChartsLinksFromMarkdown(t *testing.T) {
	r := chartReport()
	dir := filepath.Join(t.TempDir(), "benchmarks")
	if err := r.WriteCharts(dir, "benchmarks"); err != nil {
		t.Fatal(err)
	}
	if len(r.Charts) != 4 {
		t.Fatalf("charts = %+v", r.Charts)
	}
	md := r.Markdown()
	for _, c := range r.Charts {
		if !strings.HasPrefix(c.Path, "benchmarks/") {
			t.Errorf("path %q is not under the link dir", c.Path)
		}
		if !strings.Contains(md, "]("+c.Path+")") {
			t.Errorf("markdown does not show %s", c.Path)
		}
		f, err := os.Open(filepath.Join(dir, strings.TrimPrefix(c.Path, "benchmarks/")))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", c.Path, err)
		}
	}
	// Each chart sits in its phase's section.
	if i, j := strings.Index(md, "stream-ttft.png"), strings.Index(md, "## stream"); i < j {
		t.Errorf("stream chart before the stream section")
	}

	empty := &Report{Runs: []Run{fakeRun("nonstream", "direct", 1, 2, 0, false)}}
	if err := empty.WriteCharts(filepath.Join(t.TempDir(), "none"), "none"); err != nil || len(empty.Charts) != 0 {
		t.Fatalf("no chart data: err=%v charts=%+v", err, empty.Charts)
	}
}

func TestPercentileCurve(t *testing.T) {
	if percentileCurve(NewHistogram()) != nil {
		t.Fatal("curve of an empty histogram")
	}
	h := NewHistogram()
	for v := int64(1); v <= 100000; v++ {
		h.RecordMicros(v)
	}
	c := percentileCurve(h)
	if len(c) != 81 || c[0].Percentile != 0 || c[len(c)-1].Percentile != 99.99 {
		t.Fatalf("curve spans %v to %v in %d points", c[0], c[len(c)-1], len(c))
	}
	for i := 1; i < len(c); i++ {
		if c[i].Percentile <= c[i-1].Percentile || c[i].Ms < c[i-1].Ms {
			t.Fatalf("not increasing at %d: %v then %v", i, c[i-1], c[i])
		}
	}
	if c[0].Ms != 0.001 || c[20].Ms < 89.9 || c[20].Ms > 90.1 {
		t.Errorf("p0 = %v ms, p90 = %v ms", c[0].Ms, c[20].Ms)
	}
}

func TestRecorderThroughput(t *testing.T) {
	rec := NewRecorder()
	start := time.Unix(1_700_000_000, 0)
	// 3 s at 1000/s, each taking 20 ms; every tenth fails. Out of order on
	// purpose: the series starts at the earliest due time, not the first
	// outcome recorded.
	for i := 2999; i >= 0; i-- {
		o := &Outcome{Scheduled: start.Add(time.Duration(i) * time.Millisecond), Latency: 20 * time.Millisecond, Status: 200}
		if i%10 == 0 {
			o.ErrKind = "http_502"
		}
		rec.Add(o, false)
	}
	res := rec.result(false)
	tp := res.Throughput
	if tp == nil || tp.IntervalS != 0.1 {
		t.Fatalf("throughput = %+v", tp)
	}
	var sum int64
	for _, n := range tp.Completed {
		sum += n
	}
	if sum != res.Completed || len(tp.Completed) != 31 || tp.Completed[0] != 72 || tp.Completed[15] != 90 {
		t.Fatalf("sum %d (completed %d), %d bins: %v", sum, res.Completed, len(tp.Completed), tp.Completed)
	}
	if len(res.LatencyCurve) == 0 || res.TTFTCurve != nil {
		t.Errorf("curves: latency %d points, ttft %v", len(res.LatencyCurve), res.TTFTCurve)
	}

	// Long runs get wider bins.
	done := map[int64]int64{}
	for s := range 600 {
		done[start.Add(time.Duration(s)*time.Second).UnixNano()/int64(throughputBin)] = 10
	}
	if tp := throughputSeries(done, start); tp.IntervalS != 2 || len(tp.Completed) != 300 || tp.Completed[0] != 20 {
		t.Errorf("10 min: interval %v s, %d bins, first %d", tp.IntervalS, len(tp.Completed), tp.Completed[0])
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		name           string
		lo, hi         float64
		wantLo, wantHi float64
		wantFirst      string
		wantLast       string
	}{
		{"latency", 20.3, 44.1, 20, 45, "20", "45"},
		{"rate", 0, 1043, 0, 1200, "0", "1200"},
		{"small", 0.12, 0.57, 0.1, 0.6, "0.1", "0.6"},
		{"flat", 5, 5, 4, 6, "4.0", "6.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ticks := niceTicks(tc.lo, tc.hi)
			if math.Abs(lo-tc.wantLo) > 1e-9 || math.Abs(hi-tc.wantHi) > 1e-9 || ticks[0].label != tc.wantFirst || ticks[len(ticks)-1].label != tc.wantLast {
				t.Errorf("niceTicks(%v, %v) = %v, %v, %v", tc.lo, tc.hi, lo, hi, ticks)
			}
		})
	}
}
