package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	mockgemini "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "AIzaSyTestKey0123456789abcdefghijklmno"

// ---- helpers ----

// newMock starts the Gemini mock and an adapter pointed at it.
func newMock(t *testing.T, cfg mockgemini.Config) (*Adapter, *mockgemini.Server) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	s := mockgemini.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return adapterFor(t, srv, cfg.APIKey), s
}

func adapterFor(tb testing.TB, srv *httptest.Server, key string) *Adapter {
	tb.Helper()
	a, err := newAdapter(config.Provider{Name: "gem", Type: Type, BaseURL: srv.URL, APIKey: key}, providers.Deps{Client: srv.Client()})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func chatCall(t *testing.T, body string) *providers.Call {
	t.Helper()
	req, err := providers.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &providers.Call{Request: req, Model: "gemini-2.5-flash"}
}

// completionJSON is the part of a chat.completion the tests read.
type completionJSON struct {
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

func chat(t *testing.T, a *Adapter, body string) completionJSON {
	t.Helper()
	resp, err := a.Chat(context.Background(), chatCall(t, body))
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	var c completionJSON
	if err := json.Unmarshal(resp.Body, &c); err != nil {
		t.Fatalf("decode %s: %v", resp.Body, err)
	}
	if c.Object != "chat.completion" || len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" {
		t.Fatalf("not a chat.completion: %s", resp.Body)
	}
	if resp.Usage.PromptTokens != c.Usage.PromptTokens || resp.Usage.CompletionTokens != c.Usage.CompletionTokens {
		t.Fatalf("extracted usage %+v differs from body %s", resp.Usage, resp.Body)
	}
	return c
}

// streamed is a stream read to its end.
type streamed struct {
	text      string
	calls     []providers.ToolCall
	finish    string
	usage     *providers.Usage
	chunks    int
	firstRole bool
	err       error
}

type chunkJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Choices []struct {
		Delta struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
}

// drain reads st to its end and checks the OpenAI chunk rules on the way:
// one id, role first, tool-call deltas well formed, usage last.
func drain(t *testing.T, st providers.Stream) streamed {
	t.Helper()
	defer st.Close()
	var out streamed
	id := ""
	for {
		c, err := st.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				out.err = err
			}
			return out
		}
		out.chunks++
		var cj chunkJSON
		if err := json.Unmarshal(c.Data, &cj); err != nil {
			t.Fatalf("chunk is not JSON: %s", c.Data)
		}
		if cj.Object != "chat.completion.chunk" || (id != "" && cj.ID != id) {
			t.Fatalf("bad chunk framing: %s", c.Data)
		}
		id = cj.ID
		if out.usage != nil {
			t.Fatalf("chunk after the usage chunk: %s", c.Data)
		}
		if c.UsageOnly {
			if len(cj.Choices) != 0 || c.Usage == nil {
				t.Fatalf("usage chunk with choices: %s", c.Data)
			}
			out.usage = c.Usage
			continue
		}
		if len(cj.Choices) != 1 {
			t.Fatalf("chunk without one choice: %s", c.Data)
		}
		ch := cj.Choices[0]
		if out.chunks == 1 {
			out.firstRole = ch.Delta.Role == "assistant"
		}
		if out.finish != "" {
			t.Fatalf("chunk after finish: %s", c.Data)
		}
		if ch.Delta.Content != nil {
			out.text += *ch.Delta.Content
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.ID != "" {
				if tc.Index != len(out.calls) || tc.Type != "function" || tc.Function.Name == "" {
					t.Fatalf("bad tool call start: %s", c.Data)
				}
				out.calls = append(out.calls, providers.ToolCall{ID: tc.ID, Type: "function", Function: providers.FunctionCall{Name: tc.Function.Name}})
				continue
			}
			if tc.Index >= len(out.calls) {
				t.Fatalf("arguments for an unknown call: %s", c.Data)
			}
			out.calls[tc.Index].Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil {
			out.finish = *ch.FinishReason
		}
	}
}

