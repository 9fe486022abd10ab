package mock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	openai "github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
)

func TestErrorsGoOpenAI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		cfg        Config
		key        string
		model      string
		content    string
		wantStatus int
		wantCode   string
		wantType   string
	}{
		{"missing key", Config{APIKey: "sk-right"}, "", "m", "hi", 401, "invalid_api_key", "invalid_request_error"},
		{"wrong key", Config{APIKey: "sk-right"}, "sk-wrong-key-123", "m", "hi", 401, "invalid_api_key", "invalid_request_error"},
		{"unknown model", Config{Models: []string{"a", "b"}}, "", "c", "hi", 404, "model_not_found", "invalid_request_error"},
		{"429", Config{FailRate429: 1, RetryAfter: 1500 * time.Millisecond}, "", "m", "hi", 429, "rate_limit_exceeded", "requests"},
		{"500", Config{FailRate500: 1}, "", "m", "hi", 500, "", "server_error"},
		{"503", Config{FailRate503: 1}, "", "m", "hi", 503, "", "server_error"},
		{"directive 429", Config{}, "", "m", "hi #mock:status=429", 429, "rate_limit_exceeded", "requests"},
		{"directive 400", Config{}, "", "m", "hi #mock:status=400", 400, "", "invalid_request_error"},
		{"directive quota", Config{}, "", "m", "hi #mock:quota", 429, "insufficient_quota", "insufficient_quota"},
		{"bad directive", Config{}, "", "m", "hi #mock:status=abc", 400, "", "invalid_request_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, tc.cfg)
			_, err := goClient(base, tc.key).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
				Model: tc.model, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: tc.content}},
			})
			var apiErr *goopenai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("want APIError, got %T %v", err, err)
			}
			code, _ := apiErr.Code.(string)
			if apiErr.HTTPStatusCode != tc.wantStatus || code != tc.wantCode || apiErr.Type != tc.wantType || apiErr.Message == "" {
				t.Fatalf("got %d code=%v type=%q msg=%q", apiErr.HTTPStatusCode, apiErr.Code, apiErr.Type, apiErr.Message)
			}
			if n := srv.Stats().Failures[tc.wantStatus]; n != 1 {
				t.Fatalf("Failures[%d] = %d", tc.wantStatus, n)
			}
		})
	}
}

func TestErrorsOfficial(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		cfg        Config
		key        string
		content    string
		wantStatus int
		wantCode   string
		check      func(t *testing.T, h http.Header)
	}{
		{"401", Config{APIKey: "sk-right"}, "sk-wrong", "hi", 401, "invalid_api_key", nil},
		{"404", Config{Models: []string{"other"}}, "", "hi", 404, "model_not_found", nil},
		{"429 retry-after", Config{FailRate429: 1, RetryAfter: 1500 * time.Millisecond}, "", "hi", 429, "rate_limit_exceeded", func(t *testing.T, h http.Header) {
			if h.Get("Retry-After") != "2" || h.Get("retry-after-ms") != "1500" || h.Get("x-ratelimit-remaining-requests") != "0" {
				t.Fatalf("headers %v", h)
			}
		}},
		{"429 directive retry-after", Config{}, "", "x #mock:status=429;retry-after=3", 429, "rate_limit_exceeded", func(t *testing.T, h http.Header) {
			if h.Get("Retry-After") != "3" || h.Get("retry-after-ms") != "3000" {
				t.Fatalf("headers %v", h)
			}
		}},
		{"quota", Config{}, "", "x #mock:quota", 429, "insufficient_quota", func(t *testing.T, h http.Header) {
			if h.Get("x-should-retry") != "false" {
				t.Fatalf("headers %v", h)
			}
		}},
		{"503", Config{}, "", "#mock:status=503", 503, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startServer(t, tc.cfg)
			_, err := officialClient(base, tc.key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tc.content)},
			})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want *openai.Error, got %T %v", err, err)
			}
			if apiErr.StatusCode != tc.wantStatus || apiErr.Code != tc.wantCode || apiErr.Message == "" {
				t.Fatalf("got %d code=%q msg=%q", apiErr.StatusCode, apiErr.Code, apiErr.Message)
			}
			if !strings.HasPrefix(apiErr.Response.Header.Get("x-request-id"), "req_") {
				t.Fatalf("no x-request-id: %v", apiErr.Response.Header)
			}
			if tc.check != nil {
				tc.check(t, apiErr.Response.Header)
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	cases := []struct {
		name, path, body string
		wantStatus       int
		wantParam        string // "" = null
		wantCode         string
	}{
		{"bad json", "/chat/completions", `{"model":`, 400, "", ""},
		{"empty body", "/chat/completions", ``, 400, "", ""},
		{"missing model", "/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model", "missing_required_parameter"},
		{"missing messages", "/chat/completions", `{"model":"m"}`, 400, "messages", "missing_required_parameter"},
		{"empty messages", "/chat/completions", `{"model":"m","messages":[]}`, 400, "messages", "empty_array"},
		{"missing role", "/chat/completions", `{"model":"m","messages":[{"content":"x"}]}`, 400, "messages[0].role", "missing_required_parameter"},
		{"bad max_tokens", "/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens", "integer_below_min_value"},
		{"bad content type", "/chat/completions", `{"model":"m","messages":[{"role":"user","content":5}]}`, 400, "messages.content", "invalid_type"},
		{"bad tool_choice", "/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, 400, "tool_choice", "invalid_value"},
		{"embeddings missing input", "/embeddings", `{"model":"e"}`, 400, "input", "missing_required_parameter"},
		{"embeddings bad format", "/embeddings", `{"model":"e","input":"x","encoding_format":"hex"}`, 400, "encoding_format", "invalid_value"},
		{"unknown route", "/nope", `{}`, 404, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, context.Background(), base+tc.path, tc.body, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d ct %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var e struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e.Error[k]; !ok {
					t.Fatalf("error lacks %q: %s", k, body)
				}
			}
			want := func(v string) string {
				if v == "" {
					return "null"
				}
				return strconv.Quote(v)
			}
			if string(e.Error["param"]) != want(tc.wantParam) || string(e.Error["code"]) != want(tc.wantCode) {
				t.Fatalf("body %s", body)
			}
		})
	}
}

