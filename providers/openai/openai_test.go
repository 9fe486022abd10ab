package openai

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// capture records what the upstream received and answers with a canned reply.
type capture struct {
	body   map[string]json.RawMessage
	header http.Header
	status int
	reply  string
	hdrs   map[string]string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	c.body = nil
	json.Unmarshal(raw, &c.body)
	c.header = r.Header.Clone()
	for k, v := range c.hdrs {
		w.Header().Set(k, v)
	}
	if strings.HasPrefix(c.reply, "data:") {
		w.Header().Set("Content-Type", "text/event-stream")
	}
	w.WriteHeader(c.status)
	io.WriteString(w, c.reply)
}

func newAdapter(t *testing.T, h http.Handler) *Adapter {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p, err := New(config.Provider{Name: "up", Type: "openai", BaseURL: srv.URL + "/v1/", APIKey: "sk-test"}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Adapter)
}

func call(t *testing.T, body string, model string) *providers.Call {
	t.Helper()
	req, err := providers.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &providers.Call{Request: req, Model: model}
}

func TestForwardsUnknownFieldsAndRewritesOnlyModel(t *testing.T) {
	up := &capture{status: 200, reply: `{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2}}}`}
	a := newAdapter(t, up)
	body := `{"model":"public","messages":[{"role":"user","content":"hi"}],"temperature":0,"stop":"\n","reasoning_effort":"low","some_future_param":{"nested":[1,2]}}`
	resp, err := a.Chat(context.Background(), call(t, body, "upstream-id"))
	if err != nil {
		t.Fatal(err)
	}
	if string(up.body["model"]) != `"upstream-id"` {
		t.Fatalf("model not rewritten: %s", up.body["model"])
	}
	for field, want := range map[string]string{"temperature": `0`, "stop": `"\n"`, "reasoning_effort": `"low"`, "some_future_param": `{"nested":[1,2]}`} {
		if got := string(up.body[field]); got != want {
			t.Errorf("%s forwarded as %s, want %s", field, got, want)
		}
	}
	if _, ok := up.body["stream_options"]; ok {
		t.Error("non-stream requests must not gain stream_options")
	}
	if up.header.Get("Authorization") != "Bearer sk-test" {
		t.Errorf("auth header %q", up.header.Get("Authorization"))
	}
	if resp.Usage != (providers.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7, CachedTokens: 2}) {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func TestStreamAlwaysAsksForUsage(t *testing.T) {
	sse := "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n" +
		": keep-alive\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n" +
		"data: [DONE]\n\n"
	tests := []struct {
		name, body string
	}{
		{"caller did not ask", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"caller asked", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`},
		{"caller asked for none explicitly", `{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &capture{status: 200, reply: sse}
			a := newAdapter(t, up)
			st, err := a.ChatStream(context.Background(), call(t, tt.body, "m"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if string(up.body["stream_options"]) != `{"include_usage":true}` {
				t.Fatalf("upstream stream_options = %s", up.body["stream_options"])
			}
			var chunks, usageOnly int
			var usage *providers.Usage
			for {
				c, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				chunks++
				if c.UsageOnly {
					usageOnly++
					usage = c.Usage
				} else if c.Usage != nil {
					t.Fatalf("usage:null must not count as usage: %s", c.Data)
				}
			}
			if chunks != 3 || usageOnly != 1 || usage.PromptTokens != 5 {
				t.Fatalf("chunks=%d usageOnly=%d usage=%+v", chunks, usageOnly, usage)
			}
		})
	}
}

func TestUpstreamErrorsAreTyped(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		reply      string
		hdrs       map[string]string
		wantCode   string
		retryable  bool
		retryAfter time.Duration
	}{
		{"openai 429", 429, `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, map[string]string{"retry-after-ms": "1500", "Retry-After": "2"}, "rate_limit_exceeded", true, 1500 * time.Millisecond},
		{"400 with param", 400, `{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}`, nil, "", false, 0},
		{"numeric code", 503, `{"error":{"message":"overloaded","code":503}}`, map[string]string{"Retry-After": "3"}, "503", true, 3 * time.Second},
		{"not json", 502, `<html>bad gateway</html>`, nil, "", true, 0},
		{"string error", 500, `{"error":"boom"}`, nil, "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAdapter(t, &capture{status: tt.status, reply: tt.reply, hdrs: tt.hdrs})
			_, err := a.Chat(context.Background(), call(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "m"))
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("want *providers.Error, got %T %v", err, err)
			}
			if pe.Status != tt.status || pe.Code != tt.wantCode || pe.Retryable() != tt.retryable || pe.RetryAfter != tt.retryAfter || pe.Message == "" {
				t.Fatalf("got %+v", pe)
			}
		})
	}
}

func TestStreamErrorsAreTyped(t *testing.T) {
	tests := []struct {
		name  string
		reply string
	}{
		{"hang-up before [DONE]", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"},
		{"error event after 200", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAdapter(t, &capture{status: 200, reply: tt.reply})
			st, err := a.ChatStream(context.Background(), call(t, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`, "m"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Recv(); err != nil {
				t.Fatalf("first chunk: %v", err)
			}
			_, err = st.Recv()
			var pe *providers.Error
			if !errors.As(err, &pe) || !pe.MidStream {
				t.Fatalf("want a mid-stream *providers.Error, got %T %v", err, err)
			}
		})
	}
}

func TestTransportErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	p, _ := New(config.Provider{Name: "gone", BaseURL: url}, providers.Deps{})
	_, err := p.Chat(context.Background(), call(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "m"))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 0 || !pe.Retryable() {
		t.Fatalf("got %T %v", err, err)
	}
}

