package anthropic

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/xroute/xroute/loadtest/mock"
)

func TestSDKErrors(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, Config{Config: mock.Config{RetryAfter: 2 * time.Second}})
	wrongKey, _ := newClient(t, Config{}, option.WithAPIKey("sk-ant-wrong"))
	hi := []anthropic.MessageParam{userText("hi")}
	params := func(model string, msgs []anthropic.MessageParam) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 10, Messages: msgs}
	}
	system := anthropic.MessageParam{OfSystem: &anthropic.SystemMessageParam{Content: []anthropic.TextBlockParam{{Text: "be brief"}}}}
	tests := []struct {
		name   string
		client anthropic.Client
		p      anthropic.MessageNewParams
		opts   []option.RequestOption
		status int
		typ    string
		msg    string
	}{
		{"extra field", c, params("m", hi), []option.RequestOption{option.WithJSONSet("frequency_penalty", 0.5)}, 400, "invalid_request_error", "frequency_penalty: Extra inputs are not permitted"},
		{"temperature in 2026-10-21", c, params("m", hi), []option.RequestOption{option.WithJSONSet("temperature", 1)}, 400, "invalid_request_error", "temperature: Extra inputs are not permitted"},
		{"system message on a legacy model", c, params("claude-sonnet-4-5", []anthropic.MessageParam{userText("hi"), system}), nil, 400, "invalid_request_error", "role 'system' is not supported on this model"},
		{"system message first", c, params("claude-opus-5-5", []anthropic.MessageParam{system, userText("hi")}), nil, 400, "invalid_request_error", "must immediately follow a user message"},
		{"wrong key", wrongKey, params("m", hi), nil, 401, "authentication_error", "invalid x-api-key"},
		{"rate limited", c, params("m", []anthropic.MessageParam{userText("hi #mock:status=429")}), nil, 429, "rate_limit_error", "rate limit"},
		{"overloaded", c, params("m", []anthropic.MessageParam{userText("hi #mock:status=529")}), nil, 529, "overloaded_error", "Overloaded"},
		{"billing", c, params("m", []anthropic.MessageParam{userText("hi #mock:quota")}), nil, 402, "billing_error", "credit balance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.Messages.New(context.Background(), tt.p, tt.opts...)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v", err)
			}
			if apiErr.StatusCode != tt.status || string(apiErr.Type()) != tt.typ || !strings.Contains(apiErr.Message, tt.msg) || !strings.HasPrefix(apiErr.RequestID, "req_") {
				t.Fatalf("got %d %s %q (request %q)", apiErr.StatusCode, apiErr.Type(), apiErr.Message, apiErr.RequestID)
			}
			if tt.status != 429 {
				return
			}
			h := apiErr.Response.Header
			if h.Get("retry-after") != "2" || h.Get("anthropic-ratelimit-requests-remaining") != "0" {
				t.Fatalf("429 headers %v", h)
			}
			for _, name := range []string{"requests", "tokens", "input-tokens", "output-tokens"} {
				reset, err := time.Parse(time.RFC3339, h.Get("anthropic-ratelimit-"+name+"-reset"))
				if err != nil || h.Get("anthropic-ratelimit-"+name+"-limit") == "" || h.Get("anthropic-ratelimit-"+name+"-remaining") == "" || reset.IsZero() {
					t.Fatalf("%s headers %v", name, h)
				}
			}
		})
	}
	// The mid-conversation system message of a current model is accepted.
	if _, err := c.Messages.New(context.Background(), params("claude-opus-5-5", []anthropic.MessageParam{userText("hi"), system})); err != nil {
		t.Fatal(err)
	}
}

func TestSDKMidStreamError(t *testing.T) {
	t.Parallel()
	c, s := newClient(t, Config{})
	stream := c.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "m", MaxTokens: 50,
		Messages: []anthropic.MessageParam{userText("hi #mock:stream-error")}})
	defer stream.Close() // an unread body keeps its connection and its goroutines alive
	var types []string
	for stream.Next() {
		types = append(types, stream.Current().Type)
	}
	var apiErr *anthropic.Error
	if !errors.As(stream.Err(), &apiErr) || apiErr.Type() != "overloaded_error" || apiErr.Message != "Overloaded" {
		t.Fatalf("stream error %v", stream.Err())
	}
	if strings.Join(types, " ") != "message_start content_block_start content_block_delta" {
		t.Fatalf("events before the error: %v", types)
	}
	if st := s.Stats(); st.Streams != 1 || st.Completed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSDKBetaClaudeCode sends a request shaped like Claude Code's: betas,
