package mock

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/xroute/xroute/internal/testutil"
)

// ---- helpers ----

func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + "/v1"
}

func goClient(base, key string) *goopenai.Client {
	c := goopenai.DefaultConfig(key)
	c.BaseURL = base
	return goopenai.NewClientWithConfig(c)
}

func officialClient(base, key string, opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base), option.WithAPIKey(key), option.WithMaxRetries(0),
	}, opts...)...)
	return &c
}

// post sends a raw JSON request.
func post(t *testing.T, ctx context.Context, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readSSE returns the data payloads of an SSE body, checking the framing.
func readSSE(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	var out []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return out, nil
			}
			return out, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		blank, err := br.ReadString('\n')
		if err != nil || blank != "\n" {
			t.Fatalf("event %q not followed by a blank line (%q, %v)", data, blank, err)
		}
		out = append(out, data)
	}
}

type rawChunk struct {
	ID      string                       `json:"id"`
	Object  string                       `json:"object"`
	Created int64                        `json:"created"`
	Model   string                       `json:"model"`
	Choices []map[string]json.RawMessage `json:"choices"`
	Usage   *goopenai.Usage              `json:"usage"`
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---- chat, non-stream ----

func TestChatNonStream(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{APIKey: "sk-test", CompletionTokens: 12})
	gc := goClient(base, "sk-test")
	oc := officialClient(base, "sk-test")
	msgs := []goopenai.ChatCompletionMessage{
		{Role: "system", Content: "be brief"},
		{Role: "user", Content: "hello there mock"},
	}
	// prompt tokens: words (2+3) + 3 per message (6) + 3
	const wantPrompt = 14
	cases := []struct {
		name       string
		maxTokens  int // max_completion_tokens
		legacyMax  int // max_tokens
		directive  string
		wantTokens int
		wantFinish string
	}{
		{"default length", 0, 0, "", 12, "stop"},
		{"max_completion_tokens cuts", 5, 0, "", 5, "length"},
		{"max_tokens cuts", 0, 3, "", 3, "length"},
		{"max above length", 100, 0, "", 12, "stop"},
		{"directive tokens", 0, 0, " #mock:tokens=4", 4, "stop"},
		{"directive tokens capped", 2, 0, " #mock:tokens=4", 2, "length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := append([]goopenai.ChatCompletionMessage(nil), msgs...)
			m[1].Content += tc.directive
			prompt := wantPrompt
			if tc.directive != "" {
				prompt++
			}
			resp, err := gc.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
				Model: "gpt-test", Messages: m, MaxCompletionTokens: tc.maxTokens, MaxTokens: tc.legacyMax,
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "chat.completion" || !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Model != "gpt-test" || resp.SystemFingerprint != "fp_mock" {
				t.Fatalf("bad envelope: %+v", resp)
			}
			if len(resp.Choices) != 1 || resp.Choices[0].Message.Role != "assistant" || string(resp.Choices[0].FinishReason) != tc.wantFinish {
				t.Fatalf("bad choices: %+v", resp.Choices)
			}
			content := resp.Choices[0].Message.Content
			if got := len(strings.Fields(content)); got != tc.wantTokens {
				t.Fatalf("content %q has %d words, want %d", content, got, tc.wantTokens)
			}
			u := resp.Usage
			if u.PromptTokens != prompt || u.CompletionTokens != tc.wantTokens || u.TotalTokens != prompt+tc.wantTokens {
				t.Fatalf("usage %+v, want prompt %d completion %d", u, prompt, tc.wantTokens)
			}
			rl := resp.GetRateLimitHeaders()
			if rl.LimitRequests <= 0 || rl.LimitTokens <= 0 || rl.RemainingRequests <= 0 || rl.ResetRequests.String() == "" {
				t.Fatalf("rate-limit headers: %+v", rl)
			}
			if _, err := time.ParseDuration(rl.ResetTokens.String()); err != nil {
				t.Fatalf("reset-tokens %q: %v", rl.ResetTokens, err)
			}
			if !strings.HasPrefix(resp.Header().Get("x-request-id"), "req_") || resp.Header().Get("openai-processing-ms") == "" {
				t.Fatalf("headers: %v", resp.Header())
			}

			// The official SDK gets the same (deterministic) answer.
			params := openai.ChatCompletionNewParams{
				Model: "gpt-test",
				Messages: []openai.ChatCompletionMessageParamUnion{
					openai.SystemMessage("be brief"), openai.UserMessage("hello there mock" + tc.directive),
				},
			}
			if tc.maxTokens > 0 {
				params.MaxCompletionTokens = openai.Int(int64(tc.maxTokens))
			}
			if tc.legacyMax > 0 {
				params.MaxTokens = openai.Int(int64(tc.legacyMax))
			}
			oresp, err := oc.Chat.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			if oresp.Choices[0].Message.Content != content || oresp.Usage.TotalTokens != int64(prompt+tc.wantTokens) ||
				string(oresp.Choices[0].FinishReason) != tc.wantFinish {
				t.Fatalf("official SDK got %+v, want content %q", oresp.Choices[0], content)
			}
		})
	}
}