func TestStreamHeaderTimeoutIsRetryable(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	p, _ := New(config.Provider{Name: "slow", BaseURL: srv.URL, Timeout: 50 * time.Millisecond}, providers.Deps{Client: srv.Client()})
	_, err := p.ChatStream(context.Background(), call(t, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`, "m"))
	var pe *providers.Error
	if !errors.As(err, &pe) || !pe.Retryable() || !pe.Timeout() {
		t.Fatalf("header timeout must be a retryable timeout: %T %v", err, err)
	}
}

func TestNativeFormats(t *testing.T) {
	cases := []struct {
		base    string
		formats []string
		resp    bool
		compl   bool
	}{
		{"https://api.openai.com/v1", nil, true, true}, // gpt-3.5-turbo-instruct below
		{"https://API.OPENAI.COM/v1", nil, true, true},
		{"https://api.openai.com/v1", []string{"none"}, false, false},
		{"https://api.groq.com/openai/v1", nil, false, false},
		{"http://127.0.0.1:9/v1", []string{"responses"}, true, false},
		{"http://127.0.0.1:9/v1", []string{"completions"}, false, true},
	}
	for _, tc := range cases {
		a, err := New(config.Provider{Name: "p", Type: "openai", BaseURL: tc.base, NativeFormats: tc.formats}, providers.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if got := providers.Speaks(a, providers.FormatResponses, "gpt-4o"); got != tc.resp {
			t.Errorf("%s %v: responses %v, want %v", tc.base, tc.formats, got, tc.resp)
		}
		if got := providers.Speaks(a, providers.FormatCompletions, "gpt-3.5-turbo-instruct"); got != tc.compl {
			t.Errorf("%s %v: completions %v, want %v", tc.base, tc.formats, got, tc.compl)
		}
		if !providers.Speaks(a, providers.FormatChat, "gpt-4o") {
			t.Errorf("%s: every adapter speaks chat", tc.base)
		}
		// OpenAI's legacy endpoint does not serve chat models: their
		// completions go through the chat pivot, unless configured so.
		if got := providers.Speaks(a, providers.FormatCompletions, "gpt-4o"); got != (tc.compl && tc.formats != nil) {
			t.Errorf("%s %v: completions for gpt-4o %v", tc.base, tc.formats, got)
		}
	}
}