// cache breakpoints on system blocks and the last message, a
// mid-conversation system message, adaptive thinking with effort, context
// management, metadata, deferred and server tools.
func TestSDKBetaClaudeCode(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, Config{CacheMinTokens: -1}) // a short prompt: cache any prefix
	cc := anthropic.BetaCacheControlEphemeralParam{TTL: "1h"}
	p := anthropic.BetaMessageNewParams{Model: "claude-opus-5-5", MaxTokens: 16000,
		Betas: []anthropic.AnthropicBeta{"claude-code-20250219", anthropic.AnthropicBetaInterleavedThinking2025_05_14,
			anthropic.AnthropicBetaContextManagement2025_06_27, "advanced-tool-use-2025-11-20"},
		System: []anthropic.BetaTextBlockParam{{Text: "You are Claude Code."}, {Text: "Project instructions.", CacheControl: cc}},
		Messages: []anthropic.BetaMessageParam{
			anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("fix the bug")),
			{OfSystem: &anthropic.BetaSystemMessageParam{Content: []anthropic.BetaSystemMessageParamContentUnion{{OfText: &anthropic.BetaTextBlockParam{Text: "Reminder: run the tests."}}}}},
		},
		Metadata:          anthropic.BetaMetadataParam{UserID: anthropic.String(`{"device_id":"d","session_id":"s"}`)},
		Thinking:          anthropic.BetaThinkingConfigParamUnion{OfAdaptive: &anthropic.BetaThinkingConfigAdaptiveParam{}},
		OutputConfig:      anthropic.BetaOutputConfigParam{Effort: "medium"},
		ContextManagement: anthropic.BetaContextManagementConfigParam{Edits: []anthropic.BetaContextManagementConfigEditUnionParam{{OfClearToolUses20250919: &anthropic.BetaClearToolUses20250919EditParam{}}}},
		Tools: []anthropic.BetaToolUnionParam{
			{OfTool: &anthropic.BetaToolParam{Name: "Bash", InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"command": map[string]any{"type": "string"}}}, CacheControl: cc}},
			{OfTool: &anthropic.BetaToolParam{Name: "NotebookEdit", DeferLoading: anthropic.Bool(true), InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"cell": map[string]any{"type": "string"}}}}},
			{OfWebSearchTool20250305: &anthropic.BetaWebSearchTool20250305Param{}},
			{OfBashTool20250124: &anthropic.BetaToolBash20250124Param{}},
			{OfTextEditor20250728: &anthropic.BetaToolTextEditor20250728Param{}},
			{OfCodeExecutionTool20250825: &anthropic.BetaCodeExecutionTool20250825Param{}},
		},
	}
	msg, err := c.Beta.Messages.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, b := range msg.Content {
		types = append(types, b.Type)
	}
	// Adaptive thinking (effort medium), a preamble, then the one custom
	// tool that is not deferred.
	if strings.Join(types, ",") != "thinking,text,tool_use" || msg.Content[2].Name != "Bash" || msg.Usage.OutputTokensDetails.ThinkingTokens != 24 {
		t.Fatalf("blocks %v usage %+v", types, msg.Usage)
	}
	if !msg.ContextManagement.JSON.AppliedEdits.Valid() || msg.Usage.CacheCreationInputTokens == 0 || msg.Usage.CacheCreation.Ephemeral1hInputTokens != msg.Usage.CacheCreationInputTokens {
		t.Fatalf("context management %+v usage %+v", msg.ContextManagement, msg.Usage)
	}
	count, err := c.Beta.Messages.CountTokens(context.Background(), anthropic.BetaMessageCountTokensParams{Model: p.Model, Messages: p.Messages,
		Betas: p.Betas, ContextManagement: p.ContextManagement,
		System: anthropic.BetaMessageCountTokensParamsSystemUnion{OfBetaTextBlockArray: p.System}})
	if err != nil || count.ContextManagement.OriginalInputTokens != count.InputTokens {
		t.Fatalf("beta count %+v %v", count, err)
	}

	// The same request streamed.
	stream := c.Beta.Messages.NewStreaming(context.Background(), p)
	defer stream.Close() // an unread body keeps its connection and its goroutines alive
	var acc anthropic.BetaMessage
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 3 || acc.Content[0].Signature != msg.Content[0].Signature || acc.Usage.OutputTokens != msg.Usage.OutputTokens || acc.StopReason != "tool_use" {
		t.Fatalf("streamed %+v", acc)
	}
	// Rate-limit headers come with every answer.
	var raw *http.Response
	if _, err := c.Beta.Messages.New(context.Background(), p, option.WithResponseInto(&raw)); err != nil || raw.Header.Get("anthropic-ratelimit-input-tokens-limit") == "" {
		t.Fatalf("headers %v %v", raw, err)
	}
}
