package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// requestLog serves the request-log contract of the admin API
// (GET /admin/v1/requests, GET /admin/v1/requests/{id}) from rows the test
// adds: the client's side of `xroute logs`, until the real endpoint lands.
type requestLog struct {
	mu      sync.Mutex
	rows    []logRow
	queries []string
}

// add records rows in the order given: each gets the next seq.
func (l *requestLog) add(rows ...logRow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rows {
		r.Seq = int64(len(l.rows) + 1)
		l.rows = append(l.rows, r)
	}
}

func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queries = append(l.queries, r.URL.RawQuery)
	w.Header().Set("x-request-id", "req_srv_1")
	if r.Header.Get("Authorization") != "Bearer xra-test" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"Invalid admin key.","type":"authentication_error","code":"invalid_api_key"}}`)
		return
	}
	rows := append([]logRow(nil), l.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].CreatedAt.After(rows[j].CreatedAt) }) // newest first
	if id, ok := strings.CutPrefix(r.URL.Path, "/admin/v1/requests/"); ok {
		for _, row := range rows {
			if row.RequestID == id {
				json.NewEncoder(w).Encode(row)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"No such request.","type":"invalid_request_error","code":"not_found","param":"request_id"}}`)
		return
	}
	q := r.URL.Query()
	if v := q.Get("since_seq"); v != "" { // the tail: oldest first by seq
		n, _ := strconv.ParseInt(v, 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		out := []logRow{}
		for _, row := range l.rows {
			if row.Seq > n && (q.Get("model") == "" || row.Model == q.Get("model")) {
				out = append(out, row)
			}
		}
		more := limit > 0 && len(out) > limit
		if more {
			out = out[:limit]
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": out, "has_more": more})
		return
	}
	var from time.Time
	if s := q.Get("from"); s != "" {
		from, _ = time.Parse(time.RFC3339Nano, s)
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	start := 0
	if b := q.Get("before"); b != "" {
		start, _ = strconv.Atoi(b)
	}
	var out []logRow
	for _, row := range rows {
		if row.CreatedAt.Before(from) || (q.Get("model") != "" && row.Model != q.Get("model")) {
			continue // from is inclusive: the newest row comes back on every poll
		}
		out = append(out, row)
	}
	out = out[min(start, len(out)):]
	page := map[string]any{"object": "list", "has_more": false}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		page["has_more"] = true
		page["next_after"] = strconv.Itoa(start + limit)
	}
	if out == nil {
		out = []logRow{}
	}
	page["data"] = out
	json.NewEncoder(w).Encode(page)
}

func logsServer(t *testing.T, rows []logRow) string {
	t.Helper()
	l := &requestLog{}
	l.add(rows...)
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return srv.URL
}

func row(id string, at time.Time) logRow {
	return logRow{RequestID: id, CreatedAt: at, AccountID: "acct_default", KeyName: "app", Model: "gpt-4o-mini", Provider: "openai",
		Deployment: "gpt-4o-mini", Stream: true, Attempts: 1, Status: 200, LatencyMS: 120, TTFTMS: 45, InputTokens: 10, OutputTokens: 20, CostUSD: "0.000015"}
}

// lineWriter hands every line written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		s := w.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.lines <- s[:i]
		w.buf.Reset()
		w.buf.WriteString(s[i+1:])
	}
}

