package billing

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xroute/xroute/billing/books"
)

// ReportSource aggregates usage records (the store).
type ReportSource interface {
	UsageReport(ctx context.Context, q books.ReportQuery) ([]books.ReportRow, error)
}

// Report limits and defaults.
const (
	// MaxReportRange is the longest range one report covers.
	MaxReportRange = 366 * 24 * time.Hour
	// DefaultReportRange is the range when no start is given.
	DefaultReportRange = 30 * 24 * time.Hour
)

// QueryError is a report query a caller got wrong; Param names the
// parameter (group_by, from, to).
type QueryError struct {
	Param string
	Msg   string
}

func (e *QueryError) Error() string { return e.Msg }

// Reporter answers usage reports.
type Reporter struct {
	src ReportSource
	now func() time.Time
}

// NewReporter reports from src; now (nil: time.Now) supplies the default
// end of the range.
func NewReporter(src ReportSource, now func() time.Time) *Reporter {
	if now == nil {
		now = time.Now
	}
	return &Reporter{src: src, now: now}
}

// Report is a usage report: its query and one row per group.
type Report struct {
	Object  string            `json:"object"`
	GroupBy []books.Dimension `json:"group_by"`
	From    time.Time         `json:"from"`
	To      time.Time         `json:"to"`
	Data    []Row             `json:"data"`
}

// Row is one group. Only the fields of the dimensions grouped by are set;
// BucketStart is the start of the UTC day or hour. Costs are nano-USD
// (CostUSD is the same amount as a decimal string); latencies are
// microseconds.
type Row struct {
	AccountID        string     `json:"account_id,omitempty"`
	KeyID            string     `json:"key_id,omitempty"`
	Model            string     `json:"model,omitempty"`
	Provider         string     `json:"provider,omitempty"`
	BucketStart      *time.Time `json:"bucket_start,omitempty"`
	Requests         int64      `json:"requests"`
	Errors           int64      `json:"errors"`
	PromptTokens     int64      `json:"prompt_tokens"`
	CompletionTokens int64      `json:"completion_tokens"`
	CachedTokens     int64      `json:"cached_tokens"`
	CacheWriteTokens int64      `json:"cache_write_tokens"`
	// PromptCacheHitRatio is the share of prompt tokens read from the
	// provider's prompt cache (cached / prompt; 0 without prompt tokens).
	PromptCacheHitRatio float64 `json:"prompt_cache_hit_ratio"`
	CostNano            int64   `json:"cost_nano"`
	CostUSD             string  `json:"cost_usd"`
	// PromptCacheSavedNano is the money the prompt cache saved against the
	// uncached price (every cached and cache-written token at the plain
	// input price), net of what cache writes cost above it; negative when
	// the writes cost more than the reads saved.
	PromptCacheSavedNano int64  `json:"prompt_cache_saved_nano"`
	PromptCacheSavedUSD  string `json:"prompt_cache_saved_usd"`
	// CacheHits are the requests answered from xroute's response cache,
	// ResponseCacheHitRatio CacheHits/Requests (0 without requests), and
	// ResponseCacheSaved* what those hits would have cost at full price
	// minus what they were billed.
	CacheHits              int64   `json:"cache_hits"`
	ResponseCacheHitRatio  float64 `json:"response_cache_hit_ratio"`
	ResponseCacheSavedNano int64   `json:"response_cache_saved_nano"`
	ResponseCacheSavedUSD  string  `json:"response_cache_saved_usd"`
	LatencyP50US           int64   `json:"latency_p50_us"`
	LatencyP95US           int64   `json:"latency_p95_us"`
}

// Report fills the query's defaults (To: now; From: To minus
// DefaultReportRange), validates it and runs it. A *QueryError reports a
// bad query.
func (r *Reporter) Report(ctx context.Context, q books.ReportQuery) (Report, error) {
	if q.To.IsZero() {
		q.To = r.now()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-DefaultReportRange)
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	if err := ValidateQuery(q); err != nil {
		return Report{}, err
	}
	rows, err := r.src.UsageReport(ctx, q)
	if err != nil {
		return Report{}, fmt.Errorf("billing: %w", err)
	}
	rep := Report{Object: "usage.report", GroupBy: q.GroupBy, From: q.From, To: q.To, Data: make([]Row, len(rows))}
	if rep.GroupBy == nil {
		rep.GroupBy = []books.Dimension{}
	}
	for i, sr := range rows {
		rep.Data[i] = newRow(sr)
	}
	return rep, nil
}

