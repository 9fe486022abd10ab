package respcache

import (
	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// Native answers (a Responses request served by an upstream that speaks
// the Responses API itself) are cached in the same neutral form as every
// other answer: the Responses object (the body, or the response of a
// stream's response.completed event) is read back into a Completion, so
// a hit is rendered by the ingress's encoder like any hit, streamed or
// not, with fresh ids. What the neutral form cannot hold (a built-in
// tool's output items) makes the answer uncacheable instead.

// ResponsesCompletion reads a Responses API response object; ok is false
// when it did not complete or holds items the neutral form cannot keep.
func ResponsesCompletion(obj gjson.Result) (providers.Completion, bool) {
	var cp providers.Completion
	switch obj.Get("status").Str {
	case "completed":
		cp.FinishReason = "stop"
	case "incomplete":
		if obj.Get("incomplete_details.reason").Str != "max_output_tokens" {
			return cp, false
		}
		cp.FinishReason = "length"
	default:
		return cp, false
	}
	var text, refusal, reasoning string
	hasText, hasRefusal := false, false
	ok := true
	obj.Get("output").ForEach(func(_, item gjson.Result) bool {
		switch item.Get("type").Str {
		case "message":
			item.Get("content").ForEach(func(_, part gjson.Result) bool {
				switch part.Get("type").Str {
				case "output_text":
					text += part.Get("text").Str
					hasText = true
				case "refusal":
					refusal += part.Get("refusal").Str
					hasRefusal = true
				default:
					ok = false
				}
				return ok
			})
		case "function_call":
			cp.ToolCalls = append(cp.ToolCalls, providers.ToolCall{ID: item.Get("call_id").Str, Type: "function",
				Function: providers.FunctionCall{Name: item.Get("name").Str, Arguments: item.Get("arguments").Str}})
		case "reasoning":
			item.Get("summary").ForEach(func(_, s gjson.Result) bool {
				reasoning += s.Get("text").Str
				return true
			})
		default: // web search, file search, … results: not replayable
			ok = false
		}
		return ok
	})
	if !ok {
		return providers.Completion{}, false
	}
	if len(cp.ToolCalls) > 0 && cp.FinishReason == "stop" {
		cp.FinishReason = "tool_calls"
	}
	if hasText || len(cp.ToolCalls) == 0 {
		cp.Content = &text
	}
	if hasRefusal {
		cp.Refusal = &refusal
	}
	cp.Reasoning = reasoning
	return cp, true
}