func TestChatRawShape(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":2}`, nil)
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var m struct {
		Choices []struct {
			Message  map[string]json.RawMessage `json:"message"`
			Logprobs json.RawMessage            `json:"logprobs"`
		} `json:"choices"`
		Usage map[string]json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	msg := m.Choices[0].Message
	if string(msg["refusal"]) != "null" || string(m.Choices[0].Logprobs) != "null" {
		t.Fatalf("message %s", body)
	}
	if string(m.Usage["prompt_tokens_details"]) != `{"cached_tokens":0,"audio_tokens":0}` ||
		!strings.Contains(string(m.Usage["completion_tokens_details"]), `"reasoning_tokens":0`) {
		t.Fatalf("usage %s", body)
	}
}

// ---- chat, stream ----

func TestChatStreamWire(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		includeUsage bool
		chunkTokens  int
		tps          float64
	}{
		{"no usage", false, 1, 0},
		{"include usage", true, 1, 0},
		{"chunks of 3 with usage", true, 3, 0},
		{"paced", false, 2, 2000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startServer(t, Config{ChunkTokens: tc.chunkTokens, TokensPerSec: tc.tps, CompletionTokens: 7})
			reqBody := `{"model":"m","messages":[{"role":"user","content":"tell me a story"}],"stream":true`
			if tc.includeUsage {
				reqBody += `,"stream_options":{"include_usage":true}`
			}
			reqBody += "}"
			resp := post(t, context.Background(), base+"/chat/completions", reqBody, map[string]string{"Accept": "application/json"})
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
				resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("x-ratelimit-limit-requests") == "" {
				t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
			}
			events, err := readSSE(t, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) < 4 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events %q", events)
			}
			events = events[:len(events)-1]
			var content strings.Builder
			var first rawChunk
			finishes := 0
			for i, ev := range events {
				var raw map[string]json.RawMessage
				var c rawChunk
				if err := json.Unmarshal([]byte(ev), &raw); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = c
				}
				if c.ID != first.ID || c.Created != first.Created || c.Object != "chat.completion.chunk" || c.Model != "m" {
					t.Fatalf("chunk %d envelope differs: %s", i, ev)
				}
				u, hasUsage := raw["usage"]
				isUsageChunk := tc.includeUsage && i == len(events)-1
				switch {
				case isUsageChunk:
					if len(c.Choices) != 0 || string(raw["choices"]) != "[]" || c.Usage == nil {
						t.Fatalf("usage chunk: %s", ev)
					}
					if c.Usage.CompletionTokens != 7 || c.Usage.PromptTokens != 3+3+4 || c.Usage.TotalTokens != 17 {
						t.Fatalf("usage %+v", c.Usage)
					}
					continue
				case tc.includeUsage:
					if !hasUsage || string(u) != "null" {
						t.Fatalf("chunk %d lacks usage:null: %s", i, ev)
					}
				default:
					if hasUsage {
						t.Fatalf("chunk %d has usage: %s", i, ev)
					}
				}
				if len(c.Choices) != 1 {
					t.Fatalf("chunk %d choices: %s", i, ev)
				}
				ch := c.Choices[0]
				var delta map[string]json.RawMessage
				_ = json.Unmarshal(ch["delta"], &delta)
				if i == 0 && (string(delta["role"]) != `"assistant"` || string(delta["content"]) != `""`) {
					t.Fatalf("first chunk: %s", ev)
				}
				if string(ch["finish_reason"]) != "null" {
					finishes++
					if string(ch["finish_reason"]) != `"stop"` || len(delta) != 0 {
						t.Fatalf("finish chunk: %s", ev)
					}
				}
				var s string
				if raw, ok := delta["content"]; ok {
					_ = json.Unmarshal(raw, &s)
					content.WriteString(s)
				}
			}
			if finishes != 1 {
				t.Fatalf("%d finish chunks", finishes)
			}
			// Same text as the non-stream answer.
			resp2 := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"tell me a story"}]}`, nil)
			var full goopenai.ChatCompletionResponse
			if err := json.Unmarshal(readAll(t, resp2), &full); err != nil {
				t.Fatal(err)
			}
			if full.Choices[0].Message.Content != content.String() {
				t.Fatalf("stream %q != non-stream %q", content.String(), full.Choices[0].Message.Content)
			}
		})
	}
}

func TestChatStreamSDKs(t *testing.T) {
	t.Parallel()
	for _, includeUsage := range []bool{false, true} {
		t.Run("include_usage="+strconv.FormatBool(includeUsage), func(t *testing.T) {
			srv, base := startServer(t, Config{ChunkTokens: 2})
			// go-openai
			req := goopenai.ChatCompletionRequest{
				Model: "m", Stream: true, MaxCompletionTokens: 5,
				Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "stream please"}},
			}
			if includeUsage {
				req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
			}
			st, err := goClient(base, "").CreateChatCompletionStream(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			var usage *goopenai.Usage
			finish := ""
			for {
				r, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.Usage != nil {
					usage = r.Usage
				}
				for _, c := range r.Choices {
					text.WriteString(c.Delta.Content)
					if c.FinishReason != "" {
						finish = string(c.FinishReason)
					}
				}
			}
			st.Close()
			if len(strings.Fields(text.String())) != 5 || finish != "length" {
				t.Fatalf("go-openai: %q finish %q", text.String(), finish)
			}
			if includeUsage != (usage != nil) || (usage != nil && usage.CompletionTokens != 5) {
				t.Fatalf("go-openai usage %+v", usage)
			}

			// openai-go with the accumulator
			params := openai.ChatCompletionNewParams{
				Model: "m", MaxCompletionTokens: openai.Int(5),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
			}
			if includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := officialClient(base, "").Chat.Completions.NewStreaming(context.Background(), params)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatal("accumulator rejected a chunk")
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.Choices[0].Message.Content != text.String() || acc.Choices[0].FinishReason != "length" {
				t.Fatalf("openai-go: %+v", acc.Choices[0])
			}
			if includeUsage && acc.Usage.TotalTokens != acc.Usage.PromptTokens+5 {
				t.Fatalf("openai-go usage %+v", acc.Usage)
			}
			testutil.Eventually(t, "streams completed", func() bool { return srv.Stats().Completed == 2 })
			if s := srv.Stats(); s.Streams != 2 || s.Canceled != 0 || s.CompletionTokens != 10 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// ---- tools ----

var weatherParams = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"city":  map[string]any{"type": "string"},
		"unit":  map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
		"days":  map[string]any{"type": "integer"},
		"tags":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"extra": map[string]any{"type": []string{"boolean", "null"}},
	},
	"required": []string{"city"},
}

var timeParams = map[string]any{
	"type":       "object",
	"properties": map[string]any{"zone": map[string]any{"type": "string"}},
}

func officialTools() []openai.ChatCompletionToolUnionParam {
	return []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Parameters: weatherParams}),
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_time", Parameters: timeParams}),
	}
}

func TestToolCallsOfficial(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		setup     func(p *openai.ChatCompletionNewParams)
		wantNames []string
	}{
		{"parallel", func(p *openai.ChatCompletionNewParams) {}, []string{"get_weather", "get_time"}},
		{"parallel off", func(p *openai.ChatCompletionNewParams) { p.ParallelToolCalls = openai.Bool(false) }, []string{"get_weather"}},
		{"named", func(p *openai.ChatCompletionNewParams) {
			p.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"})
		}, []string{"get_time"}},
		{"none", func(p *openai.ChatCompletionNewParams) {
			p.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
		}, nil},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(tc.name+"/stream="+strconv.FormatBool(stream), func(t *testing.T) {
				_, base := startServer(t, Config{ChunkTokens: 2})
				oc := officialClient(base, "")
				params := openai.ChatCompletionNewParams{
					Model:    "m",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris?")},
					Tools:    officialTools(),
				}
				tc.setup(&params)
				var cc openai.ChatCompletion
				if stream {
					st := oc.Chat.Completions.NewStreaming(context.Background(), params)
					var acc openai.ChatCompletionAccumulator
					finished := 0
					for st.Next() {
						if !acc.AddChunk(st.Current()) {
							t.Fatal("accumulator rejected a chunk")
						}
						if _, ok := acc.JustFinishedToolCall(); ok {
							finished++
						}
					}
					if err := st.Err(); err != nil {
						t.Fatal(err)
					}
					if finished != len(tc.wantNames) {
						t.Fatalf("%d finished tool calls, want %d", finished, len(tc.wantNames))
					}
					cc = acc.ChatCompletion
				} else {
					r, err := oc.Chat.Completions.New(context.Background(), params)
					if err != nil {
						t.Fatal(err)
					}
					cc = *r
				}
				msg := cc.Choices[0].Message
				if len(tc.wantNames) == 0 {
					if len(msg.ToolCalls) != 0 || msg.Content == "" || cc.Choices[0].FinishReason != "stop" {
						t.Fatalf("want text, got %+v", cc.Choices[0])
					}
					return
				}
				if cc.Choices[0].FinishReason != "tool_calls" || msg.Content != "" || len(msg.ToolCalls) != len(tc.wantNames) {
					t.Fatalf("got %+v", cc.Choices[0])
				}
				for i, call := range msg.ToolCalls {
					if call.Function.Name != tc.wantNames[i] || !strings.HasPrefix(call.ID, "call_") || call.Type != "function" {
						t.Fatalf("call %d: %+v", i, call)
					}
					var args map[string]any
					if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil {
						t.Fatalf("arguments %q: %v", call.Function.Arguments, err)
					}
					if call.Function.Name == "get_weather" {
						if _, ok := args["city"].(string); !ok {
							t.Fatalf("args %v", args)
						}
						if u := args["unit"]; u != "celsius" && u != "fahrenheit" {
							t.Fatalf("unit %v", u)
						}
						if _, ok := args["days"].(float64); !ok {
							t.Fatalf("days %v", args)
						}
						if _, ok := args["extra"].(bool); !ok {
							t.Fatalf("extra %v", args)
						}
					}
				}
				if cc.Usage.CompletionTokens == 0 && !stream {
					t.Fatalf("usage %+v", cc.Usage)
				}

				// Answer the calls: the reply is text.
				params.Messages = append(params.Messages, msg.ToParam())
				for _, call := range msg.ToolCalls {
					params.Messages = append(params.Messages, openai.ToolMessage(`{"temp":21}`, call.ID))
				}
				r2, err := oc.Chat.Completions.New(context.Background(), params)
				if err != nil {
					t.Fatal(err)
				}
				if len(r2.Choices[0].Message.ToolCalls) != 0 || r2.Choices[0].Message.Content == "" || r2.Choices[0].FinishReason != "stop" {
					t.Fatalf("after tool result: %+v", r2.Choices[0])
				}
			})
		}
	}
}

func TestToolCallStreamWire(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	body := mustJSON(t, map[string]any{
		"model": "m", "stream": true,
		"messages": []any{map[string]any{"role": "user", "content": "go"}},
		"tools": []any{
			map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": weatherParams}},
			map[string]any{"type": "function", "function": map[string]any{"name": "get_time", "parameters": timeParams}},
		},
	})
	resp := post(t, context.Background(), base+"/chat/completions", body, nil)
	defer resp.Body.Close()
	events, err := readSSE(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	type fragment struct {
		Index    *int    `json:"index"`
		ID       *string `json:"id"`
		Type     *string `json:"type"`
		Function struct {
			Name      *string `json:"name"`
			Arguments *string `json:"arguments"`
		} `json:"function"`
	}
	seen := map[int]bool{}
	args := map[int]string{}
	var ids []string
	for _, ev := range events[:len(events)-1] {
		var c struct {
			Choices []struct {
				Delta struct {
					ToolCalls []fragment `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatal(err)
		}
		for _, f := range c.Choices[0].Delta.ToolCalls {
			if f.Index == nil || f.Function.Arguments == nil {
				t.Fatalf("fragment without index/arguments: %s", ev)
			}
			if !seen[*f.Index] {
				seen[*f.Index] = true
				if f.ID == nil || f.Type == nil || *f.Type != "function" || f.Function.Name == nil || *f.Function.Arguments != "" {
					t.Fatalf("first fragment: %s", ev)
				}
				ids = append(ids, *f.ID)
				if *f.Index != len(ids)-1 {
					t.Fatalf("index %d out of order", *f.Index)
				}
				continue
			}
			if f.ID != nil || f.Type != nil || f.Function.Name != nil {
				t.Fatalf("later fragment carries more than index+arguments: %s", ev)
			}
			args[*f.Index] += *f.Function.Arguments
		}
	}
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("ids %v", ids)
	}
	for i := range 2 {
		if !json.Valid([]byte(args[i])) {
			t.Fatalf("args %d: %q", i, args[i])
		}
	}
}

