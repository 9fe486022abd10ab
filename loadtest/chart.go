package loadtest

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The report's charts: for each phase, latency (a stream's time to first
// token) by percentile, and completed requests per second over the run, one
// line per target. They are drawn with the standard library's image packages
// and a bitmap font, so that the bench needs no plotting dependency.

// PercentilePoint is one point of a latency-by-percentile curve.
type PercentilePoint struct {
	Percentile float64 `json:"p"` // 0 to 99.99
	Ms         float64 `json:"ms"`
}

// Throughput is a run's successful requests over time.
type Throughput struct {
	IntervalS float64 `json:"interval_s"` // the width of a bin
	// Completed counts the successes that ended in each bin; bin 0 begins
	// at the run's start (to within 0.1 s), the last one may be partial.
	Completed []int64 `json:"completed"`
}

const (
	curveNines = 4    // percentile curves go up to 99.99 (four nines)
	curveStep  = 0.05 // between their points, in nines

	throughputBin     = 100 * time.Millisecond // the recorder's resolution
	throughputMaxBins = 300                    // a series is coarsened to at most this many bins
	chartMaxPoints    = 40                     // a throughput chart's line: fewer, wider bins read better
)

// binFactors are the widenings of a throughput bin: intervals stay round.
func binFactors() []int64 {
	return []int64{1, 2, 5, 10, 20, 50, 100, 200, 600, 1200, 3000, 6000, 36000}
}

// widen returns the factor from binFactors that brings n bins to at most
// limit.
func widen(n, limit int64) int64 {
	var k int64
	for _, k = range binFactors() {
		if (n+k-1)/k <= limit {
			break
		}
	}
	return k
}

// nines maps a percentile to the chart's x axis: 0 → 0, 90 → 1, 99 → 2,
// 99.9 → 3. Each nine gets the same width, so the tail is visible.
func nines(percentile float64) float64 { return -math.Log10(1 - percentile/100) }

// percentileCurve samples h evenly on the nines scale up to 99.99, nil when
// h is empty.
func percentileCurve(h *Histogram) []PercentilePoint {
	if h.Count() == 0 {
		return nil
	}
	n := int(math.Round(curveNines / curveStep))
	pts := make([]PercentilePoint, 0, n+1)
	for i := 0; i <= n; i++ {
		q := 1 - math.Pow(10, -float64(i)*curveStep)
		pts = append(pts, PercentilePoint{
			Percentile: math.Round(q*1e6) / 1e4,
			Ms:         float64(h.quantileMicros(q)) / 1000,
		})
	}
	return pts
}

// throughputSeries turns counts by absolute throughputBin into a series that
// begins at first, with bins widened (by a factor of 2, 5, 10, …) until there
// are at most throughputMaxBins. Nil when there is nothing to show.
func throughputSeries(done map[int64]int64, first time.Time) *Throughput {
	if len(done) == 0 || first.IsZero() {
		return nil
	}
	origin := first.UnixNano() / int64(throughputBin)
	last := origin
	for b := range done {
		last = max(last, b)
	}
	span := last - origin + 1
	if span > 1e7 { // over 11 days: clocks that do not belong together
		return nil
	}
	k := widen(span, throughputMaxBins)
	out := make([]int64, (span+k-1)/k)
	for b, n := range done {
		out[max(b-origin, 0)/k] += n
	}
	return &Throughput{IntervalS: (time.Duration(k) * throughputBin).Seconds(), Completed: out}
}

// WriteCharts draws the report's charts as PNG files in dir and records them
// in r.Charts, linked as link/name (link: dir as seen from the Markdown). A
// chart without data is left out. Charts written before an error stay
// recorded.
func (r *Report) WriteCharts(dir, link string) error {
	r.Charts = nil
	charts := r.charts()
	if len(charts) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	for _, c := range charts {
		if err := writePNG(filepath.Join(dir, c.file), c.chart.render()); err != nil {
			return fmt.Errorf("charts: %w", err)
		}
		r.Charts = append(r.Charts, ChartRef{Phase: c.phase, Title: c.chart.title, Path: path.Join(filepath.ToSlash(link), c.file)})
	}
	return nil
}

func writePNG(name string, img image.Image) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = png.Encode(w, img)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// reportChart is one chart of a report and the file it goes to.
type reportChart struct {
	phase, file string
	chart       *lineChart
}

