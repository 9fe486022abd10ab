package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/loadtest/mock"
)

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func TestBadRequestsGetOpenAIShapedErrors(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{maxBody: 4096, allowedModels: []string{"gpt-4o-mini"}})
	big := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`
	tests := []struct {
		name, method, path, body string
		auth                     string // "" = the test key
		status                   int
		code, param              string
	}{
		{"malformed JSON", "POST", "/chat/completions", `{"model":`, "", 400, "", ""},
		{"not an object", "POST", "/chat/completions", `[1,2]`, "", 400, "", ""},
		{"missing model", "POST", "/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, "", 400, "", "model"},
		{"missing messages", "POST", "/chat/completions", `{"model":"gpt-4o-mini"}`, "", 400, "", "messages"},
		{"messages not an array", "POST", "/chat/completions", `{"model":"gpt-4o-mini","messages":"hi"}`, "", 400, "", "messages"},
		{"wrong type for stream", "POST", "/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stream":"yes"}`, "", 400, "", "stream"},
		{"body over the limit", "POST", "/chat/completions", big, "", 413, "request_too_large", ""},
		{"no key", "POST", "/chat/completions", `{}`, "none", 401, "missing_api_key", ""},
		{"basic auth is not bearer", "POST", "/chat/completions", `{}`, "Basic eHI6eA==", 401, "missing_api_key", ""},
		{"key in the URL is refused", "GET", "/models?api_key=KEY", ``, "none", 401, "key_in_url", ""},
		{"key in the URL is refused even with a good header", "GET", "/models?x=KEY", ``, "", 401, "key_in_url", ""},
		{"well-formed unknown key", "GET", "/models", ``, "Bearer xr-0000000000000000000000000000000000000A", 401, "invalid_api_key", ""},
		{"model the key may not use", "POST", "/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, "", 403, "model_not_allowed", "model"},
		{"unknown model", "POST", "/chat/completions", `{"model":"gpt-5-ultra","messages":[{"role":"user","content":"x"}]}`, "", 404, "model_not_found", "model"},
		{"NUL in the model name", "POST", "/chat/completions", `{"model":"x\u0000","messages":[{"role":"user","content":"x"}]}`, "", 400, "invalid_model", "model"},
		{"control character in the model name", "POST", "/chat/completions", `{"model":"gpt\n4o","messages":[{"role":"user","content":"x"}]}`, "", 400, "invalid_model", "model"},
		{"model name over 256 bytes", "POST", "/chat/completions", `{"model":"` + strings.Repeat("m", 257) + `","messages":[{"role":"user","content":"x"}]}`, "", 400, "invalid_model", "model"},
		{"embeddings: NUL in the model name", "POST", "/embeddings", `{"model":"e\u0000","input":"x"}`, "", 400, "invalid_model", "model"},
		{"unknown model by id", "GET", "/models/gpt-4o", ``, "", 404, "model_not_found", "model"},
		{"unknown route", "POST", "/nothing-here", `{}`, "", 404, "unknown_url", ""},
		{"wrong method", "GET", "/chat/completions", ``, "", 405, "method_not_allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := strings.ReplaceAll(tt.path, "KEY", g.key)
			req, _ := http.NewRequest(tt.method, g.base+path, strings.NewReader(tt.body))
			switch tt.auth {
			case "":
				req.Header.Set("Authorization", "Bearer "+g.key)
			case "none":
			default:
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, raw)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
			if !strings.HasPrefix(resp.Header.Get("x-request-id"), "req_") {
				t.Fatal("missing x-request-id")
			}
			var eb errorBody
			if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Message == "" || eb.Error.Type == "" {
				t.Fatalf("not an OpenAI error body: %s", raw)
			}
			if tt.code != "" && (eb.Error.Code == nil || *eb.Error.Code != tt.code) {
				t.Fatalf("code %v, want %q: %s", eb.Error.Code, tt.code, raw)
			}
			if tt.param != "" && (eb.Error.Param == nil || *eb.Error.Param != tt.param) {
				t.Fatalf("param %v, want %q: %s", eb.Error.Param, tt.param, raw)
			}
			if strings.Contains(string(raw), g.key) {
				t.Fatal("an error answer echoed the key")
			}
		})
	}
	if n := g.primary.Stats().Chat; n != 0 {
		t.Fatalf("no bad request may reach the upstream; it saw %d", n)
	}
}

func TestModelsListOnlyAllowedModels(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{allowedModels: []string{"gpt-4o-mini"}})
	list, err := goClient(g).ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 1 || list.Models[0].ID != "gpt-4o-mini" || list.Models[0].Object != "model" {
		t.Fatalf("models: %+v", list.Models)
	}
	m, err := goClient(g).GetModel(context.Background(), "gpt-4o-mini")
	if err != nil || m.ID != "gpt-4o-mini" {
		t.Fatalf("get model: %+v %v", m, err)
	}
}