func stream(t *testing.T, a *Adapter, body string) streamed {
	t.Helper()
	st, err := a.ChatStream(context.Background(), chatCall(t, body))
	if err != nil {
		t.Fatalf("ChatStream: %v", err)
	}
	return drain(t, st)
}

// expectedText is the mock's deterministic answer to a prompt.
func expectedText(prompt string, n int, stop bool) string {
	var sb strings.Builder
	seed := mock.Seed(prompt)
	for i := 0; i < n; i++ {
		sb.WriteString(mock.Token(seed, i, n, stop))
	}
	return sb.String()
}

// ---- text ----

func TestChatText(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	tests := []struct {
		name       string
		body       string
		wantText   string
		wantFinish string
	}{
		{"plain", `{"model":"pub","messages":[{"role":"user","content":"hello there"}]}`, expectedText("hello there", 16, true), "stop"},
		{"system and developer", `{"model":"pub","messages":[{"role":"system","content":"be brief"},{"role":"developer","content":"really"},{"role":"user","content":"hello there"}]}`, expectedText("hello there", 16, true), "stop"},
		{"max_tokens cuts", `{"model":"pub","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}`, expectedText("hello there", 5, false), "length"},
		{"max_completion_tokens wins", `{"model":"pub","max_tokens":50,"max_completion_tokens":3,"messages":[{"role":"user","content":"hi"}]}`, expectedText("hi", 3, false), "length"},
		{"tokens directive", `{"model":"pub","messages":[{"role":"user","content":"hi #mock:tokens=4"}]}`, expectedText("hi #mock:tokens=4", 4, true), "stop"},
		{"text parts", `{"model":"pub","messages":[{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"there"}]}]}`, expectedText("hello\nthere", 16, true), "stop"},
		{"multi turn", `{"model":"pub","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"hello there"}]}`, expectedText("hello there", 16, true), "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chat(t, a, tt.body)
			ch := c.Choices[0]
			if ch.Message.Content == nil || *ch.Message.Content != tt.wantText {
				t.Errorf("content = %v, want %q", ch.Message.Content, tt.wantText)
			}
			if ch.FinishReason != tt.wantFinish {
				t.Errorf("finish = %q, want %q", ch.FinishReason, tt.wantFinish)
			}
			if c.Model != "pub" || !strings.HasPrefix(c.ID, "chatcmpl-") {
				t.Errorf("model %q id %q", c.Model, c.ID)
			}
		})
	}
}

func TestChatStopSequence(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	full := expectedText("hello there", 16, true)
	// Stop at the third word of the mock's answer.
	words := strings.Fields(full)
	body := `{"model":"pub","stop":"` + words[2] + `","messages":[{"role":"user","content":"hello there"}]}`
	c := chat(t, a, body)
	want := full[:strings.Index(full, words[2])]
	if got := *c.Choices[0].Message.Content; got != want || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("content %q finish %q, want %q stop", got, c.Choices[0].FinishReason, want)
	}
}