func TestDirectives(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		header     string
		content    string
		wantStatus int
		wantWords  int
	}{
		{"header status", "status=503", "hi", 503, 0},
		{"header latency and tokens", "latency=10ms;tokens=3", "hi", 200, 3},
		{"message latency", "", "hi #mock:latency=5ms", 200, 16},
		{"message tokens", "", "#mock:tokens=2 hi", 200, 2},
		{"two directives", "", "#mock:tokens=2 hi #mock:latency=1", 200, 2},
		{"header overridden by message", "tokens=9", "hi #mock:tokens=4", 200, 4},
		{"bad header", "bogus=1", "hi", 400, 0},
		{"earlier user message ignored", "", "", 200, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{})
			msgs := `[{"role":"user","content":` + strconv.Quote(tc.content) + `}]`
			if tc.content == "" {
				msgs = `[{"role":"user","content":"#mock:status=500"},{"role":"assistant","content":"ok"},{"role":"user","content":"again"}]`
			}
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[DirectiveHeader] = tc.header
			}
			resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":`+msgs+`}`, hdr)
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tc.wantWords > 0 {
				var r goopenai.ChatCompletionResponse
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				if n := len(strings.Fields(r.Choices[0].Message.Content)); n != tc.wantWords {
					t.Fatalf("%d words: %s", n, body)
				}
			}
			if s := srv.Stats(); s.Chat != 1 || s.Requests != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestResetMidStream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     Config
		content string
	}{
		{"reset rate", Config{ResetRate: 1}, "hi"},
		{"directive", Config{}, "hi #mock:reset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, tc.cfg)
			st, err := goClient(base, "").CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
				Model: "m", Stream: true, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: tc.content}},
			})
			if err != nil {
				t.Fatal(err)
			}
			var recvErr error
			got := 0
			for {
				_, err := st.Recv()
				if err != nil {
					recvErr = err
					break
				}
				got++
			}
			st.Close()
			if errors.Is(recvErr, io.EOF) {
				t.Fatalf("stream ended cleanly after %d chunks; want an error", got)
			}

			stream := officialClient(base, "").Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tc.content)},
			})
			n := 0
			for stream.Next() {
				n++
			}
			if stream.Err() == nil {
				t.Fatalf("openai-go: no error after %d chunks", n)
			}
			_ = stream.Close()

			// Raw: exactly two events, no [DONE].
			resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"`+tc.content+`"}]}`, nil)
			events, err := readSSE(t, resp.Body)
			resp.Body.Close()
			if err == nil || len(events) != 2 {
				t.Fatalf("raw: %d events, err %v", len(events), err)
			}
			if s := srv.Stats(); s.Resets != 3 || s.Completed != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}

	t.Run("non-stream directive", func(t *testing.T) {
		_, base := startServer(t, Config{})
		_, err := goClient(base, "").CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
			Model: "m", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "#mock:reset"}},
		})
		if err == nil {
			t.Fatal("want a connection error")
		}
	})
}

func TestStreamErrorDirective(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	st, err := goClient(base, "").CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
		Model: "m", Stream: true, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "#mock:stream-error"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		_, err = st.Recv()
		if err != nil {
			break
		}
	}
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) || apiErr.Type != "server_error" {
		t.Fatalf("got %T %v", err, err)
	}

	stream := officialClient(base, "").Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("#mock:stream-error")},
	})
	for stream.Next() {
	}
	if stream.Err() == nil {
		t.Fatal("openai-go: want an error")
	}
}

func TestClientCancel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     Config
		content string
		stream  bool
	}{
		{"slow stream", Config{TokensPerSec: 50}, "#mock:tokens=100000", true},
		{"slow stream by directive", Config{}, "#mock:tokens=100000 #mock:tps=50", true},
		{"latency before headers", Config{Latency: time.Hour}, "hi", false},
		{"latency before stream", Config{}, "hi #mock:latency=1h", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, tc.cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			body := `{"model":"m","stream":` + strconv.FormatBool(tc.stream) + `,"messages":[{"role":"user","content":"` + tc.content + `"}]}`
			done := make(chan struct{})
			go func() {
				defer close(done)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", strings.NewReader(body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
				cancel()
				_, _ = io.Copy(io.Discard, br)
			}()
			if tc.stream && (tc.cfg.TokensPerSec > 0 || strings.Contains(tc.content, "tps=")) {
				testutil.Eventually(t, "stream start", func() bool { return srv.Stats().Streams == 1 })
			} else {
				testutil.Eventually(t, "request", func() bool { return srv.Stats().Active == 1 })
				cancel()
			}
			<-done
			testutil.Eventually(t, "Canceled", func() bool { return srv.Stats().Canceled == 1 })
			testutil.Eventually(t, "handler exit", func() bool { return srv.Stats().Active == 0 })
			if s := srv.Stats(); s.Completed != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}
