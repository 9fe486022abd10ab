package gemini

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	mockgemini "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

// Errors: the shared table (providertest), auth, transport and timeout
// failures, request errors caught before the upstream, and the wire
// details of what the key and errors look like.

// suite is the shared adapter suite (providertest) against the mock.
func suite(a *Adapter) providertest.Suite {
	return providertest.Suite{Adapter: a, NewCall: chatCall, Model: "pub", Provider: "gem", Secret: testKey}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	a, _ := newMock(t, mockgemini.Config{Config: mock.Config{RetryAfter: 3 * time.Second}})
	suite(a).Errors(t, []providertest.Failure{
		{Name: "400", Content: "hi #mock:status=400", Status: 400, Type: "invalid_request_error"},
		{Name: "401", Content: "hi #mock:status=401", Status: 401, Type: "invalid_request_error", Code: "invalid_api_key"},
		{Name: "403", Content: "hi #mock:status=403", Status: 403, Type: "permission_error"},
		{Name: "404", Content: "hi #mock:status=404", Status: 404, Type: "invalid_request_error", Code: "model_not_found"},
		{Name: "429 with RetryInfo", Content: "hi #mock:status=429", Status: 429, Type: "requests", Code: "rate_limit_exceeded", Retryable: true, RetryAfter: 3 * time.Second},
		{Name: "429 retry-after directive", Content: "hi #mock:status=429;retry-after=1.5", Status: 429, Type: "requests", Code: "rate_limit_exceeded", Retryable: true, RetryAfter: 1500 * time.Millisecond},
		{Name: "429 daily quota", Content: "hi #mock:quota", Status: 429, Type: "insufficient_quota", Code: "insufficient_quota", Retryable: true},
		{Name: "500", Content: "hi #mock:status=500", Status: 500, Type: "server_error", Retryable: true},
		{Name: "503", Content: "hi #mock:status=503", Status: 503, Type: "server_error", Retryable: true},
		{Name: "504", Content: "hi #mock:status=504", Status: 504, Type: "server_error", Code: "timeout", Retryable: true, Timeout: true},
	})
}

