package bedrock

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/xroute/xroute/providers"
)

// finishReason maps a Converse stopReason to OpenAI's finish_reason.
func finishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "guardrail_intervened", "content_filtered":
		return "content_filter"
	}
	// end_turn, stop_sequence, malformed_model_output, malformed_tool_use
	// and anything newer.
	return "stop"
}

// usage converts Converse token usage. inputTokens excludes cache reads and
// writes, so the prompt is their sum; cached tokens are the cache reads.
func usage(u *tokenUsage) providers.Usage {
	if u == nil {
		return providers.Usage{}
	}
	out := providers.Usage{
		PromptTokens:     u.InputTokens + u.CacheReadInputTokens + u.CacheWriteInputTokens,
		CompletionTokens: u.OutputTokens,
		CachedTokens:     u.CacheReadInputTokens,
	}
	out.TotalTokens = out.PromptTokens + out.CompletionTokens
	return out
}

// compactJSON returns raw compacted, or "{}" when raw is empty or invalid.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(bytes.TrimSpace(raw)) == 0 || json.Compact(&b, raw) != nil {
		return "{}"
	}
	return b.String()
}

// completion turns a Converse answer into the neutral Completion.
func completion(resp *converseResponse, jsonTool string) *providers.Completion {
	c := &providers.Completion{FinishReason: finishReason(resp.StopReason), Usage: usage(resp.Usage)}
	var text strings.Builder
	hasText := false
	if m := resp.Output.Message; m != nil {
		for _, b := range m.Content {
			switch {
			case b.Text != nil:
				text.WriteString(*b.Text)
				hasText = true
			case b.ToolUse != nil && jsonTool != "" && b.ToolUse.Name == jsonTool:
				text.WriteString(compactJSON(b.ToolUse.Input))
				hasText = true
			case b.ToolUse != nil:
				c.ToolCalls = append(c.ToolCalls, providers.ToolCall{
					ID:       b.ToolUse.ToolUseID,
					Type:     "function",
					Function: providers.FunctionCall{Name: b.ToolUse.Name, Arguments: compactJSON(b.ToolUse.Input)},
				})
			}
		}
	}
	if hasText || len(c.ToolCalls) == 0 {
		s := text.String()
		c.Content = &s
	}
	switch {
	case len(c.ToolCalls) > 0 && c.FinishReason == "stop":
		c.FinishReason = "tool_calls"
	case len(c.ToolCalls) == 0 && c.FinishReason == "tool_calls":
		c.FinishReason = "stop" // the forced json_object tool
	}
	return c
}
