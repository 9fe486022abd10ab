package anthropic

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

	"go.uber.org/goleak"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	amock "github.com/xroute/xroute/loadtest/mock/anthropic"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "sk-ant-test-key"

// newMock starts the mock Anthropic upstream and an adapter for it.
func newMock(t *testing.T, cfg amock.Config) (*Adapter, *amock.Server) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	s := amock.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	p, err := New(config.Provider{Name: "claude", Type: "anthropic", BaseURL: srv.URL, APIKey: testKey}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Adapter), s
}

func call(t *testing.T, body string) *providers.Call {
	t.Helper()
	req, err := providers.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &providers.Call{Request: req, Model: "claude-upstream"}
}

// completion is the OpenAI chat.completion the adapter renders.
type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Role      string               `json:"role"`
			Content   *string              `json:"content"`
			ToolCalls []providers.ToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

// streamed is a stream reassembled the way an OpenAI client does.
type streamed struct {
	content   string
	calls     []providers.ToolCall
	finish    string
	usage     *providers.Usage
	chunks    int
	roleFirst bool
}

type chunkJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Choices []struct {
		Delta struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				Index    *int   `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string  `json:"name"`
					Arguments *string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// collect reads st to the end, checking what the OpenAI SDKs' stream
// helpers check: one id, role first, call ids/names only on a call's first
// fragment, a finish_reason.
func collect(t *testing.T, st providers.Stream) (*streamed, error) {
	t.Helper()
	defer st.Close()
	out := &streamed{}
	id := ""
	for {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		var ch chunkJSON
		if err := json.Unmarshal(c.Data, &ch); err != nil {
			t.Fatalf("chunk is not JSON: %v: %s", err, c.Data)
		}
		if ch.Object != "chat.completion.chunk" || (id != "" && ch.ID != id) {
			t.Fatalf("chunk header: %s", c.Data)
		}
		id = ch.ID
		out.chunks++
		if c.UsageOnly {
			if len(ch.Choices) != 0 || c.Usage == nil {
				t.Fatalf("usage chunk: %s", c.Data)
			}
			out.usage = c.Usage
			continue
		}
		if out.chunks == 1 {
			out.roleFirst = len(ch.Choices) == 1 && ch.Choices[0].Delta.Role == "assistant"
		}
		for _, choice := range ch.Choices {
			if out.finish != "" {
				t.Fatalf("chunk after finish: %s", c.Data)
			}
			if choice.Delta.Content != nil {
				out.content += *choice.Delta.Content
			}
			for _, tc := range choice.Delta.ToolCalls {
				if tc.Index == nil || tc.Function.Arguments == nil {
					t.Fatalf("tool call delta without index/arguments: %s", c.Data)
				}
				switch {
				case *tc.Index == len(out.calls):
					if tc.ID == "" || tc.Type != "function" || tc.Function.Name == "" {
						t.Fatalf("first fragment of a call: %s", c.Data)
					}
					out.calls = append(out.calls, providers.ToolCall{ID: tc.ID, Type: "function", Function: providers.FunctionCall{Name: tc.Function.Name}})
				case *tc.Index < len(out.calls):
					if tc.ID != "" || tc.Function.Name != "" {
						t.Fatalf("later fragment repeats id/name: %s", c.Data)
					}
				default:
					t.Fatalf("tool call index jumps: %s", c.Data)
				}
				out.calls[*tc.Index].Function.Arguments += *tc.Function.Arguments
			}
			if choice.FinishReason != nil {
				out.finish = *choice.FinishReason
			}
		}
	}
}

func chat(t *testing.T, a *Adapter, body string) (*completion, *providers.ChatResponse) {
	t.Helper()
	resp, err := a.Chat(context.Background(), call(t, body))
	if err != nil {
		t.Fatal(err)
	}
	var c completion
	if err := json.Unmarshal(resp.Body, &c); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	if c.Object != "chat.completion" || !strings.HasPrefix(c.ID, "chatcmpl-") || len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" {
		t.Fatalf("completion shape: %s", resp.Body)
	}
	if c.Usage.PromptTokens != resp.Usage.PromptTokens || c.Usage.CompletionTokens != resp.Usage.CompletionTokens || c.Usage.PromptTokensDetails.CachedTokens != resp.Usage.CachedTokens {
		t.Fatalf("body usage %+v, extracted %+v", c.Usage, resp.Usage)
	}
	return &c, resp
}

func stream(t *testing.T, a *Adapter, body string) (*streamed, error) {
	t.Helper()
	st, err := a.ChatStream(context.Background(), call(t, body))
	if err != nil {
		t.Fatal(err)
	}
	return collect(t, st)
}

const tools = `"tools":[` +
	`{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}},` +
	`{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","enum":["UTC","CET"]}}}}}]`

// A 1x1 PNG.
const pngDataURL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

func TestChat(t *testing.T) {
	a, _ := newMock(t, amock.Config{})
	tests := []struct {
		name       string
		body       string
		wantFinish string
		check      func(t *testing.T, c *completion)
	}{
		{
			name:       "text",
			body:       `{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hello there"}]}`,
			wantFinish: "stop",
			check: func(t *testing.T, c *completion) {
				if m := c.Choices[0].Message; m.Content == nil || len(strings.Fields(*m.Content)) != mock.DefaultCompletionTokens || !strings.HasSuffix(*m.Content, ".") {
					t.Fatalf("content %v", m.Content)
				}
				if c.Model != "claude-upstream" {
					t.Fatalf("model %s", c.Model)
				}
			},
		},
		{
			name:       "max tokens is length",
			body:       `{"model":"claude","max_completion_tokens":4,"messages":[{"role":"user","content":"hello there"}]}`,
			wantFinish: "length",
			check: func(t *testing.T, c *completion) {
				if n := len(strings.Fields(*c.Choices[0].Message.Content)); n != 4 || c.Usage.CompletionTokens != 4 {
					t.Fatalf("%d words, usage %+v", n, c.Usage)
				}
			},
		},
		{
			name:       "stop sequence",
			body:       `{"model":"claude","stop":["the","a","over","to","and","with"],"messages":[{"role":"user","content":"hello there"}]}`,
			wantFinish: "stop",
			check: func(t *testing.T, c *completion) {
				if n := len(strings.Fields(*c.Choices[0].Message.Content)); n >= mock.DefaultCompletionTokens {
					t.Fatalf("not cut at a stop sequence: %q", *c.Choices[0].Message.Content)
				}
			},
		},
		{
			name:       "tools",
			body:       `{"model":"claude",` + tools + `,"messages":[{"role":"user","content":"weather in Paris?"}]}`,
			wantFinish: "tool_calls",
			check: func(t *testing.T, c *completion) {
				m := c.Choices[0].Message
				if len(m.ToolCalls) != 2 || m.ToolCalls[0].Function.Name != "get_weather" || m.ToolCalls[1].Function.Name != "get_time" {
					t.Fatalf("tool calls %+v", m.ToolCalls)
				}
				for _, tc := range m.ToolCalls {
					var args map[string]any
					if !strings.HasPrefix(tc.ID, "toolu_") || tc.Type != "function" || json.Unmarshal([]byte(tc.Function.Arguments), &args) != nil {
						t.Fatalf("tool call %+v", tc)
					}
				}
				if m.Content == nil || *m.Content == "" {
					t.Fatal("the text block before the calls is lost")
				}
			},
		},
		{
			name:       "tools, one call when parallel calls are off",
			body:       `{"model":"claude",` + tools + `,"tool_choice":"required","parallel_tool_calls":false,"messages":[{"role":"user","content":"weather?"}]}`,
			wantFinish: "tool_calls",
			check: func(t *testing.T, c *completion) {
				if m := c.Choices[0].Message; len(m.ToolCalls) != 1 || m.Content != nil {
					t.Fatalf("message %+v", m)
				}
			},
		},
		{
			name:       "named tool",
			body:       `{"model":"claude",` + tools + `,"tool_choice":{"type":"function","function":{"name":"get_time"}},"messages":[{"role":"user","content":"time?"}]}`,
			wantFinish: "tool_calls",
			check: func(t *testing.T, c *completion) {
				if m := c.Choices[0].Message; len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != "get_time" {
					t.Fatalf("message %+v", m)
				}
			},
		},
		{
			name: "tool results round trip",
			body: `{"model":"claude",` + tools + `,"messages":[{"role":"user","content":"weather and time?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"toolu_b","type":"function","function":{"name":"get_time","arguments":""}}]},` +
				`{"role":"tool","tool_call_id":"toolu_a","content":"sunny"},{"role":"tool","tool_call_id":"toolu_b","content":[{"type":"text","text":"12:00"}]}]}`,
			wantFinish: "stop",
			check: func(t *testing.T, c *completion) {
				if m := c.Choices[0].Message; m.Content == nil || len(m.ToolCalls) != 0 {
					t.Fatalf("message %+v", m)
				}
			},
		},
		{
			// The user message after the tool results joins their turn
			// (the mock checks alternation and tool_result placement).
			name: "tool results and a new user message",
			body: `{"model":"claude",` + tools + `,"messages":[{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"toolu_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},` +
				`{"role":"tool","tool_call_id":"toolu_a","content":"sunny"},{"role":"user","content":"and tomorrow?"}]}`,
			wantFinish: "tool_calls",
			check:      func(t *testing.T, c *completion) {},
		},
		{
			name:       "images",
			body:       `{"model":"claude","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]}]}`,
			wantFinish: "stop",
			check: func(t *testing.T, c *completion) {
				if c.Choices[0].Message.Content == nil {
					t.Fatal("no content")
				}
			},
		},
		{
			name:       "JSON mode json_object",
			body:       `{"model":"claude","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"give me JSON"}]}`,
			wantFinish: "stop",
			check: func(t *testing.T, c *completion) {
				m := c.Choices[0].Message
				var v map[string]any
				if m.Content == nil || json.Unmarshal([]byte(*m.Content), &v) != nil || len(m.ToolCalls) != 0 {
					t.Fatalf("message %+v", m)
				}
			},
		},
		{
			name:       "JSON mode json_schema",
			body:       `{"model":"claude","response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}}},"messages":[{"role":"user","content":"a person"}]}`,
			wantFinish: "stop",
			check: func(t *testing.T, c *completion) {
				var v struct {
					Name *string `json:"name"`
					Age  *int    `json:"age"`
				}
				m := c.Choices[0].Message
				if m.Content == nil || json.Unmarshal([]byte(*m.Content), &v) != nil || v.Name == nil || v.Age == nil {
					t.Fatalf("message %+v", m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := chat(t, a, tt.body)
			if got := c.Choices[0].FinishReason; got != tt.wantFinish {
				t.Fatalf("finish_reason %s, want %s", got, tt.wantFinish)
			}
			tt.check(t, c)
		})
	}
}

func TestChatStream(t *testing.T) {
	a, _ := newMock(t, amock.Config{Config: mock.Config{ChunkTokens: 3}})
	tests := []struct {
		name       string
		body       string
		wantFinish string
		wantCalls  int
		jsonBody   bool
	}{
		{"text streamed", `{"model":"claude","stream":true,"messages":[{"role":"user","content":"hello there"}]}`, "stop", 0, false},
		{"length streamed", `{"model":"claude","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}`, "length", 0, false},
		{"tools streamed", `{"model":"claude","stream":true,` + tools + `,"messages":[{"role":"user","content":"weather in Paris?"}]}`, "tool_calls", 2, false},
		{"forced tool streamed", `{"model":"claude","stream":true,` + tools + `,"tool_choice":"required","messages":[{"role":"user","content":"weather in Paris?"}]}`, "tool_calls", 2, false},
		{"images streamed", `{"model":"claude","stream":true,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}},{"type":"text","text":"describe"}]}]}`, "stop", 0, false},
		{"JSON mode streamed", `{"model":"claude","stream":true,"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object","properties":{"city":{"type":"string"},"temp":{"type":"number"}}}}},"messages":[{"role":"user","content":"weather as JSON"}]}`, "stop", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stream(t, a, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if !got.roleFirst || got.finish != tt.wantFinish || len(got.calls) != tt.wantCalls || got.usage == nil {
				t.Fatalf("stream %+v", got)
			}
			for _, tc := range got.calls {
				if !json.Valid([]byte(tc.Function.Arguments)) {
					t.Fatalf("arguments %q", tc.Function.Arguments)
				}
			}
			if tt.jsonBody && !json.Valid([]byte(got.content)) {
				t.Fatalf("JSON mode content %q", got.content)
			}

			// The same request without streaming gives the same answer.
			c, resp := chat(t, a, strings.Replace(tt.body, `"stream":true,`, ``, 1))
			m := c.Choices[0].Message
			if m.Content != nil && *m.Content != got.content {
				t.Fatalf("streamed content %q, plain %q", got.content, *m.Content)
			}
			for i := range m.ToolCalls {
				if m.ToolCalls[i].Function != got.calls[i].Function {
					t.Fatalf("call %d streamed %+v, plain %+v", i, got.calls[i], m.ToolCalls[i])
				}
			}
			if *got.usage != resp.Usage {
				t.Fatalf("streamed usage %+v, plain %+v", *got.usage, resp.Usage)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	a, _ := newMock(t, amock.Config{CacheReadTokens: 5, CacheCreationTokens: 2})
	// prompt: 3 + (3 + 2 words) = 8 tokens, of which 5 read and 2 written.
	want := providers.Usage{PromptTokens: 8, CompletionTokens: mock.DefaultCompletionTokens, TotalTokens: 8 + mock.DefaultCompletionTokens, CachedTokens: 5, CacheWriteTokens: 2}
	_, resp := chat(t, a, `{"model":"claude","messages":[{"role":"user","content":"hello there"}]}`)
	if resp.Usage != want {
		t.Fatalf("usage %+v, want %+v", resp.Usage, want)
	}
	got, err := stream(t, a, `{"model":"claude","stream":true,"messages":[{"role":"user","content":"hello there"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if *got.usage != want {
		t.Fatalf("streamed usage %+v, want %+v", *got.usage, want)
	}
}

// suite is the shared adapter suite (providertest) against the mock.
func suite(a *Adapter) providertest.Suite {
	return providertest.Suite{Adapter: a, NewCall: call, Model: "claude", Provider: "claude", Secret: testKey}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	a, _ := newMock(t, amock.Config{Config: mock.Config{RetryAfter: 3 * time.Second}})
	suite(a).Errors(t, []providertest.Failure{
		{Name: "status=400", Content: "hi #mock:status=400", Status: 400, Type: "invalid_request_error"},
		{Name: "status=401", Content: "hi #mock:status=401", Status: 401, Type: "invalid_request_error", Code: "invalid_api_key"},
		{Name: "quota", Content: "hi #mock:quota", Status: 402, Type: "insufficient_quota", Code: "insufficient_quota"},
		{Name: "status=403", Content: "hi #mock:status=403", Status: 403, Type: "invalid_request_error", Code: "permission_denied"},
		{Name: "status=404", Content: "hi #mock:status=404", Status: 404, Type: "invalid_request_error", Code: "not_found"},
		{Name: "status=413", Content: "hi #mock:status=413", Status: 413, Type: "invalid_request_error", Code: "request_too_large"},
		{Name: "status=429", Content: "hi #mock:status=429", Status: 429, Type: "requests", Code: "rate_limit_exceeded", Retryable: true, RetryAfter: 3 * time.Second},
		{Name: "status=500", Content: "hi #mock:status=500", Status: 500, Type: "server_error", Retryable: true},
		{Name: "status=504", Content: "hi #mock:status=504", Status: 504, Type: "server_error", Code: "timeout", Retryable: true, Timeout: true},
		{Name: "status=529", Content: "hi #mock:status=529", Status: 529, Type: "server_error", Code: "overloaded", Retryable: true},
	})
}

func TestStreamBreaks(t *testing.T) {
	t.Parallel()
	a, _ := newMock(t, amock.Config{})
	suite(a).Breaks(t, []providertest.Break{
		{Name: "error event is a typed mid-stream error", Content: "hi #mock:stream-error", Status: 529, Retryable: true, Type: "server_error", Message: "Overloaded", Text: true},
		{Name: "cut connection", Content: "hi #mock:reset", Status: 0, Retryable: true},
	})
	t.Run("non-stream reset is a transport error", func(t *testing.T) {
		_, err := a.Chat(context.Background(), call(t, `{"model":"claude","messages":[{"role":"user","content":"hi #mock:reset"}]}`))
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Status != 0 || !pe.Retryable() {
			t.Fatalf("error %#v", err)
		}
	})
}

func TestAuthAndTimeout(t *testing.T) {
	s := amock.New(amock.Config{Config: mock.Config{APIKey: "right"}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	p, err := New(config.Provider{Name: "c", BaseURL: srv.URL + "/v1/", APIKey: "wrong"}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Chat(context.Background(), call(t, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 401 || pe.Code != "invalid_api_key" || strings.Contains(pe.Error(), "wrong") {
		t.Fatalf("error %v", err)
	}

	p, _ = New(config.Provider{Name: "c", BaseURL: srv.URL, APIKeyEnv: "KEY", Timeout: 30 * time.Millisecond}, providers.Deps{Client: srv.Client(), Getenv: func(string) string { return "right" }})
	providertest.Suite{NewCall: call, Model: "m"}.TimeoutBeforeHeaders(t, p, "hi #mock:latency=2s")
}

func TestRequestErrors(t *testing.T) {
	a, s := newMock(t, amock.Config{})
	tests := []struct{ name, body, param string }{
		{"n > 1", `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"ftp image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"bad arguments", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"tool without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"unknown role", `{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role"},
		{"unknown named tool", `{"model":"m",` + tools + `,"tool_choice":{"type":"function","function":{"name":"nope"}},"messages":[{"role":"user","content":"hi"}]}`, "tool_choice"},
		{"only system", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Chat(context.Background(), call(t, tt.body))
			var re *providers.RequestError
			if !errors.As(err, &re) || re.Param != tt.param {
				t.Fatalf("error %#v", err)
			}
		})
	}
	if n := s.Stats().Chat; n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
}

// capture records the upstream request and answers a canned message.
type capture struct {
	header http.Header
	body   []byte
	path   string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.header, c.path = r.Header.Clone(), r.URL.Path
	c.body, _ = io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"ok"}],"stop_reason":"refusal","usage":{"input_tokens":1,"output_tokens":1}}`)
}

func TestHeadersAndConfig(t *testing.T) {
	up := &capture{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	for _, base := range []string{srv.URL, srv.URL + "/", srv.URL + "/v1"} {
		p, err := New(config.Provider{Name: "c", BaseURL: base, APIKey: "k1", APIVersion: "2099-01-01", Headers: map[string]string{"anthropic-beta": "x-2025", "x-api-key": "overridden"}}, providers.Deps{Client: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.Chat(context.Background(), call(t, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		h := up.header
		if up.path != "/v1/messages" || h.Get("x-api-key") != "k1" || h.Get("anthropic-version") != "2099-01-01" || h.Get("anthropic-beta") != "x-2025" || h.Get("content-type") != "application/json" || h.Get("Authorization") != "" {
			t.Fatalf("base %q: path %s headers %v", base, up.path, h)
		}
		var c completion
		json.Unmarshal(resp.Body, &c)
		if c.Choices[0].FinishReason != "content_filter" || *c.Choices[0].Message.Content != "ok" || c.Model != "claude-x" {
			t.Fatalf("refusal answer %s", resp.Body)
		}
	}
	p, _ := New(config.Provider{Name: "c"}, providers.Deps{})
	if got := p.(*Adapter).url; got != "https://api.anthropic.com/v1/messages" {
		t.Fatalf("default url %s", got)
	}
	if _, err := New(config.Provider{Name: "c", BaseURL: "api.anthropic.com"}, providers.Deps{}); err == nil {
		t.Fatal("a base_url without scheme must be rejected")
	}
}

func TestUpstreamNonJSONErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "<html>too large</html>")
	}))
	t.Cleanup(srv.Close)
	p, _ := New(config.Provider{Name: "c", BaseURL: srv.URL}, providers.Deps{Client: srv.Client()})
	_, err := p.Chat(context.Background(), call(t, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != 413 || pe.Type != "invalid_request_error" || pe.RetryAfter != 7*time.Second || strings.Contains(pe.Message, "html") {
		t.Fatalf("error %+v", pe)
	}
}

func TestCloseMidStream(t *testing.T) {
	t.Parallel()
	a, s := newMock(t, amock.Config{Config: mock.Config{TokensPerSec: 200, CompletionTokens: 400}})
	suite(a).CloseMidStream(t, func() int64 { return s.Stats().Canceled })
}