// charts lays out the report's charts, two per phase, skipping those
// without data.
func (r *Report) charts() []reportChart {
	var out []reportChart
	for _, phase := range r.phases() {
		var runs []*Result
		for i := range r.Runs {
			// With interleaved rounds, the charts show the first: a
			// curve per target, from runs made side by side.
			if res := r.Runs[i].Result; res.Phase == phase && r.Runs[i].Round <= 1 {
				runs = append(runs, res)
			}
		}
		first := runs[0]
		stream := first.Streams != nil
		load := fmt.Sprintf("open loop at %g req/s", first.TargetRate)
		if first.Mode != "open" {
			load = fmt.Sprintf("%d concurrent", first.Workers)
			if stream {
				load += " streams"
			}
		}
		file := fileSafe(phase)

		lat := &lineChart{
			title:  fmt.Sprintf("%s: latency by percentile (%s)", phase, load),
			xLabel: "percentile (each nine the same width)",
			yLabel: "latency (ms)",
			xNines: true,
		}
		latFile := file + "-latency.png"
		if stream {
			lat.title = fmt.Sprintf("%s: time to first token by percentile (%s)", phase, load)
			lat.yLabel = "time to first token (ms)"
			latFile = file + "-ttft.png"
		}
		tput := &lineChart{
			title:     fmt.Sprintf("%s: completed requests per second (%s)", phase, load),
			xLabel:    "time since the start of the run (s)",
			yLabel:    "completed requests/s",
			yFromZero: true,
		}
		if first.Duration > 0 {
			tput.marks = append(tput.marks, chartMark{x: first.Duration, label: "end of load"})
		}
		for _, res := range runs {
			curve := res.LatencyCurve
			if stream {
				curve = res.TTFTCurve
			}
			if len(curve) > 0 {
				s := chartSeries{name: res.Target}
				for _, p := range curve {
					s.x, s.y = append(s.x, nines(p.Percentile)), append(s.y, p.Ms)
				}
				lat.series = append(lat.series, s)
			}
			if t := res.Throughput; t != nil && len(t.Completed) > 0 && t.IntervalS > 0 {
				s := chartSeries{name: res.Target}
				k := widen(int64(len(t.Completed)), chartMaxPoints)
				width := float64(k) * t.IntervalS
				for i := 0; i < len(t.Completed); i += int(k) {
					var n int64
					for _, c := range t.Completed[i:min(i+int(k), len(t.Completed))] {
						n += c
					}
					s.x = append(s.x, (float64(i/int(k))+0.5)*width)
					s.y = append(s.y, float64(n)/width)
				}
				tput.series = append(tput.series, s)
			}
		}
		if len(lat.series) > 0 {
			out = append(out, reportChart{phase: phase, file: latFile, chart: lat})
		}
		if len(tput.series) > 0 {
			out = append(out, reportChart{phase: phase, file: file + "-throughput.png", chart: tput})
		}
	}
	return out
}

// fileSafe keeps letters, digits, '-' and '_' of s; the rest become '-'.
func fileSafe(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		}
		return '-'
	}, s)
}

// lineChart is a line chart of a few named series over shared axes.
type lineChart struct {
	title, xLabel, yLabel string
	xNines                bool // x is nines(percentile): ticks are labelled as percentiles
	yFromZero             bool
	series                []chartSeries
	marks                 []chartMark
}

type chartSeries struct {
	name string
	x, y []float64
}

// chartMark is a dashed vertical line with a label.
type chartMark struct {
	x     float64
	label string
}

// Layout, in pixels.
const (
	chartW      = 930
	chartH      = 420
	plotLeft    = 76
	plotTop     = 40
	plotRight   = chartW - 166 // the legend goes to the right of the plot: room for "xroute-translated"
	plotBottom  = chartH - 52
	superSample = 3 // lines are drawn at 3× and scaled down: anti-aliasing
)

// plotRect is where the data goes.
func plotRect() image.Rectangle { return image.Rect(plotLeft, plotTop, plotRight, plotBottom) }

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{34, 34, 34, 255}
	colAxis       = color.RGBA{110, 110, 110, 255}
	colGrid       = color.RGBA{228, 228, 228, 255}
	colMark       = color.RGBA{150, 150, 150, 255}
)

// seriesColor gives each target the same colour in every chart.
func seriesColor(name string, i int) color.RGBA {
	switch name {
	case "direct":
		return color.RGBA{31, 119, 180, 255} // blue
	case "proxy":
		return color.RGBA{255, 127, 14, 255} // orange
	case "xroute":
		return color.RGBA{44, 160, 44, 255} // green
	case "xroute-info":
		return color.RGBA{214, 39, 40, 255} // red
	case "xroute-translated":
		return color.RGBA{148, 103, 189, 255} // purple
	}
	others := []color.RGBA{{140, 86, 75, 255}, {227, 119, 194, 255}, {23, 190, 207, 255}, {188, 189, 34, 255}}
	return others[i%len(others)]
}

// lineWidth is the width in pixels of series i.
func lineWidth(i int) float64 { return 1.6 + 0.8*float64(i) }

type tick struct {
	v     float64
	label string
}