func TestToolCallsGoOpenAI(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	params, _ := json.Marshal(weatherParams)
	req := goopenai.ChatCompletionRequest{
		Model:    "m",
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "weather"}},
		Tools: []goopenai.Tool{{Type: goopenai.ToolTypeFunction, Function: &goopenai.FunctionDefinition{
			Name: "get_weather", Parameters: json.RawMessage(params),
		}}},
	}
	gc := goClient(base, "")
	resp, err := gc.CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if len(calls) != 1 || resp.Choices[0].FinishReason != goopenai.FinishReasonToolCalls {
		t.Fatalf("%+v", resp.Choices[0])
	}
	// Streamed: reassemble by index, same call as the non-stream one.
	req.Stream = true
	st, err := gc.CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var id, name, args string
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range r.Choices[0].Delta.ToolCalls {
			if tc.Index == nil || *tc.Index != 0 {
				t.Fatalf("index %v", tc.Index)
			}
			id += tc.ID
			name += tc.Function.Name
			args += tc.Function.Arguments
		}
	}
	if id != calls[0].ID || name != "get_weather" || args != calls[0].Function.Arguments {
		t.Fatalf("stream %q %q %q vs %+v", id, name, args, calls[0])
	}
}

// ---- errors ----

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

// ---- directives ----

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