func TestFailoverToBackupBeforeFirstByte(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{FailRate503: 1}, backup: &mock.Config{}})
	ctx := context.Background()
	resp, err := goClient(g).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if h := resp.Header(); h.Get("x-xroute-provider") != "backup" || h.Get("x-xroute-attempts") != "2" || h.Get("x-xroute-model") != "mock-small-b" {
		t.Fatalf("routing headers %v", h)
	}
	st, err := goClient(g).CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		if _, err := st.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	rec := g.usageFor(st.Header().Get("x-request-id"))
	if rec.Provider != "backup" || rec.Attempts != 2 || rec.Status != 200 || rec.CompletionTokens == 0 {
		t.Fatalf("usage record %+v", rec)
	}
}

func TestStreamBrokenMidwayEndsWithErrorEvent(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{CompletionTokens: 20}})
	st, err := goClient(g).CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
		Model: "gpt-4o-mini", Stream: true, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi #mock:reset"}},
	})
	if err != nil {
		t.Fatalf("the stream starts fine: %v", err)
	}
	defer st.Close()
	got := 0
	for {
		_, err = st.Recv()
		if err != nil {
			break
		}
		got++
	}
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "interrupted") {
		t.Fatalf("want an error event after %d chunks, got %T %v", got, err, err)
	}
	if got == 0 {
		t.Fatal("the delivered part must reach the caller before the error")
	}
	rec := g.usageFor(st.Header().Get("x-request-id"))
	// The upstream hung up mid-stream: neither unreachable nor the caller.
	if rec.ErrorCode != "upstream_disconnected" || rec.Status < 500 {
		t.Fatalf("usage record %+v", rec)
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{TokensPerSec: 20, CompletionTokens: 400}})
	ctx, cancel := context.WithCancel(context.Background())
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`
	req, _ := http.NewRequestWithContext(ctx, "POST", g.base+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("x-request-id")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event: %q %v", line, err)
	}
	cancel() // the caller goes away after the first chunk
	resp.Body.Close()

	testutil.Eventually(t, "the upstream request to be canceled", func() bool { return g.primary.Stats().Canceled != 0 })
	if st := g.primary.Stats(); st.Completed != 0 {
		t.Fatalf("upstream finished a stream nobody was reading: %+v", st)
	}
	if rec := g.usageFor(id); rec.Status != 499 || rec.ErrorCode != "client_closed" {
		t.Fatalf("usage record %+v", rec)
	}
}

func TestGracefulShutdownFinishesStreamAndRecordsUsage(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{TokensPerSec: 50, CompletionTokens: 25}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g.app.Handler}
	go srv.Serve(ln)

	body := `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"slow please"}]}`
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	// SIGTERM arrives while the stream is in flight.
	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shutdownDone <- srv.Shutdown(ctx)
	}()
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("stream cut by shutdown: %v", err)
	}
	if !bytes.HasSuffix(rest, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream did not complete: ...%q", rest[max(0, len(rest)-80):])
	}
	if err := <-shutdownDone; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// New connections are refused once shutdown began.
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
	// serve flushes the usage queue after Shutdown returns.
	if err := g.app.Recorder.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := g.app.DB.ListUsage(context.Background(), storeFilter(resp.Header.Get("x-request-id")))
	if err != nil || len(recs) != 1 {
		t.Fatalf("usage after shutdown: %v %v", recs, err)
	}
	if recs[0].CompletionTokens != 25 || recs[0].Status != 200 {
		t.Fatalf("usage record %+v", recs[0])
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	resp, err := http.Get(g.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-request-id") == "" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestAccessLogNamesKeyIDNeverKey proves the access log identifies the
// caller by key id while no key material (caller or provider, good or bad)
// reaches any line; the same leak check also runs after every test.
func TestAccessLogNamesKeyIDNeverKey(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{APIKey: providerKey}})
	ctx := context.Background()
	if _, err := goClient(g).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}); err != nil {
		t.Fatal(err)
	}
	// A typo in the key's last character (never the character it has: the
	// key is random, and a "typo" to the same letter was the right key).
	typo := "Z"
	if strings.HasSuffix(g.key, typo) {
		typo = "Y"
	}
	wrong := goopenai.DefaultConfig(g.key[:len(g.key)-1] + typo)
	wrong.BaseURL = g.base
	goopenai.NewClientWithConfig(wrong).ListModels(ctx)
	g.close()

	var sawSuccess, sawRejected bool
	for _, line := range strings.Split(strings.TrimSpace(g.logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["msg"] != "request" {
			continue
		}
		for _, f := range []string{"request_id", "status", "latency", "path"} {
			if _, ok := entry[f]; !ok {
				t.Errorf("access log line lacks %s: %s", f, line)
			}
		}
		switch entry["status"] {
		case float64(200):
			sawSuccess = entry["key_id"] != nil && entry["model"] == "gpt-4o-mini" && entry["provider"] == "primary" && entry["completion_tokens"] != nil
		case float64(401):
			sawRejected = entry["error_code"] == "invalid_api_key"
		}
	}
	if !sawSuccess || !sawRejected {
		t.Fatalf("expected a 200 line with key id, model, provider, tokens and a 401 line; logs:\n%s", g.logs.String())
	}
	if strings.Contains(g.logs.String(), g.key[:len(g.key)-1]) {
		t.Fatal("the mistyped key reached the logs")
	}
}
