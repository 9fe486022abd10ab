package gemini

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
	mockgemini "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
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

// ---- tools ----

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"],"additionalProperties":false},"strict":true}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","enum":["UTC","CET"]}}}}}]`

func TestTools(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	tests := []struct {
		name      string
		extra     string
		wantNames []string
	}{
		{"auto calls two in parallel", ``, []string{"get_weather", "get_time"}},
		{"required", `,"tool_choice":"required"`, []string{"get_weather", "get_time"}},
		{"named", `,"tool_choice":{"type":"function","function":{"name":"get_time"}}`, []string{"get_time"}},
		{"none answers text", `,"tool_choice":"none"`, nil},
	}
	for _, tt := range tests {
		for _, streamMode := range []bool{false, true} {
			name := tt.name
			if streamMode {
				name += " streamed"
			}
			t.Run(name, func(t *testing.T) {
				body := `{"model":"pub","messages":[{"role":"user","content":"weather in Paris?"}],` + weatherTools + tt.extra + `}`
				var calls []providers.ToolCall
				var finish string
				if streamMode {
					got := stream(t, a, strings.Replace(body, `{"model":"pub",`, `{"model":"pub","stream":true,`, 1))
					if got.err != nil {
						t.Fatal(got.err)
					}
					calls, finish = got.calls, got.finish
				} else {
					c := chat(t, a, body)
					calls, finish = c.Choices[0].Message.ToolCalls, c.Choices[0].FinishReason
					if len(calls) > 0 && c.Choices[0].Message.Content != nil {
						t.Errorf("content %q with tool calls", *c.Choices[0].Message.Content)
					}
				}
				if len(tt.wantNames) == 0 {
					if len(calls) != 0 || finish != "stop" {
						t.Fatalf("calls %+v finish %q", calls, finish)
					}
					return
				}
				if finish != "tool_calls" || len(calls) != len(tt.wantNames) {
					t.Fatalf("finish %q calls %+v", finish, calls)
				}
				for i, c := range calls {
					if c.Function.Name != tt.wantNames[i] || !json.Valid([]byte(c.Function.Arguments)) || !strings.HasPrefix(c.ID, "call_") {
						t.Errorf("call %d = %+v", i, c)
					}
					// Gemini signs the first call of a parallel set only.
					if has := signatureFromID(c.ID) != ""; has != (i == 0) {
						t.Errorf("call %d id %q: signature present=%v", i, c.ID, has)
					}
				}
				if calls[0].ID == calls[len(calls)-1].ID && len(calls) > 1 {
					t.Error("duplicate call ids")
				}
			})
		}
	}
}

// TestToolRoundTrip sends the calls back with their results, as an OpenAI
// client does: the mock (like Gemini 3) rejects the history unless the
// thought signature of the first call comes back on its functionCall part.
func TestToolRoundTrip(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	first := chat(t, a, `{"model":"pub","messages":[{"role":"user","content":"weather in Paris?"}],`+weatherTools+`}`)
	calls := first.Choices[0].Message.ToolCalls
	if len(calls) != 2 {
		t.Fatalf("calls %+v", calls)
	}
	history := func(calls []providers.ToolCall, results ...string) string {
		tc, _ := json.Marshal(calls)
		msgs := `[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":` + string(tc) + `}`
		for i, r := range results {
			msgs += `,{"role":"tool","tool_call_id":"` + calls[i].ID + `","content":` + r + `}`
		}
		return `{"model":"pub","messages":` + msgs + `],` + weatherTools + `}`
	}
	stripped := append([]providers.ToolCall(nil), calls...)
	stripped[0].ID = stripped[0].ID[:strings.Index(stripped[0].ID, sigMarker)]
	corrupted := append([]providers.ToolCall(nil), calls...)
	corrupted[0].ID = corrupted[0].ID[:len(corrupted[0].ID)-6] + "AAAAAA"
	swapped := append([]providers.ToolCall(nil), calls...)
	swapped[0].Function.Name, swapped[1].Function.Name = swapped[1].Function.Name, swapped[0].Function.Name

	tests := []struct {
		name    string
		body    string
		wantErr string // "" = success
	}{
		{"results as text and JSON", history(calls, `"18 degrees and sunny"`, `"{\"tz\":\"CET\",\"time\":\"12:00\"}"`), ""},
		{"result as JSON array", history(calls, `"[1,2,3]"`, `"42"`), ""},
		{"id without its signature gets the skip value", history(stripped, `"x"`, `"y"`), ""},
		{"corrupted signature", history(corrupted, `"x"`, `"y"`), "Corrupted thought signature"},
		{"signature bound to its call", history(swapped, `"x"`, `"y"`), "Corrupted thought signature"},
		{"results must answer every call", history(calls, `"x"`), "number of function response parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.Chat(context.Background(), chatCall(t, tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Chat: %v", err)
				}
				var c completionJSON
				_ = json.Unmarshal(resp.Body, &c)
				if c.Choices[0].FinishReason != "stop" || c.Choices[0].Message.Content == nil || *c.Choices[0].Message.Content == "" {
					t.Fatalf("after the results the mock answers text: %s", resp.Body)
				}
				return
			}
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != 400 || !strings.Contains(pe.Message, tt.wantErr) || pe.Type != "invalid_request_error" {
				t.Fatalf("err = %#v, want 400 %q", err, tt.wantErr)
			}
		})
	}
}