func newRow(sr books.ReportRow) Row {
	row := Row{
		AccountID: sr.AccountID, KeyID: sr.KeyID, Model: sr.Model, Provider: sr.Provider,
		Requests: sr.Requests, Errors: sr.Errors, PromptTokens: sr.PromptTokens, CompletionTokens: sr.CompletionTokens,
		CachedTokens: sr.CachedTokens, CacheWriteTokens: sr.CacheWriteTokens, PromptCacheHitRatio: HitRatio(sr.CachedTokens, sr.PromptTokens),
		CostNano: sr.CostNano, CostUSD: FormatUSD(sr.CostNano),
		PromptCacheSavedNano: sr.PromptCacheSavedNano, PromptCacheSavedUSD: FormatUSD(sr.PromptCacheSavedNano),
		CacheHits: sr.CacheHits, ResponseCacheHitRatio: HitRatio(sr.CacheHits, sr.Requests),
		ResponseCacheSavedNano: sr.ResponseCacheSavedNano, ResponseCacheSavedUSD: FormatUSD(sr.ResponseCacheSavedNano),
		LatencyP50US: sr.LatencyP50.Microseconds(), LatencyP95US: sr.LatencyP95.Microseconds(),
	}
	if !sr.Bucket.IsZero() {
		b := sr.Bucket.UTC()
		row.BucketStart = &b
	}
	return row
}

// ValidateQuery checks a complete query: known dimensions, each once, at
// most one of day and hour, From before To, at most MaxReportRange.
func ValidateQuery(q books.ReportQuery) error {
	if err := validateGroupBy(q.GroupBy); err != nil {
		return err
	}
	if q.From.IsZero() || q.To.IsZero() {
		return &QueryError{"from", "A report needs both from and to."}
	}
	if !q.From.Before(q.To) {
		return &QueryError{"from", fmt.Sprintf("from (%s) must be before to (%s).", q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))}
	}
	if q.To.Sub(q.From) > MaxReportRange {
		return &QueryError{"to", fmt.Sprintf("The range from %s to %s is longer than 366 days; ask for at most 366 days per report.",
			q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))}
	}
	return nil
}

func validateGroupBy(groupBy []books.Dimension) error {
	seen := map[books.Dimension]bool{}
	for _, d := range groupBy {
		if !knownDimension(d) {
			return &QueryError{"group_by", fmt.Sprintf("Unknown group_by %q: use %s.", d, dimensionList())}
		}
		if seen[d] {
			return &QueryError{"group_by", fmt.Sprintf("group_by lists %q twice.", d)}
		}
		seen[d] = true
	}
	if seen[books.ByDay] && seen[books.ByHour] {
		return &QueryError{"group_by", "group_by may hold day or hour, not both."}
	}
	return nil
}

func knownDimension(d books.Dimension) bool {
	for _, k := range books.Dimensions() {
		if d == k {
			return true
		}
	}
	return false
}

func dimensionList() string {
	var names []string
	for _, d := range books.Dimensions() {
		names = append(names, string(d))
	}
	return strings.Join(names, ", ")
}

// ParseGroupBy reads a comma-separated list of dimensions ("account,model").
// Empty means no grouping: one row of totals.
func ParseGroupBy(s string) ([]books.Dimension, error) {
	var out []books.Dimension
	for _, part := range strings.Split(s, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" {
			continue
		}
		out = append(out, books.Dimension(part))
	}
	if err := validateGroupBy(out); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseTime reads an RFC 3339 time or a date (YYYY-MM-DD, midnight UTC).
// An empty string is the zero time (the default applies). param names the
// parameter in the error.
func ParseTime(param, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, &QueryError{param, fmt.Sprintf("%s must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01), got %q.", param, s)}
}

// HitRatio is part / whole, at most 1, rounded to 4 decimals so that JSON
// shows 0.3333, not 0.333333333 (0 without a whole): cached / prompt
// tokens for the prompt cache, hits / requests for the response cache.
func HitRatio(part, whole int64) float64 {
	if whole <= 0 || part <= 0 {
		return 0
	}
	return math.Round(float64(min(part, whole))/float64(whole)*10000) / 10000
}

// FormatPercent renders a ratio as a percentage with one decimal: 0.4213
// -> "42.1%".
func FormatPercent(ratio float64) string {
	return strconv.FormatFloat(ratio*100, 'f', 1, 64) + "%"
}