// render draws the chart.
func (c *lineChart) render() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	fill(img, img.Bounds(), colBackground)
	pr := plotRect()

	x0, x1, xTicks := c.xAxis()
	y0, y1, yTicks := c.yAxis()
	px := func(x float64) float64 { return float64(pr.Min.X) + (x-x0)/(x1-x0)*float64(pr.Dx()) }
	py := func(y float64) float64 { return float64(pr.Max.Y) - (y-y0)/(y1-y0)*float64(pr.Dy()) }

	// Grid and tick labels.
	for _, t := range yTicks {
		y := int(math.Round(py(t.v)))
		fill(img, image.Rect(pr.Min.X, y, pr.Max.X, y+1), colGrid)
		fill(img, image.Rect(pr.Min.X-5, y, pr.Min.X, y+1), colAxis)
		drawText(img, pr.Min.X-8-textWidth(t.label), y+4, t.label, colText)
	}
	for _, t := range xTicks {
		x := int(math.Round(px(t.v)))
		fill(img, image.Rect(x, pr.Min.Y, x+1, pr.Max.Y), colGrid)
		fill(img, image.Rect(x, pr.Max.Y, x+1, pr.Max.Y+5), colAxis)
		drawText(img, x-textWidth(t.label)/2, pr.Max.Y+18, t.label, colText)
	}
	for _, m := range c.marks {
		if m.x < x0 || m.x > x1 {
			continue
		}
		x := int(math.Round(px(m.x)))
		for y := pr.Min.Y; y < pr.Max.Y; y += 8 {
			fill(img, image.Rect(x, y, x+1, min(y+4, pr.Max.Y)), colMark)
		}
		lw := textWidth(m.label)
		fill(img, image.Rect(x-lw-7, pr.Max.Y-19, x-1, pr.Max.Y-3), colBackground)
		drawText(img, x-lw-4, pr.Max.Y-7, m.label, colMark)
	}

	// The series, drawn at superSample× into a transparent layer, averaged
	// down and laid over the grid.
	// Later series (xroute comes last) are drawn first and wider, so that
	// where lines coincide (the same rate, say) each still shows as a band
	// around the one drawn over it.
	layer := image.NewRGBA(image.Rect(0, 0, pr.Dx()*superSample, pr.Dy()*superSample))
	for i := len(c.series) - 1; i >= 0; i-- {
		s := c.series[i]
		col := seriesColor(s.name, i)
		radius := lineWidth(i) / 2 * superSample
		var prevX, prevY float64
		for j := range s.x {
			lx := (px(s.x[j]) - float64(pr.Min.X)) * superSample
			ly := (py(s.y[j]) - float64(pr.Min.Y)) * superSample
			if j == 0 {
				stamp(layer, lx, ly, radius, col)
			} else {
				thickLine(layer, prevX, prevY, lx, ly, radius, col)
			}
			prevX, prevY = lx, ly
		}
	}
	draw.Draw(img, pr, downsample(layer, superSample), image.Point{}, draw.Over)

	// Frame, title, axis labels, legend.
	fill(img, image.Rect(pr.Min.X, pr.Min.Y, pr.Min.X+1, pr.Max.Y+1), colAxis)
	fill(img, image.Rect(pr.Min.X, pr.Max.Y, pr.Max.X+1, pr.Max.Y+1), colAxis)
	fill(img, image.Rect(pr.Max.X, pr.Min.Y, pr.Max.X+1, pr.Max.Y+1), colAxis)
	fill(img, image.Rect(pr.Min.X, pr.Min.Y, pr.Max.X+1, pr.Min.Y+1), colAxis)
	tx := (chartW - textWidth(c.title)) / 2
	drawText(img, tx, 24, c.title, colText)
	drawText(img, tx+1, 24, c.title, colText) // bold
	drawText(img, pr.Min.X+(pr.Dx()-textWidth(c.xLabel))/2, pr.Max.Y+40, c.xLabel, colText)
	drawTextUp(img, 16, pr.Min.Y+pr.Dy()/2, c.yLabel, colText)
	lx := pr.Max.X + 16
	drawText(img, lx, pr.Min.Y+10, "target", colAxis)
	for i, s := range c.series {
		y := pr.Min.Y + 30 + i*20
		w := int(math.Round(lineWidth(i)))
		fill(img, image.Rect(lx, y-w/2, lx+24, y-w/2+w), seriesColor(s.name, i))
		drawText(img, lx+30, y+4, s.name, colText)
	}
	return img
}

// xAxis returns the x range and its ticks.
func (c *lineChart) xAxis() (lo, hi float64, ticks []tick) {
	if c.xNines {
		hi = curveNines
		for _, p := range []string{"0", "50", "90", "99", "99.9", "99.99"} {
			v, _ := strconv.ParseFloat(p, 64)
			ticks = append(ticks, tick{nines(v), p})
		}
		return 0, hi, ticks
	}
	lo, hi = c.extent(func(s chartSeries) []float64 { return s.x })
	lo = min(lo, 0)
	for _, m := range c.marks {
		hi = max(hi, m.x)
	}
	return niceTicks(lo, hi)
}