// ---- embeddings ----

func decodeB64(t *testing.T, s string) []float32 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw)%4 != 0 {
		t.Fatalf("base64 %q: %v", s, err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	gc := goClient(base, "")
	cases := []struct {
		name   string
		format goopenai.EmbeddingEncodingFormat
		dims   int
	}{
		{"float default dims", "", 0},
		{"float 16 dims", goopenai.EmbeddingEncodingFormatFloat, 16},
		{"base64", goopenai.EmbeddingEncodingFormatBase64, 0},
		{"base64 5 dims", goopenai.EmbeddingEncodingFormatBase64, 5},
	}
	var ref [][]float32
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := gc.CreateEmbeddings(context.Background(), goopenai.EmbeddingRequest{
				Input: []string{"alpha beta", "gamma"}, Model: "text-embedding-3-small",
				EncodingFormat: tc.format, Dimensions: tc.dims,
			})
			if err != nil {
				t.Fatal(err)
			}
			dims := tc.dims
			if dims == 0 {
				dims = 8
			}
			if len(resp.Data) != 2 || resp.Usage.PromptTokens != 3 || resp.Usage.TotalTokens != 3 {
				t.Fatalf("%+v", resp)
			}
			for i, d := range resp.Data {
				if d.Index != i || len(d.Embedding) != dims {
					t.Fatalf("data %d: %+v", i, d)
				}
				var norm float64
				for _, f := range d.Embedding {
					norm += float64(f) * float64(f)
				}
				if math.Abs(norm-1) > 1e-4 {
					t.Fatalf("norm %v", norm)
				}
			}
			if dims == 8 {
				got := [][]float32{resp.Data[0].Embedding, resp.Data[1].Embedding}
				if ref == nil {
					ref = got
				} else {
					for i := range got {
						for j := range got[i] {
							if got[i][j] != ref[i][j] {
								t.Fatalf("float and base64 vectors differ: %v vs %v", got, ref)
							}
						}
					}
				}
			}
		})
	}

	t.Run("raw base64", func(t *testing.T) {
		resp := post(t, context.Background(), base+"/embeddings", `{"model":"e","input":"alpha beta","encoding_format":"base64","dimensions":3}`, nil)
		var r struct {
			Object string `json:"object"`
			Data   []struct {
				Object    string `json:"object"`
				Embedding string `json:"embedding"`
			} `json:"data"`
			Model string `json:"model"`
		}
		if err := json.Unmarshal(readAll(t, resp), &r); err != nil {
			t.Fatal(err)
		}
		if r.Object != "list" || r.Data[0].Object != "embedding" || r.Model != "e" {
			t.Fatalf("%+v", r)
		}
		if v := decodeB64(t, r.Data[0].Embedding); len(v) != 3 {
			t.Fatalf("%v", v)
		}
	})

	t.Run("official float and tokens", func(t *testing.T) {
		oc := officialClient(base, "")
		r, err := oc.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfString: openai.String("alpha beta")},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 1 || len(r.Data[0].Embedding) != 8 || float32(r.Data[0].Embedding[0]) != ref[0][0] {
			t.Fatalf("%+v", r.Data)
		}
		r, err = oc.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfTokenArrays: [][]int64{{1, 2, 3}, {4}}},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 2 || r.Usage.PromptTokens != 4 {
			t.Fatalf("%+v", r)
		}
	})
}