// FormatUSD renders nano-USD as dollars with 6 decimals, rounding half
// away from zero, with integers only: 1234567 -> "0.001235".
func FormatUSD(nano int64) string {
	neg := nano < 0
	u := uint64(nano)
	if neg {
		u = uint64(-nano) // two's complement: also right for math.MinInt64
	}
	micro := (u + 500) / 1000
	s := strconv.FormatUint(micro/1_000_000, 10) + "." + fmt.Sprintf("%06d", micro%1_000_000)
	if neg && micro != 0 {
		s = "-" + s
	}
	return s
}

// column is one column of a rendered report.
type column struct {
	head    string // table header
	csvHead string
	numeric bool
	summed  bool             // the TOTAL line shows its sum
	cell    func(Row) string // table text
	csvCell func(Row) string // CSV text (nil: cell)
}

func columns(groupBy []books.Dimension) []column {
	var cols []column
	for _, d := range groupBy {
		switch d {
		case books.ByAccount:
			cols = append(cols, column{head: "ACCOUNT", csvHead: "account_id", cell: func(r Row) string { return r.AccountID }})
		case books.ByKey:
			cols = append(cols, column{head: "KEY", csvHead: "key_id", cell: func(r Row) string { return r.KeyID }})
		case books.ByModel:
			cols = append(cols, column{head: "MODEL", csvHead: "model", cell: func(r Row) string { return r.Model }})
		case books.ByProvider:
			cols = append(cols, column{head: "PROVIDER", csvHead: "provider", cell: func(r Row) string { return r.Provider }})
		case books.ByDay, books.ByHour:
			layout, head := time.DateOnly, "DAY (UTC)"
			if d == books.ByHour {
				layout, head = "2006-01-02 15:00", "HOUR (UTC)"
			}
			cols = append(cols, column{head: head, csvHead: "bucket_start",
				cell:    func(r Row) string { return bucketText(r, layout) },
				csvCell: func(r Row) string { return bucketText(r, time.RFC3339) }})
		}
	}
	num := func(head, csvHead string, v func(Row) int64) column {
		return column{head: head, csvHead: csvHead, numeric: true, summed: true, cell: func(r Row) string { return strconv.FormatInt(v(r), 10) }}
	}
	return append(cols,
		num("REQUESTS", "requests", func(r Row) int64 { return r.Requests }),
		num("ERRORS", "errors", func(r Row) int64 { return r.Errors }),
		num("PROMPT", "prompt_tokens", func(r Row) int64 { return r.PromptTokens }),
		num("COMPLETION", "completion_tokens", func(r Row) int64 { return r.CompletionTokens }),
		num("CACHED", "cached_tokens", func(r Row) int64 { return r.CachedTokens }),
		num("CACHE WRITE", "cache_write_tokens", func(r Row) int64 { return r.CacheWriteTokens }),
		// the total's ratio is computed from its sums, as every row's is
		column{head: "CACHED %", csvHead: "prompt_cache_hit_ratio", numeric: true, summed: true,
			cell:    func(r Row) string { return FormatPercent(HitRatio(r.CachedTokens, r.PromptTokens)) },
			csvCell: func(r Row) string { return strconv.FormatFloat(HitRatio(r.CachedTokens, r.PromptTokens), 'f', 4, 64) }},
		column{head: "COST (USD)", csvHead: "cost_usd", numeric: true, summed: true, cell: func(r Row) string { return r.CostUSD }},
		column{head: "PROMPT SAVED (USD)", csvHead: "prompt_cache_saved_usd", numeric: true, summed: true, cell: func(r Row) string { return FormatUSD(r.PromptCacheSavedNano) }},
		num("CACHE HITS", "cache_hits", func(r Row) int64 { return r.CacheHits }),
		column{head: "HIT %", csvHead: "response_cache_hit_ratio", numeric: true, summed: true,
			cell:    func(r Row) string { return FormatPercent(HitRatio(r.CacheHits, r.Requests)) },
			csvCell: func(r Row) string { return strconv.FormatFloat(HitRatio(r.CacheHits, r.Requests), 'f', 4, 64) }},
		column{head: "HITS SAVED (USD)", csvHead: "response_cache_saved_usd", numeric: true, summed: true, cell: func(r Row) string { return FormatUSD(r.ResponseCacheSavedNano) }},
		column{head: "P50 MS", csvHead: "latency_p50_us", numeric: true,
			cell: func(r Row) string { return millis(r.LatencyP50US) }, csvCell: func(r Row) string { return strconv.FormatInt(r.LatencyP50US, 10) }},
		column{head: "P95 MS", csvHead: "latency_p95_us", numeric: true,
			cell: func(r Row) string { return millis(r.LatencyP95US) }, csvCell: func(r Row) string { return strconv.FormatInt(r.LatencyP95US, 10) }},
	)
}

