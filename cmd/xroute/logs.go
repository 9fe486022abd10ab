package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/config"
)

// logRow is one request of the request log, as the admin API lists it
// (GET /admin/v1/requests).
type logRow struct {
	RequestID    string    `json:"request_id"`
	Seq          int64     `json:"seq"`
	CreatedAt    time.Time `json:"created_at"`
	AccountID    string    `json:"account_id"`
	KeyID        string    `json:"key_id"`
	KeyName      string    `json:"key_name"`
	Model        string    `json:"model"`
	Provider     string    `json:"provider"`
	Deployment   string    `json:"deployment"`
	Endpoint     string    `json:"endpoint"`
	Stream       bool      `json:"stream"`
	Attempts     int       `json:"attempts"`
	Status       int       `json:"status"`
	ErrorCode    string    `json:"error_code"`
	LatencyMS    float64   `json:"latency_ms"`
	TTFTMS       float64   `json:"ttft_ms"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	CachedTokens int64     `json:"cached_tokens"`
	CacheWrite   int64     `json:"cache_write_tokens"`
	CostUSD      string    `json:"cost_usd"`
	CacheSaved   string    `json:"prompt_cache_saved_usd"`
	Estimated    bool      `json:"estimated"`
	TraceID      string    `json:"trace_id"`
}

// logsFlags are the flags of `xroute logs`.
type logsFlags struct {
	account, key, model, status, requestID, since string
	limit                                         int
	follow                                        bool
	interval                                      config.Duration
	out                                           *output
}

// logsPageSize is what one request to the admin API asks for.
const logsPageSize = 100

func newLogsCmd(stdout io.Writer) *cobra.Command {
	f := logsFlags{interval: config.Duration(2 * time.Second)}
	c := &cobra.Command{
		Use:   "logs [REQUEST_ID]",
		Short: "the request log: who called what, where it went, how long it took, what it cost",
		Long: `List the request log of a running server, oldest first (the newest at the
bottom), or show one request by its id. --follow keeps polling and prints
new requests as they arrive, until Ctrl-C.

The request log is read through the admin API: set XROUTE_URL and
XROUTE_ADMIN_KEY. With --follow, --json prints one JSON object per line.`,
		Example: `  xroute logs --since 1h --model gpt-4o-mini
  xroute logs --key key_123 --status 429 --limit 20
  xroute logs --follow
  xroute logs req_01HZX…`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", commandName(cmd), args[1])}
			}
			return nil
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.account, "account", "", "only this account's requests")
	fs.StringVar(&f.key, "key", "", "only this key's requests (key id)")
	fs.StringVar(&f.model, "model", "", "only this model")
	fs.StringVar(&f.status, "status", "", "only this HTTP status, e.g. 200 or 429")
	fs.StringVar(&f.requestID, "request-id", "", "only this request id")
	fs.StringVar(&f.since, "since", "", "only requests since: a duration back from now (30m, 1h, 2d) or an RFC 3339 time")
	fs.IntVar(&f.limit, "limit", 50, "how many requests (the newest)")
	fs.BoolVarP(&f.follow, "follow", "f", false, "keep printing new requests as they arrive, until Ctrl-C")
	fs.Var(&f.interval, "interval", "how often --follow polls")
	f.out = addOutputFlags(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := f.out.check(); err != nil {
			return err
		}
		if f.limit <= 0 {
			return fmt.Errorf("%w: --limit must be positive", errUsage)
		}
		if f.interval <= 0 {
			return fmt.Errorf("%w: --interval must be positive", errUsage)
		}
		r := remoteFromEnv()
		if r == nil {
			return errors.New("xroute logs reads the request log from a running server: set XROUTE_URL and XROUTE_ADMIN_KEY (an admin key)")
		}
		if len(args) == 1 {
			var row logRow
			if _, err := r.do(cmd.Context(), http.MethodGet, "/requests/"+url.PathEscape(args[0]), nil, nil, &row); err != nil {
				return err
			}
			if f.out.json {
				return printJSON(stdout, row)
			}
			return f.out.print(stdout, logListing([]logRow{row}))
		}
		q, err := f.query(time.Now())
		if err != nil {
			return err
		}
		return runLogs(cmd.Context(), r, q, f, stdout)
	}
	return c
}

// query is the filters as the admin API's parameters.
func (f logsFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for k, v := range map[string]string{"account": f.account, "key": f.key, "model": f.model, "status": f.status, "request_id": f.requestID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.status != "" {
		if _, err := strconv.Atoi(f.status); err != nil {
			return nil, fmt.Errorf("%w: --status must be an HTTP status such as 200 or 429", errUsage)
		}
	}
	if f.since != "" {
		from, err := parseSince(f.since, now)
		if err != nil {
			return nil, err
		}
		q.Set("from", from.UTC().Format(time.RFC3339))
	}
	return q, nil
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := config.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: --since must be a duration such as 1h or 2d, or an RFC 3339 time such as 2026-12-07T09:00:00Z", errUsage)
}

// runLogs prints the newest rows, then, with --follow, polls for newer
// ones until ctx is done (Ctrl-C), which is a normal end.
func runLogs(ctx context.Context, r *remote, q url.Values, f logsFlags, stdout io.Writer) error {
	rows, err := fetchLogs(ctx, r, q, f.limit)
	if err != nil {
		if f.follow && ctx.Err() != nil {
			return nil // Ctrl-C before the first page
		}
		return err
	}
	reverse(rows) // oldest first, as a log reads
	if !f.follow {
		return f.out.print(stdout, logListing(rows))
	}
	p := newLogPrinter(stdout, *f.out)
	if err := p.print(rows); err != nil {
		return err
	}
	// Follow by the order rows are recorded (seq), not by created_at: a
	// request's row is written when it ends, so a long request that
	// started before rows already shown still comes through once.
	var last int64
	for _, row := range rows {
		last = max(last, row.Seq)
	}
	if len(rows) == 0 {
		if last, err = newestSeq(ctx, r); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	tick := time.NewTicker(time.Duration(f.interval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for more := true; more; {
			pq := url.Values{}
			for k, v := range q {
				pq[k] = v
			}
			pq.Set("since_seq", strconv.FormatInt(last, 10))
			pq.Set("limit", strconv.Itoa(logsPageSize))
			var page struct {
				Data    []logRow `json:"data"`
				HasMore bool     `json:"has_more"`
			}
			if _, err := r.do(ctx, http.MethodGet, "/requests", pq, nil, &page); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if err := p.print(page.Data); err != nil {
				return err
			}
			for _, row := range page.Data {
				last = max(last, row.Seq)
			}
			more = page.HasMore && len(page.Data) > 0
		}
	}
}

// newestSeq is the seq of the newest row recorded, whatever the filters:
// where a follow with nothing to show yet starts. It reads the newest
// rows by time; the latest recorded is among them unless more requests
// than a page were in flight longer than every newer one.
func newestSeq(ctx context.Context, r *remote) (int64, error) {
	var page struct {
		Data []logRow `json:"data"`
	}
	if _, err := r.do(ctx, http.MethodGet, "/requests", url.Values{"limit": {strconv.Itoa(logsPageSize)}}, nil, &page); err != nil {
		return 0, err
	}
	var last int64
	for _, row := range page.Data {
		last = max(last, row.Seq)
	}
	return last, nil
}

// fetchLogs pages through the request log, newest first: up to limit rows
// (0: no limit).
func fetchLogs(ctx context.Context, r *remote, q url.Values, limit int) ([]logRow, error) {
	var all []logRow
	before := ""
	for {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		n := logsPageSize
		if limit > 0 {
			n = min(n, limit-len(all))
		}
		pq.Set("limit", strconv.Itoa(n))
		if before != "" {
			pq.Set("before", before)
		}
		var page struct {
			Data      []logRow `json:"data"`
			HasMore   bool     `json:"has_more"`
			NextAfter string   `json:"next_after"`
		}
		if _, err := r.do(ctx, http.MethodGet, "/requests", pq, nil, &page); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Code == "unknown_url" {
				return nil, fmt.Errorf("%w; this server has no request log API yet (upgrade it)", err)
			}
			return nil, err
		}
		all = append(all, page.Data...)
		if !page.HasMore || page.NextAfter == "" || (limit > 0 && len(all) >= limit) {
			break
		}
		before = page.NextAfter
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	if all == nil {
		all = []logRow{}
	}
	return all, nil
}

func reverse(rows []logRow) {
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
}

var logHeader = []string{"TIME", "ACCOUNT", "KEY", "MODEL", "PROVIDER/DEPLOYMENT", "ATTEMPTS", "STATUS", "LATENCY", "TTFT", "TOKENS IN/OUT", "CACHE READ/WRITE", "COST USD", "CACHE SAVED USD", "REQUEST ID"}

func logCells(r logRow) []string {
	key := r.KeyName
	if key == "" {
		key = r.KeyID
	}
	// A deployment is named provider/upstream-model: print it alone when
	// it already starts with the provider.
	where := r.Provider
	switch {
	case r.Deployment == "" || r.Deployment == r.Provider:
	case strings.HasPrefix(r.Deployment, r.Provider+"/"):
		where = r.Deployment
	default:
		where += "/" + r.Deployment
	}
	status := strconv.Itoa(r.Status)
	if r.ErrorCode != "" {
		status += " " + r.ErrorCode
	}
	ttft := "-"
	if r.Stream && r.TTFTMS > 0 {
		ttft = fmt.Sprintf("%.0fms", r.TTFTMS)
	}
	cost := r.CostUSD
	if r.Estimated && cost != "" {
		cost += "~"
	}
	return []string{r.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z"), r.AccountID, key, r.Model, where,
		strconv.Itoa(r.Attempts), status, fmt.Sprintf("%.0fms", r.LatencyMS), ttft,
		fmt.Sprintf("%d/%d", r.InputTokens, r.OutputTokens), fmt.Sprintf("%d/%d", r.CachedTokens, r.CacheWrite), cost, r.CacheSaved, r.RequestID}
}

func logListing(rows []logRow) listing {
	l := listing{header: logHeader, data: rows}
	for _, r := range rows {
		l.add(logCells(r)...)
	}
	return l
}

// logPrinter prints rows as they arrive: a header once, then each batch;
// the table has fixed columns (a tabwriter would realign every batch) and
// --json is one object per line.
type logPrinter struct {
	w       io.Writer
	out     output
	csv     *csv.Writer
	started bool
}

func newLogPrinter(w io.Writer, out output) *logPrinter {
	p := &logPrinter{w: w, out: out}
	if out.csv {
		p.csv = csv.NewWriter(w)
	}
	return p
}

var logWidths = []int{24, 14, 14, 18, 22, 8, 16, 9, 7, 13, 11, 0}

func (p *logPrinter) line(cells []string) {
	var b strings.Builder
	for i, c := range cells {
		if i < len(cells)-1 {
			fmt.Fprintf(&b, "%-*s ", logWidths[i], c)
		} else {
			b.WriteString(c)
		}
	}
	fmt.Fprintln(p.w, strings.TrimRight(b.String(), " "))
}

func (p *logPrinter) print(rows []logRow) error {
	switch {
	case p.out.json:
		enc := json.NewEncoder(p.w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case p.out.csv:
		if !p.started {
			p.csv.Write(logHeader)
			p.started = true
		}
		for _, r := range rows {
			p.csv.Write(logCells(r))
		}
		p.csv.Flush()
		return p.csv.Error()
	}
	if !p.started {
		p.line(logHeader)
		p.started = true
	}
	for _, r := range rows {
		p.line(logCells(r))
	}
	return nil
}