// TestToolHistoryWithoutSignatures: tool calls made by another provider
// (no signature in their ids) get the documented skip value, so Gemini 3
// accepts the history; a first call whose signature was removed from a
// Gemini id is treated the same way.
func TestToolHistoryWithoutSignatures(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	body := `{"model":"pub","messages":[{"role":"user","content":"weather?"},
	{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
	{"role":"tool","tool_call_id":"toolu_01A","content":"sunny"}],` + weatherTools + `}`
	c := chat(t, a, body)
	if c.Choices[0].FinishReason != "stop" {
		t.Fatalf("finish %q", c.Choices[0].FinishReason)
	}
	st := stream(t, a, strings.Replace(body, `{"model":"pub",`, `{"model":"pub","stream":true,`, 1))
	if st.err != nil || st.finish != "stop" || st.text == "" {
		t.Fatalf("stream: %+v", st)
	}
}

func TestToolRoundTripStreamed(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	first := stream(t, a, `{"model":"pub","stream":true,"messages":[{"role":"user","content":"time?"}],`+weatherTools+`,"tool_choice":{"type":"function","function":{"name":"get_time"}}}`)
	if first.err != nil || len(first.calls) != 1 || first.finish != "tool_calls" {
		t.Fatalf("%+v", first)
	}
	tc, _ := json.Marshal(first.calls)
	body := `{"model":"pub","stream":true,"messages":[{"role":"user","content":"time?"},{"role":"assistant","tool_calls":` + string(tc) +
		`},{"role":"tool","tool_call_id":"` + first.calls[0].ID + `","content":"12:00"}],` + weatherTools + `}`
	second := stream(t, a, body)
	if second.err != nil || second.finish != "stop" || second.text == "" || len(second.calls) != 0 {
		t.Fatalf("%+v", second)
	}
}

// ---- images ----