func bucketText(r Row, layout string) string {
	if r.BucketStart == nil {
		return ""
	}
	return r.BucketStart.UTC().Format(layout)
}

// millis renders microseconds as milliseconds with one decimal.
func millis(us int64) string {
	tenths := (us + 50) / 100
	return strconv.FormatInt(tenths/10, 10) + "." + strconv.FormatInt(tenths%10, 10)
}

// WriteTable writes the report as an aligned table: text columns left,
// numbers right, and a TOTAL line when there is more than one row
// (percentiles do not add up, so the total leaves them blank).
func WriteTable(w io.Writer, rep Report) error {
	cols := columns(rep.GroupBy)
	lines := [][]string{make([]string, len(cols))}
	for i, c := range cols {
		lines[0][i] = c.head
	}
	var total Row
	for _, r := range rep.Data {
		line := make([]string, len(cols))
		for i, c := range cols {
			line[i] = c.cell(r)
		}
		lines = append(lines, line)
		total.Requests += r.Requests
		total.Errors += r.Errors
		total.PromptTokens += r.PromptTokens
		total.CompletionTokens += r.CompletionTokens
		total.CachedTokens += r.CachedTokens
		total.CacheWriteTokens += r.CacheWriteTokens
		total.CostNano += r.CostNano
		total.PromptCacheSavedNano += r.PromptCacheSavedNano
		total.CacheHits += r.CacheHits
		total.ResponseCacheSavedNano += r.ResponseCacheSavedNano
	}
	if len(rep.Data) > 1 {
		total.CostUSD = FormatUSD(total.CostNano)
		total.PromptCacheSavedUSD = FormatUSD(total.PromptCacheSavedNano)
		total.ResponseCacheSavedUSD = FormatUSD(total.ResponseCacheSavedNano)
		line := make([]string, len(cols))
		for i, c := range cols {
			switch {
			case i == 0 && !c.numeric:
				line[i] = "TOTAL"
			case c.summed:
				line[i] = c.cell(total)
			}
		}
		lines = append(lines, line)
	}
	width := make([]int, len(cols))
	for _, line := range lines {
		for i, s := range line {
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usage %s to %s (UTC, end exclusive)\n", rep.From.UTC().Format(time.RFC3339), rep.To.UTC().Format(time.RFC3339))
	var out strings.Builder
	for _, line := range lines {
		out.Reset()
		for i, s := range line {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
			if i > 0 {
				out.WriteString("  ")
			}
			if cols[i].numeric {
				out.WriteString(pad + s)
			} else {
				out.WriteString(s + pad)
			}
		}
		b.WriteString(strings.TrimRight(out.String(), " "))
		b.WriteString("\n")
	}
	if len(rep.Data) == 0 {
		b.WriteString("(no usage in this range)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCSV writes the report as RFC 4180 CSV (CRLF line ends) with a
// header row. Costs are exact (cost_usd and cost_nano), latencies in
// microseconds, bucket_start in RFC 3339. A text cell that a spreadsheet
// would run as a formula (=, +, -, @ first) is prefixed with a quote.
func WriteCSV(w io.Writer, rep Report) error {
	cols := columns(rep.GroupBy)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	rec := make([]string, 0, len(cols)+1)
	for _, c := range cols {
		rec = append(rec, c.csvHead)
		switch c.csvHead {
		case "cost_usd":
			rec = append(rec, "cost_nano")
		case "prompt_cache_saved_usd":
			rec = append(rec, "prompt_cache_saved_nano")
		case "response_cache_saved_usd":
			rec = append(rec, "response_cache_saved_nano")
		}
	}
	if err := cw.Write(rec); err != nil {
		return err
	}
	for _, r := range rep.Data {
		rec = rec[:0]
		for _, c := range cols {
			switch {
			case c.csvCell != nil:
				rec = append(rec, c.csvCell(r))
			case c.numeric:
				rec = append(rec, c.cell(r))
			default:
				rec = append(rec, defuseFormula(c.cell(r)))
			}
			switch c.csvHead {
			case "cost_usd":
				rec = append(rec, strconv.FormatInt(r.CostNano, 10))
			case "prompt_cache_saved_usd":
				rec = append(rec, strconv.FormatInt(r.PromptCacheSavedNano, 10))
			case "response_cache_saved_usd":
				rec = append(rec, strconv.FormatInt(r.ResponseCacheSavedNano, 10))
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func defuseFormula(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