// ---- models ----

func TestModels(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{Models: []string{"gpt-a", "org/gpt-b"}})
	gc := goClient(base, "")
	list, err := gc.ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 2 || list.Models[1].ID != "org/gpt-b" || list.Models[0].Object != "model" {
		t.Fatalf("%+v", list)
	}
	m, err := gc.GetModel(context.Background(), "org/gpt-b")
	if err != nil || m.ID != "org/gpt-b" || m.OwnedBy != "mock" {
		t.Fatalf("%+v %v", m, err)
	}
	_, err = gc.GetModel(context.Background(), "nope")
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Fatalf("%v", err)
	}
	om, err := officialClient(base, "").Models.Get(context.Background(), "gpt-a")
	if err != nil || om.ID != "gpt-a" {
		t.Fatalf("%+v %v", om, err)
	}

	_, anyBase := startServer(t, Config{})
	m, err = goClient(anyBase, "").GetModel(context.Background(), "whatever")
	if err != nil || m.ID != "whatever" {
		t.Fatalf("%+v %v", m, err)
	}
}

// ---- resets, mid-stream errors, cancel ----

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

// ---- config, determinism, concurrency ----

func TestFailuresDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []int {
		_, base := startServer(t, Config{FailRate429: 0.2, FailRate500: 0.2, FailRate503: 0.2, Seed: 42})
		var out []int
		for range 30 {
			resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, nil)
			readAll(t, resp)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	a, b := run(), run()
	kinds := map[int]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("sequences differ: %v vs %v", a, b)
		}
		kinds[a[i]] = true
	}
	if len(kinds) < 3 {
		t.Fatalf("too few outcomes: %v", a)
	}
}

