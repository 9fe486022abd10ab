package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/loadtest/mock"
)

// sendModel sends a model request to base+path with key (Anthropic's
// headers on the Messages routes, as its clients send them) and extra
// header pairs, and returns the answer with its body read.
func sendModel(t *testing.T, base, key, path, body string, hdr ...string) rawResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/v1/messages") {
		req.Header.Set("x-api-key", key)
		req.Header.Set("anthropic-version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{resp, string(raw)}
}

// logPost sends a model request and returns the status, the request id
// and the raw answer.
func logPost(t *testing.T, g *gateway, key, path, body string, hdr ...string) (int, string, string) {
	t.Helper()
	r := sendModel(t, g.srv.URL, key, path, body, hdr...)
	return r.StatusCode, r.Header.Get("x-request-id"), r.body
}

// adminGet calls the admin API and decodes the answer; it checks the
// answer is kept out of caches.
func adminGet(t *testing.T, g *gateway, admin, path string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/admin/v1"+path, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET %s: answer is not JSON: %v", path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %v, want %d", path, resp.StatusCode, out, want)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
	}
	return out
}

func adminPut(t *testing.T, g *gateway, admin, path, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, g.srv.URL+"/admin/v1"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		t.Fatalf("PUT %s: %d %v, want %d", path, resp.StatusCode, out, want)
	}
	return out
}

func listData(t *testing.T, page map[string]any) []map[string]any {
	t.Helper()
	list, ok := page["data"].([]any)
	if !ok {
		t.Fatalf("no data in %v", page)
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i] = v.(map[string]any)
	}
	return out
}

// flushCaptures waits until the usage records and captures of finished
// requests are written.
func (g *gateway) flushCaptures() {
	g.t.Helper()
	g.usage()
	if err := g.app.Captures.Flush(context.Background()); err != nil {
		g.t.Fatal(err)
	}
}

const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// TestRequestLogRecordsEveryEndpoint: each ingress fills the deployment,
// the endpoint and the trace id of its usage record; a malformed
// traceparent leaves the trace id empty.
func TestRequestLogRecordsEveryEndpoint(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	traceparent := "00-" + testTraceID + "-00f067aa0ba902b7-01"
	tests := []struct {
		endpoint, path, body string
		stream               bool
	}{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, false},
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi"}`, false},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi","stream":true}`, true},
		{"messages", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"messages", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"completions", "/v1/completions", `{"model":"gpt-4o-mini","prompt":"hi","max_tokens":8}`, false},
		{"embeddings", "/v1/embeddings", `{"model":"gpt-4o-mini","input":"hi"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.path+map[bool]string{true: " stream"}[tc.stream], func(t *testing.T) {
			st, id, raw := logPost(t, g, g.key, tc.path, tc.body, "traceparent", traceparent)
			if st != 200 {
				t.Fatalf("%d %s", st, raw)
			}
			rec := g.usageFor(id)
			if rec.Endpoint != tc.endpoint || rec.Deployment != "primary/mock-small" || rec.TraceID != testTraceID || rec.Stream != tc.stream {
				t.Errorf("record endpoint %q deployment %q trace %q stream %v; want %q primary/mock-small %s %v",
					rec.Endpoint, rec.Deployment, rec.TraceID, rec.Stream, tc.endpoint, testTraceID, tc.stream)
			}
		})
	}
	for _, bad := range []string{"01-" + testTraceID, "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01", "00-" + strings.ToUpper(testTraceID) + "-00f067aa0ba902b7-01"} {
		_, id, _ := logPost(t, g, g.key, "/v1/chat/completions", tests[0].body, "traceparent", bad)
		if rec := g.usageFor(id); rec.TraceID != "" {
			t.Errorf("traceparent %q: trace id %q, want none", bad, rec.TraceID)
		}
	}
}

// TestRequestLogFailedRequestNamesLastDeployment: a request no
// deployment served names the last one tried.
func TestRequestLogFailedRequestNamesLastDeployment(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{FailRate500: 1}})
	st, id, raw := logPost(t, g, g.key, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if st < 500 {
		t.Fatalf("%d %s, want a 5xx", st, raw)
	}
	rec := g.usageFor(id)
	if rec.Deployment != "primary/mock-small" || rec.Endpoint != "chat" || rec.Status != st {
		t.Errorf("record deployment %q endpoint %q status %d", rec.Deployment, rec.Endpoint, rec.Status)
	}
}