// yAxis returns the y range and its ticks: from zero when asked or when the
// data comes near it, otherwise from just under the smallest value.
func (c *lineChart) yAxis() (lo, hi float64, ticks []tick) {
	lo, hi = c.extent(func(s chartSeries) []float64 { return s.y })
	if c.yFromZero || lo < 0.25*hi {
		lo = min(lo, 0)
	}
	return niceTicks(lo, hi+0.04*(hi-lo)) // headroom: no line along the top edge
}

func (c *lineChart) extent(values func(chartSeries) []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, v := range values(s) {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		return 0, 1
	}
	return lo, hi
}

// niceTicks widens [lo, hi] to multiples of the smallest step of 1, 2 or
// 5 × 10^k that makes at most seven intervals, and labels each multiple.
func niceTicks(lo, hi float64) (float64, float64, []tick) {
	if hi <= lo {
		d := math.Max(math.Abs(lo)*0.1, 1)
		lo, hi = lo-d, hi+d
	}
	mag := math.Pow(10, math.Floor(math.Log10((hi-lo)/10)))
	var step float64
	for _, f := range []float64{1, 2, 5, 10, 20, 50, 100} {
		step = f * mag
		if math.Ceil(hi/step-1e-9)-math.Floor(lo/step+1e-9) <= 7 {
			break
		}
	}
	lo, hi = math.Floor(lo/step+1e-9)*step, math.Ceil(hi/step-1e-9)*step
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	var ticks []tick
	for i := 0; ; i++ {
		v := lo + float64(i)*step
		if v > hi+step/2 {
			break
		}
		ticks = append(ticks, tick{v, strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return lo, hi, ticks
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// thickLine draws a segment as discs of radius r every pixel along it.
func thickLine(img *image.RGBA, x0, y0, x1, y1, r float64, c color.RGBA) {
	n := int(math.Ceil(math.Hypot(x1-x0, y1-y0)))
	for i := 0; i <= n; i++ {
		t := 1.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		stamp(img, x0+(x1-x0)*t, y0+(y1-y0)*t, r, c)
	}
}

// stamp fills a disc of radius r centred on (cx, cy).
func stamp(img *image.RGBA, cx, cy, r float64, c color.RGBA) {
	b := img.Bounds()
	for y := int(math.Floor(cy - r)); y <= int(math.Ceil(cy+r)); y++ {
		for x := int(math.Floor(cx - r)); x <= int(math.Ceil(cx+r)); x++ {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			if dx*dx+dy*dy <= r*r && (image.Point{x, y}).In(b) {
				img.SetRGBA(x, y, c)
			}
		}
	}
}

// downsample averages each f×f block of src (premultiplied) into one pixel.
func downsample(src *image.RGBA, f int) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/f, b.Dy()/f))
	n := uint32(f * f)
	for y := 0; y < dst.Rect.Dy(); y++ {
		for x := 0; x < dst.Rect.Dx(); x++ {
			var r, g, bl, a uint32
			for sy := y * f; sy < y*f+f; sy++ {
				i := src.PixOffset(x*f, sy)
				for sx := 0; sx < f; sx++ {
					p := src.Pix[i+4*sx : i+4*sx+4 : i+4*sx+4]
					r, g, bl, a = r+uint32(p[0]), g+uint32(p[1]), bl+uint32(p[2]), a+uint32(p[3])
				}
			}
			dst.SetRGBA(x, y, color.RGBA{uint8(r / n), uint8(g / n), uint8(bl / n), uint8(a / n)})
		}
	}
	return dst
}

func textWidth(s string) int { return font.MeasureString(basicfont.Face7x13, s).Ceil() }

// drawText writes s with its baseline at y, starting at x.
func drawText(img draw.Image, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// drawTextUp writes s rotated a quarter turn anticlockwise (reading upwards),
// centred on (cx, cy).
func drawTextUp(img *image.RGBA, cx, cy int, s string, c color.RGBA) {
	w, h := textWidth(s), basicfont.Face7x13.Height
	tmp := image.NewRGBA(image.Rect(0, 0, w, h))
	drawText(tmp, 0, basicfont.Face7x13.Ascent, s, c)
	// (x, y) in tmp goes to (x0+y, y0+w-1-x).
	x0, y0 := cx-h/2, cy-w/2
	for y := range h {
		for x := range w {
			if p := tmp.RGBAAt(x, y); p.A > 0 {
				img.Set(x0+y, y0+w-1-x, p)
			}
		}
	}
}