func TestSetConfigConcurrent(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				stream := (i+j)%2 == 0
				resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","stream":`+strconv.FormatBool(stream)+`,"messages":[{"role":"user","content":"x"}]}`, nil)
				readAll(t, resp)
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	for i := range 50 {
		srv.SetConfig(Config{ChunkTokens: i%3 + 1, CompletionTokens: i%5 + 1, Seed: int64(i)})
		_ = srv.Stats()
	}
	wg.Wait()
	testutil.Eventually(t, "all handlers done", func() bool { return srv.Stats().Active == 0 })
	if s := srv.Stats(); s.Chat != 80 || s.Completed != 80 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"-latency", "20ms", "-tokens-per-sec", "30", "-chunk-tokens", "2", "-fail-429", "0.1",
		"-fail-500", "0.2", "-fail-503", "0.3", "-reset-rate", "0.4", "-retry-after", "2s", "-seed", "7",
		"-api-key", "k", "-models", "a, b,,c", "-completion-tokens", "9"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Latency: 20 * time.Millisecond, TokensPerSec: 30, ChunkTokens: 2, CompletionTokens: 9, FailRate429: 0.1,
		FailRate500: 0.2, FailRate503: 0.3, ResetRate: 0.4, RetryAfter: 2 * time.Second, Seed: 7, APIKey: "k", Models: []string{"a", "b", "c"}}
	if mustJSON(t, cfg) != mustJSON(t, want) {
		t.Fatalf("got %+v", cfg)
	}
	var def Config
	def.RegisterFlags(flag.NewFlagSet("y", flag.ContinueOnError))
	if def.ChunkTokens != 1 || def.CompletionTokens != 16 {
		t.Fatalf("defaults %+v", def)
	}
}

func TestMainServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- Main(ctx, []string{"-addr", "127.0.0.1:0", "-api-key", "k"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "mock listening on ")
	if !ok || !strings.HasSuffix(base, "/v1") {
		t.Fatalf("line %q", line)
	}
	go io.Copy(io.Discard, pr)
	list, err := goClient(base, "k").ListModels(context.Background())
	if err != nil || len(list.Models) == 0 {
		t.Fatalf("%+v %v", list, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