// TestLogsFollow: --follow prints what is there, oldest first, then each
// new request once as it arrives (the newest row, which the server lists
// again on every poll, is not repeated), and Ctrl-C ends it cleanly.
func TestLogsFollow(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	log := &requestLog{}
	log.add(row("req_2", t0.Add(time.Second)), row("req_1", t0))
	srv := httptest.NewServer(log)
	defer srv.Close()
	t.Setenv("XROUTE_URL", srv.URL)
	t.Setenv("XROUTE_ADMIN_KEY", "xra-test")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &lineWriter{lines: make(chan string, 100)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"logs", "--follow", "--interval", "1ms", "--json"}, w, io.Discard) }()

	next := func() logRow {
		t.Helper()
		select {
		case l := <-w.lines:
			var r logRow
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			return r
		case err := <-done:
			t.Fatalf("logs --follow ended: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no line")
		}
		return logRow{}
	}
	for _, want := range []string{"req_1", "req_2"} {
		if got := next(); got.RequestID != want {
			t.Fatalf("got %s, want %s", got.RequestID, want)
		}
	}
	// two arrive at the same instant, then one that started before all of
	// them (a long request) but was recorded last
	log.add(row("req_3", t0.Add(2*time.Second)), row("req_4", t0.Add(2*time.Second)))
	got := []string{next().RequestID, next().RequestID}
	sort.Strings(got)
	if got[0] != "req_3" || got[1] != "req_4" {
		t.Fatalf("got %v", got)
	}
	log.add(row("req_long", t0.Add(-time.Minute)))
	if got := next(); got.RequestID != "req_long" {
		t.Fatalf("got %s, want req_long (recorded after the others, started before them)", got.RequestID)
	}
	cancel() // Ctrl-C
	if err := <-done; err != nil {
		t.Fatalf("Ctrl-C must end --follow cleanly, got %v", err)
	}
	select {
	case l := <-w.lines:
		t.Fatalf("a row printed twice or late: %q", l)
	default:
	}
	// the polls continue from the last seq seen
	log.mu.Lock()
	queries := strings.Join(log.queries, "\n")
	log.mu.Unlock()
	if !strings.Contains(queries, "since_seq=4") {
		t.Fatalf("polls:\n%s", queries)
	}
}