func TestChatStreamText(t *testing.T) {
	tests := []struct {
		name       string
		chunk      int
		body       string
		wantText   string
		wantFinish string
	}{
		{"one token per event", 1, `{"model":"pub","stream":true,"messages":[{"role":"user","content":"hello there"}]}`, expectedText("hello there", 16, true), "stop"},
		{"three tokens per event", 3, `{"model":"pub","stream":true,"messages":[{"role":"user","content":"hello there"}]}`, expectedText("hello there", 16, true), "stop"},
		{"length", 2, `{"model":"pub","stream":true,"max_tokens":7,"messages":[{"role":"user","content":"hello there"}]}`, expectedText("hello there", 7, false), "length"},
		{"caller asked for usage", 1, `{"model":"pub","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, expectedText("hi", 16, true), "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newMock(t, mockgemini.Config{Config: mock.Config{ChunkTokens: tt.chunk}})
			got := stream(t, a, tt.body)
			if got.err != nil {
				t.Fatal(got.err)
			}
			if !got.firstRole || got.text != tt.wantText || got.finish != tt.wantFinish {
				t.Fatalf("role=%v text=%q finish=%q, want %q %q", got.firstRole, got.text, got.finish, tt.wantText, tt.wantFinish)
			}
			if got.usage == nil || got.usage.CompletionTokens != len(strings.Fields(tt.wantText)) {
				t.Fatalf("usage %+v", got.usage)
			}
		})
	}
}

// ---- JSON mode ----

func TestJSONMode(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	schema := `{"type":"object","properties":{"city":{"type":"string"},"temp":{"type":"number"}},"required":["city","temp"],"additionalProperties":false}`
	tests := []struct {
		name string
		body string
		keys []string
	}{
		{"json_object", `{"model":"pub","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"give json"}]}`, []string{"text"}},
		{"json_schema", `{"model":"pub","response_format":{"type":"json_schema","json_schema":{"name":"w","strict":true,"schema":` + schema + `}},"messages":[{"role":"user","content":"weather"}]}`, []string{"city", "temp"}},
	}
	for _, tt := range tests {
		for _, streamMode := range []bool{false, true} {
			name := tt.name
			if streamMode {
				name += " streamed"
			}
			t.Run(name, func(t *testing.T) {
				var text string
				if streamMode {
					got := stream(t, a, strings.Replace(tt.body, `{"model":"pub",`, `{"model":"pub","stream":true,`, 1))
					if got.err != nil || got.finish != "stop" {
						t.Fatalf("err=%v finish=%q", got.err, got.finish)
					}
					text = got.text
				} else {
					c := chat(t, a, tt.body)
					text = *c.Choices[0].Message.Content
				}
				var obj map[string]any
				if err := json.Unmarshal([]byte(text), &obj); err != nil {
					t.Fatalf("content is not a JSON object: %q", text)
				}
				for _, k := range tt.keys {
					if _, ok := obj[k]; !ok {
						t.Errorf("key %q missing from %s", k, text)
					}
				}
			})
		}
	}
}

// ---- usage ----

func TestUsage(t *testing.T) {
	long := strings.Repeat("word ", 1100)
	tests := []struct {
		name                  string
		cfg                   mockgemini.Config
		prompt                string
		wantCached, wantThink int
	}{
		{"plain", mockgemini.Config{}, "hello", 0, 0},
		{"thinking tokens count as completion", mockgemini.Config{ThoughtsTokens: 40}, "hello", 0, 40},
		{"implicit cache hit", mockgemini.Config{ImplicitCacheMin: 1024}, long, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newMock(t, tt.cfg)
			body := `{"model":"pub","messages":[{"role":"user","content":"` + tt.prompt + `"}]}`
			c := chat(t, a, body)
			u := c.Usage
			wantPrompt := 3 + 3 + len(strings.Fields(tt.prompt))
			if u.PromptTokens != wantPrompt || u.CompletionTokens != 16+tt.wantThink || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Fatalf("usage %+v, want prompt %d completion %d", u, wantPrompt, 16+tt.wantThink)
			}
			wantCached := tt.wantCached
			if wantCached < 0 {
				wantCached = wantPrompt / 2
			}
			if u.PromptTokensDetails.CachedTokens != wantCached {
				t.Fatalf("cached %d, want %d", u.PromptTokensDetails.CachedTokens, wantCached)
			}
			st := stream(t, a, strings.Replace(body, `{"model":"pub",`, `{"model":"pub","stream":true,`, 1))
			if st.err != nil || st.usage == nil {
				t.Fatalf("stream: %+v", st)
			}
			if *st.usage != (providers.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens, CachedTokens: wantCached, ReasoningTokens: tt.wantThink}) {
				t.Fatalf("stream usage %+v, non-stream %+v", *st.usage, u)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	r := providers.NewRegistry()
	r.Register(Type, New)
	p, err := r.New(config.Provider{Name: "g", Type: "gemini"}, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*Adapter); !ok {
		t.Fatalf("%T", p)
	}
	if _, err := r.New(config.Provider{Name: "g", Type: "gemini", BaseURL: "ftp://x"}, providers.Deps{}); err == nil {
		t.Fatal("a non-http base_url must be refused")
	}
}
