package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	official "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/xroute/xroute/loadtest/mock"
)

func TestMain(m *testing.M) {
	// Idle keep-alive connections of the SDKs' own HTTP clients are not
	// leaks; everything xroute starts must be gone.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func goClient(g *gateway) *goopenai.Client {
	cfg := goopenai.DefaultConfig(g.key)
	cfg.BaseURL = g.base
	return goopenai.NewClientWithConfig(cfg)
}

func officialClient(g *gateway, key string) *official.Client {
	c := official.NewClient(option.WithBaseURL(g.base+"/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

func TestNonStreamingBothSDKs(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	ctx := context.Background()

	t.Run("go-openai", func(t *testing.T) {
		resp, err := goClient(g).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{
			Model:    "gpt-4o-mini",
			Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Say hello"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content == "" || resp.Choices[0].FinishReason != "stop" || resp.Usage.CompletionTokens == 0 || resp.Usage.PromptTokens == 0 {
			t.Fatalf("unexpected response: %+v", resp)
		}
		h := resp.Header()
		if h.Get("x-xroute-provider") != "primary" || h.Get("x-xroute-model") != "mock-small" || h.Get("x-xroute-attempts") != "1" {
			t.Fatalf("routing headers: %v", h)
		}
		rec := g.usageFor(h.Get("x-request-id"))
		if rec.PromptTokens != resp.Usage.PromptTokens || rec.CompletionTokens != resp.Usage.CompletionTokens || rec.Status != 200 || rec.Provider != "primary" || rec.Model != "gpt-4o-mini" || rec.UpstreamModel != "mock-small" || rec.Latency <= 0 {
			t.Fatalf("usage record %+v does not match response usage %+v", rec, resp.Usage)
		}
	})

	t.Run("openai-go", func(t *testing.T) {
		var raw *http.Response
		resp, err := officialClient(g, g.key).Chat.Completions.New(ctx, official.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []official.ChatCompletionMessageParamUnion{official.UserMessage("Say hello")},
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
			t.Fatalf("unexpected response: %+v", resp)
		}
		if raw.Header.Get("x-request-id") == "" || !strings.HasPrefix(raw.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("headers: %v", raw.Header)
		}
	})
}

func TestStreamingUsageChunkOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{CompletionTokens: 12}})
	for _, include := range []bool{false, true} {
		name := map[bool]string{false: "without include_usage", true: "with include_usage"}[include]
		t.Run(name, func(t *testing.T) {
			req := goopenai.ChatCompletionRequest{
				Model:    "gpt-4o-mini",
				Stream:   true,
				Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Count for me"}},
			}
			if include {
				req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
			}
			st, err := goClient(g).CreateChatCompletionStream(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var text strings.Builder
			var usage *goopenai.Usage
			var finish goopenai.FinishReason
			chunks := 0
			for {
				c, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				chunks++
				if c.Usage != nil {
					usage = c.Usage
					if len(c.Choices) != 0 {
						t.Fatalf("usage chunk must have empty choices: %+v", c)
					}
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			if text.Len() == 0 || finish != "stop" {
				t.Fatalf("text %q finish %q", text.String(), finish)
			}
			if include != (usage != nil) {
				t.Fatalf("include_usage=%v but usage chunk present=%v", include, usage != nil)
			}
			if include && usage.CompletionTokens != 12 {
				t.Fatalf("usage %+v, want 12 completion tokens", usage)
			}
			// xroute always asked the upstream for usage, so the record is
			// exact either way.
			rec := g.usageFor(st.Header().Get("x-request-id"))
			if rec.CompletionTokens != 12 || rec.PromptTokens == 0 || !rec.Stream || rec.TTFT <= 0 || rec.TTFT > rec.Latency {
				t.Fatalf("usage record: %+v", rec)
			}
		})
	}
}

var weatherTools = []goopenai.Tool{
	{Type: "function", Function: &goopenai.FunctionDefinition{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}`)}},
	{Type: "function", Function: &goopenai.FunctionDefinition{Name: "get_time", Parameters: json.RawMessage(`{"type":"object","properties":{"zone":{"type":"string"}}}`)}},
}

func TestToolCalls(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	ctx := context.Background()
	msgs := []goopenai.ChatCompletionMessage{{Role: "user", Content: "Weather in Paris and the time?"}}

	t.Run("non-stream", func(t *testing.T) {
		resp, err := goClient(g).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: msgs, Tools: weatherTools})
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Choices[0]
		if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) == 0 {
			t.Fatalf("want tool calls, got %+v", c)
		}
		for _, tc := range c.Message.ToolCalls {
			if tc.ID == "" || tc.Type != "function" || !json.Valid([]byte(tc.Function.Arguments)) {
				t.Fatalf("bad tool call %+v", tc)
			}
		}
	})

	t.Run("stream go-openai", func(t *testing.T) {
		st, err := goClient(g).CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: msgs, Tools: weatherTools, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		calls := map[int]*goopenai.ToolCall{}
		for {
			c, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range c.Choices {
				for _, d := range ch.Delta.ToolCalls {
					if d.Index == nil {
						t.Fatalf("tool call delta without index: %+v", d)
					}
					tc, ok := calls[*d.Index]
					if !ok {
						if d.ID == "" || d.Function.Name == "" {
							t.Fatalf("first fragment must carry id and name: %+v", d)
						}
						tc = &goopenai.ToolCall{ID: d.ID, Function: goopenai.FunctionCall{Name: d.Function.Name}}
						calls[*d.Index] = tc
					}
					tc.Function.Arguments += d.Function.Arguments
				}
			}
		}
		if len(calls) == 0 {
			t.Fatal("no tool calls streamed")
		}
		for i, tc := range calls {
			var args map[string]any
			if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil {
				t.Fatalf("call %d: reassembled arguments %q are not JSON: %v", i, tc.Function.Arguments, err)
			}
		}
	})

	t.Run("stream openai-go accumulator", func(t *testing.T) {
		params := official.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []official.ChatCompletionMessageParamUnion{official.UserMessage("Weather in Paris?")},
			Tools: []official.ChatCompletionToolUnionParam{official.ChatCompletionFunctionTool(official.FunctionDefinitionParam{
				Name:       "get_weather",
				Parameters: official.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
			})},
			StreamOptions: official.ChatCompletionStreamOptionsParam{IncludeUsage: official.Bool(true)},
		}
		st := officialClient(g, g.key).Chat.Completions.NewStreaming(ctx, params)
		acc := official.ChatCompletionAccumulator{}
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Choices) == 0 || len(acc.Choices[0].Message.ToolCalls) == 0 {
			t.Fatalf("accumulated no tool calls: %+v", acc.ChatCompletion)
		}
		tc := acc.Choices[0].Message.ToolCalls[0]
		if tc.Function.Name != "get_weather" || !json.Valid([]byte(tc.Function.Arguments)) || acc.Usage.TotalTokens == 0 {
			t.Fatalf("tool call %+v usage %+v", tc, acc.Usage)
		}
	})
}

func TestTypedErrorsBothSDKs(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{RetryAfter: 7 * time.Second}})
	ctx := context.Background()
	tests := []struct {
		name    string
		key     string
		model   string
		content string
		status  int
		code    string
	}{
		{"401 unknown key", "xr-notakey", "gpt-4o-mini", "hi", 401, "invalid_api_key"},
		{"404 unknown model", "", "no-such-model", "hi", 404, "model_not_found"},
		{"429 upstream rate limit", "", "gpt-4o", "hi #mock:status=429", 429, "upstream_rate_limited"},
	}
	for _, tt := range tests {
		key := tt.key
		if key == "" {
			key = g.key
		}
		t.Run(tt.name+"/go-openai", func(t *testing.T) {
			cfg := goopenai.DefaultConfig(key)
			cfg.BaseURL = g.base
			_, err := goopenai.NewClientWithConfig(cfg).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{
				Model: tt.model, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: tt.content}},
			})
			var apiErr *goopenai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("want *APIError, got %T %v", err, err)
			}
			if apiErr.HTTPStatusCode != tt.status || apiErr.Code != tt.code || apiErr.Message == "" {
				t.Fatalf("got status %d code %v message %q", apiErr.HTTPStatusCode, apiErr.Code, apiErr.Message)
			}
		})
		t.Run(tt.name+"/openai-go", func(t *testing.T) {
			var raw *http.Response
			_, err := officialClient(g, key).Chat.Completions.New(ctx, official.ChatCompletionNewParams{
				Model: tt.model, Messages: []official.ChatCompletionMessageParamUnion{official.UserMessage(tt.content)},
			}, option.WithResponseInto(&raw))
			var apiErr *official.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want *openai.Error, got %T %v", err, err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Code != tt.code {
				t.Fatalf("got status %d code %q", apiErr.StatusCode, apiErr.Code)
			}
			if apiErr.Response.Header.Get("x-request-id") == "" {
				t.Fatal("error answers carry x-request-id too")
			}
			if tt.status == 429 && apiErr.Response.Header.Get("Retry-After") != "7" {
				t.Fatalf("Retry-After = %q, want the upstream's 7", apiErr.Response.Header.Get("Retry-After"))
			}
		})
	}
}