// TestRequestLogAdmin pages through the log with filters, finds a request
// by id, and refuses bad filters naming them.
func TestRequestLogAdmin(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	second, k2, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	var mine []string // the first key's requests, oldest first
	for i := range 5 {
		_, id, _ := logPost(t, g, g.key, "/v1/chat/completions", chat)
		mine = append(mine, id)
		if i%2 == 0 {
			logPost(t, g, second, "/v1/chat/completions", chat)
		}
	}
	logPost(t, g, g.key, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	g.flushCaptures()
	firstKey := g.usageFor(mine[0]).KeyID

	// Pages of 2 of the first key's gpt-4o-mini requests: 5, newest first.
	var got []string
	createdAt := map[string]time.Time{}
	path := "/requests?limit=2&model=gpt-4o-mini&status=2xx&key=" + firstKey
	for page := 0; ; page++ {
		p := adminGet(t, g, admin, path, 200)
		for _, r := range listData(t, p) {
			got = append(got, r["request_id"].(string))
			ts, err := time.Parse(time.RFC3339Nano, r["created_at"].(string))
			if err != nil {
				t.Fatalf("created_at %v: %v", r["created_at"], err)
			}
			createdAt[r["request_id"].(string)] = ts
			if r["key_id"] != firstKey || r["key_name"] != "test" || r["account_name"] != "default" || r["endpoint"] != "chat" ||
				r["deployment"] != "primary/mock-small" || r["status"] != float64(200) || r["captured"] != false {
				t.Errorf("row %v", r)
			}
		}
		if p["has_more"] != true {
			break
		}
		if page > 5 {
			t.Fatal("pages do not end")
		}
		path = "/requests?limit=2&model=gpt-4o-mini&status=2xx&key=" + firstKey + "&after=" + url.QueryEscape(p["next_after"].(string))
	}
	if len(got) != 5 {
		t.Fatalf("read %v, want the 5 requests %v", got, mine)
	}
	// Newest first: requests that finished within one millisecond tie on
	// created_at and follow the order their records were written in, so
	// the test checks the set and that time never goes up along the pages.
	want := map[string]bool{}
	for _, id := range mine {
		want[id] = true
	}
	for i, id := range got {
		if !want[id] {
			t.Fatalf("read %v, want the requests %v", got, mine)
		}
		delete(want, id)
		if i > 0 && createdAt[id].After(createdAt[got[i-1]]) {
			t.Fatalf("read %v: %s is newer than the row before it", got, id)
		}
	}
	if l := listData(t, adminGet(t, g, admin, "/requests?key="+k2.ID, 200)); len(l) != 3 || l[0]["key_name"] != "second" {
		t.Errorf("second key's requests: %v", l)
	}
	if l := listData(t, adminGet(t, g, admin, "/requests?request_id="+mine[2], 200)); len(l) != 1 || l[0]["request_id"] != mine[2] {
		t.Errorf("by request id: %v", l)
	}
	if l := listData(t, adminGet(t, g, admin, "/requests?provider=primary&model=gpt-4o&status=200&account="+keys.DefaultAccountID, 200)); len(l) != 1 {
		t.Errorf("gpt-4o requests: %v", l)
	}
	if l := listData(t, adminGet(t, g, admin, "/requests?status=error", 200)); len(l) != 0 {
		t.Errorf("errors: %v", l)
	}
	one := adminGet(t, g, admin, "/requests/"+mine[1], 200)
	if one["request_id"] != mine[1] || one["cost_usd"] == "" || one["capture"] != nil {
		t.Errorf("one request: %v", one)
	}
	if e := adminGet(t, g, admin, "/requests/req_nope", 404); errCode(e) != "not_found" {
		t.Errorf("unknown request: %v", e)
	}
	for _, bad := range []struct{ query, param string }{
		{"status=teapot", "status"}, {"status=600", "status"}, {"from=yesterday", "from"}, {"to=2026-13-01", "to"},
		{"before=nonsense", "before"}, {"after=bm9wZQ", "after"}, {"limit=0", "limit"}, {"limit=1001", "limit"},
	} {
		e := adminGet(t, g, admin, "/requests?"+bad.query, 400)
		if p, _ := e["error"].(map[string]any)["param"].(string); p != bad.param {
			t.Errorf("%s: %v, want param %s", bad.query, e, bad.param)
		}
	}
}

// TestCaptureOffStoresNothing: without a capture setting (the default),
// and with one turned off, no body is kept.
func TestCaptureOffStoresNothing(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	_, first, _ := logPost(t, g, g.key, "/v1/chat/completions", chat)
	adminPut(t, g, admin, "/accounts/"+keys.DefaultAccountID+"/capture", `{"enabled":false,"retention":"1d"}`, 200)
	_, second, _ := logPost(t, g, g.key, "/v1/chat/completions", chat)
	g.flushCaptures()
	for _, id := range []string{first, second} {
		if r := adminGet(t, g, admin, "/requests/"+id, 200); r["captured"] != false || r["capture"] != nil {
			t.Errorf("%s: %v", id, r)
		}
	}
	if n := countCaptures(t, g); n != 0 {
		t.Errorf("%d captures stored, want none", n)
	}
}

func countCaptures(t *testing.T, g *gateway) int {
	t.Helper()
	n := 0
	rows, _, err := g.app.DB.RequestLog(context.Background(), store.RequestLogFilter{}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Captured {
			n++
		}
	}
	return n
}

// TestCaptureStoresRedactedBodies: with capture on, the request body and
// the answer are kept, a provider key and an xroute key in the prompt
// scrubbed, and the change is in the audit log.
func TestCaptureStoresRedactedBodies(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	set := adminPut(t, g, admin, "/accounts/"+keys.DefaultAccountID+"/capture", `{"enabled":true,"retention":"7d","max_bytes":65536}`, 200)
	if set["enabled"] != true || set["retention"] != "1w" || set["max_bytes"] != float64(65536) {
		t.Fatalf("setting: %v", set)
	}
	if got := adminGet(t, g, admin, "/accounts/"+keys.DefaultAccountID+"/capture", 200); got["enabled"] != true || got["updated_at"] == nil {
		t.Errorf("setting read back: %v", got)
	}
	prompt := "my keys are " + providerKey + " and " + g.key + ", please keep them"
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + prompt + `"}]}`
	st, id, answer := logPost(t, g, g.key, "/v1/chat/completions", body)
	if st != 200 {
		t.Fatalf("%d %s", st, answer)
	}
	g.flushCaptures()
	r := adminGet(t, g, admin, "/requests/"+id, 200)
	cp, _ := r["capture"].(map[string]any)
	if r["captured"] != true || cp == nil {
		t.Fatalf("no capture: %v", r)
	}
	req, resp := cp["request_body"].(string), cp["response_body"].(string)
	if strings.Contains(req, providerKey) || strings.Contains(req, g.key) || strings.Contains(req, g.key[:20]) {
		t.Errorf("the captured request holds a key: %s", req)
	}
	if !strings.Contains(req, keys.Redacted) || !strings.Contains(req, "please keep them") || !strings.HasPrefix(req, `{"model":"gpt-4o-mini"`) {
		t.Errorf("captured request: %s", req)
	}
	if resp != answer || cp["truncated"] != false {
		t.Errorf("captured answer %q (truncated %v), want the answer sent %q", resp, cp["truncated"], answer)
	}
	if strings.Contains(resp, providerKey) {
		t.Error("the captured answer holds the provider key")
	}
	ev, err := g.app.Audit.List(context.Background(), auditlog.Filter{Kind: "capture.", Limit: 10})
	if err != nil || len(ev) != 1 || ev[0].AccountID != keys.DefaultAccountID || ev[0].Details["enabled"] != true {
		t.Errorf("audit of the change: %+v, %v", ev, err)
	}
}

// TestCaptureStreamTruncated: a stream's SSE text is kept up to the
// account's max bytes, then marked truncated.
func TestCaptureStreamTruncated(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{CompletionTokens: 64}})
	admin := g.adminKey(t)
	adminPut(t, g, admin, "/accounts/"+keys.DefaultAccountID+"/capture", `{"enabled":true,"max_bytes":300}`, 200)
	st, id, answer := logPost(t, g, g.key, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if st != 200 || len(answer) <= 300 {
		t.Fatalf("%d, %d bytes: want a stream longer than 300 bytes", st, len(answer))
	}
	g.flushCaptures()
	cp, _ := adminGet(t, g, admin, "/requests/"+id, 200)["capture"].(map[string]any)
	if cp == nil {
		t.Fatal("stream not captured")
	}
	resp := cp["response_body"].(string)
	if cp["truncated"] != true || len(resp) > 300 || len(resp) < 250 || !strings.HasPrefix(answer, resp) || !strings.HasPrefix(resp, "data: ") {
		t.Errorf("captured %d bytes (truncated %v): %q", len(resp), cp["truncated"], resp)
	}
}