func TestAuthErrors(t *testing.T) {
	s := mockgemini.New(mockgemini.Config{Config: mock.Config{APIKey: testKey}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	tests := []struct {
		name, key string
		status    int
		code      string
	}{
		{"missing key", "", 403, ""},
		{"wrong key", "AIzaWrongKey0000000000000000000000000000", 400, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := adapterFor(t, srv, tt.key)
			_, err := a.Chat(context.Background(), chatCall(t, `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`))
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != tt.status || pe.Code != tt.code || pe.Retryable() {
				t.Fatalf("err = %#v", err)
			}
			if tt.key != "" && strings.Contains(pe.Error(), tt.key) {
				t.Fatal("key echoed in the error")
			}
		})
	}
}

func TestModelNotFound(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{Config: mock.Config{Models: []string{"gemini-2.0-flash"}}})
	_, err := a.Chat(context.Background(), chatCall(t, `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 404 || pe.Code != "model_not_found" || !strings.Contains(pe.Message, "gemini-2.5-flash") {
		t.Fatalf("err = %#v", err)
	}
}

func TestStreamBreaks(t *testing.T) {
	t.Parallel()
	a, _ := newMock(t, mockgemini.Config{})
	suite(a).Breaks(t, []providertest.Break{
		{Name: "error event after 200", Content: "hi #mock:stream-error", Status: 500, Retryable: true},
		{Name: "connection cut", Content: "hi #mock:reset", Status: 0, Retryable: true},
		{Name: "connection cut before a tool call", Content: "hi #mock:reset", Extra: "," + weatherTools, Status: 0, Retryable: true, Early: true},
	})
}

func TestTransportErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	a := adapterFor(t, srv, testKey)
	srv.Close()
	_, err := a.Chat(context.Background(), chatCall(t, `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 0 || !pe.Retryable() {
		t.Fatalf("err = %#v", err)
	}
}

func TestStreamHeaderTimeout(t *testing.T) {
	t.Parallel()
	a, _ := newMock(t, mockgemini.Config{Config: mock.Config{Latency: time.Second}})
	a.timeout = 50 * time.Millisecond
	suite(a).TimeoutBeforeHeaders(t, a, "hi")
}

func TestRequestErrors(t *testing.T) {
	a, s := newMock(t, mockgemini.Config{})
	tests := []struct {
		name, body, param string
	}{
		{"n > 1", `{"model":"pub","n":2,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{"unknown role", `{"model":"pub","messages":[{"role":"wizard","content":"hi"}]}`, "messages[0].role"},
		{"tool result without a call", `{"model":"pub","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_x","content":"1"}]}`, "messages[1].tool_call_id"},
		{"audio part", `{"model":"pub","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"named tool not declared", `{"model":"pub","messages":[{"role":"user","content":"hi"}],` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`, "tool_choice"},
		{"only system", `{"model":"pub","messages":[{"role":"system","content":"hi"}]}`, "messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Chat(context.Background(), chatCall(t, tt.body))
			var re *providers.RequestError
			if !errors.As(err, &re) || re.Param != tt.param {
				t.Fatalf("err = %v (%#v), want RequestError on %q", err, err, tt.param)
			}
		})
	}
	if n := s.Stats().Chat; n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
}

// capture records the upstream request and answers with a canned body.
type capture struct {
	req    *http.Request
	body   []byte
	status int
	reply  string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.req = r.Clone(context.Background())
	c.body, _ = io.ReadAll(r.Body)
	if strings.HasPrefix(c.reply, "data:") {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(c.status)
	io.WriteString(w, c.reply)
}

func TestKeyInHeaderOnlyAndURL(t *testing.T) {
	up := &capture{status: 200, reply: `{"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},"finishReason":"STOP"}]}`}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	tests := []struct {
		name, base, version, model, wantPath string
	}{
		{"default version", srv.URL, "", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"},
		{"api_version", srv.URL + "/", "v1", "gemini-2.5-flash", "/v1/models/gemini-2.5-flash:generateContent"},
		{"version in base_url", srv.URL + "/v1beta", "", "models/gemini-2.5-pro", "/v1beta/models/gemini-2.5-pro:generateContent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newAdapter(config.Provider{Name: "g", BaseURL: tt.base, APIVersion: tt.version, APIKeyEnv: "GEMKEY", Headers: map[string]string{"X-Extra": "1", "x-goog-api-key": "overridden?"}},
				providers.Deps{Client: srv.Client(), Getenv: func(k string) string { return map[string]string{"GEMKEY": testKey}[k] }})
			if err != nil {
				t.Fatal(err)
			}
			call := chatCall(t, `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`)
			call.Model = tt.model
			if _, err := a.Chat(context.Background(), call); err != nil {
				t.Fatal(err)
			}
			if up.req.URL.Path != tt.wantPath || up.req.URL.RawQuery != "" {
				t.Errorf("URL %s, want %s", up.req.URL, tt.wantPath)
			}
			if up.req.Header.Get("x-goog-api-key") != testKey || up.req.Header.Get("X-Extra") != "1" || up.req.Header.Get("Authorization") != "" {
				t.Errorf("headers %v", up.req.Header)
			}
		})
	}
	t.Run("stream asks for SSE", func(t *testing.T) {
		up.reply = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n"
		a := adapterFor(t, srv, testKey)
		got := stream(t, a, `{"model":"pub","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if got.err != nil || got.text != "ok" || up.req.URL.RawQuery != "alt=sse" || !strings.HasSuffix(up.req.URL.Path, ":streamGenerateContent") {
			t.Fatalf("%+v %s", got, up.req.URL)
		}
	})
	t.Run("default base URL", func(t *testing.T) {
		a, err := newAdapter(config.Provider{Name: "g"}, providers.Deps{})
		if err != nil || a.modelURL("gemini-2.5-flash", ":generateContent") != "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent" {
			t.Fatalf("%v %v", a, err)
		}
	})
}

func TestErrorScrubsKey(t *testing.T) {
	up := &capture{status: 403, reply: `{"error":{"code":403,"message":"Permission denied: Consumer 'api_key:` + testKey + `' has been suspended. Other key AIzaSyOther000000000000000000000000000000 too.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.DebugInfo","detail":"` + testKey + `"}]}}`}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	a := adapterFor(t, srv, testKey)
	_, err := a.Chat(context.Background(), chatCall(t, `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 403 || strings.Contains(pe.Error(), "AIza") || !strings.Contains(pe.Message, "suspended") {
		t.Fatalf("err = %v", err)
	}
}

func TestUpstreamErrorShapes(t *testing.T) {
	tests := []struct {
		name, reply string
		status      int
		wantStatus  int
		wantType    string
		wantMsg     string
	}{
		{"array-wrapped", `[{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]`, 503, 503, "server_error", "overloaded"},
		{"html from a proxy", `<html>Bad Gateway</html>`, 502, 502, "", "upstream answered 502 Bad Gateway"},
		{"no status name", `{"error":{"code":429,"message":"slow down"}}`, 429, 429, "requests", "slow down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &capture{status: tt.status, reply: tt.reply}
			srv := httptest.NewServer(up)
			t.Cleanup(srv.Close)
			a := adapterFor(t, srv, testKey)
			_, err := a.Chat(context.Background(), chatCall(t, `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`))
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != tt.wantStatus || pe.Type != tt.wantType || pe.Message != tt.wantMsg {
				t.Fatalf("err = %#v", err)
			}
		})
	}
}

func TestPromptBlocked(t *testing.T) {
	up := &capture{status: 200, reply: `{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}`}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	a := adapterFor(t, srv, testKey)
	c := chat(t, a, `{"model":"pub","messages":[{"role":"user","content":"bad"}]}`)
	if c.Choices[0].FinishReason != "content_filter" || c.Usage.PromptTokens != 7 {
		t.Fatalf("%+v", c)
	}
}

func TestCloseMidStream(t *testing.T) {
	t.Parallel()
	a, s := newMock(t, mockgemini.Config{Config: mock.Config{TokensPerSec: 200, CompletionTokens: 400}})
	suite(a).CloseMidStream(t, func() int64 { return s.Stats().Canceled })
}