func TestLogsListing(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var rows []logRow
	for i := 0; i < 250; i++ {
		rows = append(rows, row(fmt.Sprintf("req_%03d", i), t0.Add(time.Duration(i)*time.Second)))
	}
	t.Setenv("XROUTE_URL", logsServer(t, rows))
	t.Setenv("XROUTE_ADMIN_KEY", "xra-test")

	// the newest 120, across pages, oldest first
	r := runCLI(t, "logs", "--limit", "120", "--json")
	var got []logRow
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 120 || got[0].RequestID != "req_130" || got[119].RequestID != "req_249" {
		t.Fatalf("logs --limit 120: %d rows, %v", len(got), err)
	}
	// the table's columns
	r = runCLI(t, "logs", "--limit", "1")
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Scan()
	for _, col := range []string{"TIME", "ACCOUNT", "KEY", "MODEL", "PROVIDER/DEPLOYMENT", "ATTEMPTS", "STATUS", "LATENCY", "TTFT", "TOKENS IN/OUT", "COST USD", "REQUEST ID"} {
		if !strings.Contains(sc.Text(), col) {
			t.Errorf("header lacks %s: %q", col, sc.Text())
		}
	}
	sc.Scan()
	for _, cell := range []string{"2026-12-07T09:04:09.000Z", "acct_default", "app", "gpt-4o-mini", "openai", "200", "120ms", "45ms", "10/20", "0.000015", "req_249"} {
		if !strings.Contains(sc.Text(), cell) {
			t.Errorf("row lacks %s: %q", cell, sc.Text())
		}
	}
	// one request by id; an unknown one is the server's 404, with its request id
	if r := runCLI(t, "logs", "req_007", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"request_id": "req_007"`) {
		t.Fatalf("logs req_007: %+v", r)
	}
	if r := runCLI(t, "logs", "req_nope"); r.code != 1 || !strings.Contains(r.stderr, "No such request") || !strings.Contains(r.stderr, "request id req_srv_1") || !strings.Contains(r.stderr, "not_found") {
		t.Fatalf("logs req_nope: %+v", r)
	}
	// --since takes durations and times; bad ones are usage errors
	for _, s := range []string{"1h", "2d", "2026-12-07T09:00:00Z"} {
		if r := runCLI(t, "logs", "--since", s); r.code != 0 {
			t.Errorf("--since %s: %+v", s, r)
		}
	}
	if r := runCLI(t, "logs", "--since", "yesterday"); r.code != 2 {
		t.Errorf("--since yesterday: %+v", r)
	}
	// without a server it says what to set
	t.Setenv("XROUTE_URL", "")
	if r := runCLI(t, "logs"); r.code != 1 || !strings.Contains(r.stderr, "XROUTE_URL") {
		t.Errorf("logs without a server: %+v", r)
	}
}

// TestLogsAgainstTheGateway: `xroute logs` and `logs --follow` read the
// real request log of a running gateway: the rows of requests it served,
// with key name, deployment and cost, and a request made while following
// printed once.
func TestLogsAgainstTheGateway(t *testing.T) {
	dir := t.TempDir()
	up := httptest.NewServer(mock.New(mock.Config{CompletionTokens: 8}))
	defer up.Close()
	cfg := config.Default()
	cfg.Log.Level = "error"
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Usage.FlushInterval = 10 * time.Millisecond
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: up.URL + "/v1", APIKey: "sk-up"}}
	cfg.Models = []config.Model{{Name: "chat-small", Deployments: []config.Deployment{{Provider: "up", Model: "m", InputPrice: "1", OutputPrice: "2", Free: false}}}}
	ctx := context.Background()
	a, err := app.Build(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	admin, _, err := a.Keys.Create(ctx, keys.CreateParams{Name: "ops", Kind: keys.KindAdmin})
	if err != nil {
		t.Fatal(err)
	}
	caller, _, err := a.Keys.Create(ctx, keys.CreateParams{Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Ledger.TopUp(ctx, "acct_default", 1_000_000_000, "t", "test"); err != nil {
		t.Fatal(err)
	}
	chat := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"chat-small","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+caller)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chat: %d", resp.StatusCode)
		}
		return resp.Header.Get("x-request-id")
	}
	// rows are written by the usage batch: wait until `logs` shows them
	listed := func(args ...string) []logRow {
		t.Helper()
		r := runCLI(t, append([]string{"logs", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("logs: exit %d: %s", r.code, r.stderr)
		}
		var rows []logRow
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
			t.Fatalf("logs --json: %v: %s", err, r.stdout)
		}
		return rows
	}
	t.Setenv("XROUTE_URL", srv.URL)
	t.Setenv("XROUTE_ADMIN_KEY", admin)
	first := chat()
	var rows []logRow
	testutil.Wait(testutil.Timeout, func() bool { rows = listed("--request-id", first); return len(rows) != 0 })
	if len(rows) != 1 || rows[0].KeyName != "laptop" || rows[0].Model != "chat-small" || rows[0].Deployment == "" || rows[0].Status != 200 || rows[0].CostUSD == "0" || rows[0].Seq == 0 {
		t.Fatalf("logs --request-id %s: %+v", first, rows)
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &lineWriter{lines: make(chan string, 100)}
	done := make(chan error, 1)
	go func() { done <- run(fctx, []string{"logs", "--follow", "--interval", "20ms", "--json"}, w, io.Discard) }()
	line := func() logRow {
		t.Helper()
		select {
		case l := <-w.lines:
			var r logRow
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			return r
		case err := <-done:
			t.Fatalf("logs --follow ended: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no line")
		}
		return logRow{}
	}
	if r := line(); r.RequestID != first {
		t.Fatalf("follow starts with %s, want %s", r.RequestID, first)
	}
	second := chat()
	if r := line(); r.RequestID != second {
		t.Fatalf("follow printed %s, want the new request %s", r.RequestID, second)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Ctrl-C must end --follow cleanly: %v", err)
	}
	select {
	case l := <-w.lines:
		t.Fatalf("a row printed twice: %q", l)
	default:
	}
}