func TestImages(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	png := "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	textOnly := chat(t, a, `{"model":"pub","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"}]}]}`)
	tests := []struct {
		name string
		url  string
	}{
		{"data URL becomes inlineData", "data:image/png;base64," + png},
		{"https URL becomes fileData", "https://example.com/cat.webp?size=large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"pub","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"` + tt.url + `","detail":"high"}}]}]}`
			c := chat(t, a, body)
			// The mock counts 258 tokens per image, as Gemini does.
			if d := c.Usage.PromptTokens - textOnly.Usage.PromptTokens; d != 258 {
				t.Fatalf("prompt tokens grew by %d, want 258", d)
			}
		})
	}
	for _, bad := range []string{"ftp://example.com/x.png", "data:image/png,notbase64", "not a url"} {
		t.Run("rejects "+bad, func(t *testing.T) {
			body := `{"model":"pub","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + bad + `"}}]}]}`
			_, err := a.Chat(context.Background(), chatCall(t, body))
			var re *providers.RequestError
			if !errors.As(err, &re) || !strings.Contains(re.Param, "image_url.url") {
				t.Fatalf("err = %v, want a RequestError on image_url.url", err)
			}
		})
	}
}

// ---- errors ----

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

// ---- wire details ----

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

// ---- embeddings ----

func TestEmbed(t *testing.T) {
	a, s := newMock(t, mockgemini.Config{})
	many := make([]string, 230)
	for i := range many {
		many[i] = "input number " + strings.Repeat("x", i%7)
	}
	tests := []struct {
		name   string
		inputs []string
		dims   int
		calls  int64
	}{
		{"one", []string{"hello world"}, 0, 1},
		{"dimensions", []string{"a", "bb"}, 16, 1},
		{"batched by 100", many, 4, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().Embeddings
			vecs, usage, err := a.Embed(context.Background(), "gemini-embedding-001", tt.inputs, tt.dims)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Embeddings - before; got != tt.calls {
				t.Fatalf("%d upstream calls, want %d", got, tt.calls)
			}
			wantDims := tt.dims
			if wantDims == 0 {
				wantDims = 8
			}
			if len(vecs) != len(tt.inputs) {
				t.Fatalf("%d vectors for %d inputs", len(vecs), len(tt.inputs))
			}
			tokens := 0
			for i, v := range vecs {
				want := make([]float32, wantDims)
				mock.UnitVector(want, mock.Seed(tt.inputs[i]))
				if len(v) != wantDims || v[0] != want[0] || v[wantDims-1] != want[wantDims-1] {
					t.Fatalf("vector %d = %v, want %v", i, v, want)
				}
				tokens += max(1, (len(tt.inputs[i])+3)/4)
			}
			if usage.PromptTokens != tokens || usage.TotalTokens != tokens {
				t.Fatalf("usage %+v, want %d estimated tokens", usage, tokens)
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		_, _, err := a.Embed(context.Background(), "gemini-embedding-001", []string{"x #mock:status=429"}, 0)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Status != 429 || !pe.Retryable() {
			t.Fatalf("err = %v", err)
		}
		_, _, err = a.Embed(context.Background(), "gemini-embedding-001", nil, 0)
		var re *providers.RequestError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v", err)
		}
		_, _, err = a.Embed(context.Background(), "gemini-embedding-001", []string{"a"}, 99999)
		if !errors.As(err, &pe) || pe.Status != 400 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("reported usage wins", func(t *testing.T) {
		up := &capture{status: 200, reply: `{"embeddings":[{"values":[0.5,0.5]}],"usageMetadata":{"promptTokenCount":11}}`}
		srv := httptest.NewServer(up)
		t.Cleanup(srv.Close)
		vecs, usage, err := adapterFor(t, srv, testKey).Embed(context.Background(), "models/text-embedding-004", []string{"hi"}, 2)
		if err != nil || usage.PromptTokens != 11 || len(vecs[0]) != 2 {
			t.Fatalf("%v %+v %v", vecs, usage, err)
		}
		var req map[string]any
		_ = json.Unmarshal(up.body, &req)
		if !strings.HasSuffix(up.req.URL.Path, "/models/text-embedding-004:batchEmbedContents") ||
			!strings.Contains(string(up.body), `"model":"models/text-embedding-004"`) || !strings.Contains(string(up.body), `"outputDimensionality":2`) {
			t.Fatalf("%s %s", up.req.URL.Path, up.body)
		}
	})
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
