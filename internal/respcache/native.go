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

// MessagesCompletion reads an Anthropic Messages API message; ok is false
// when it holds what the neutral form cannot replay faithfully (thinking
// blocks carry signatures a client sends back; server tools' blocks) or
// it did not end in a known way.
func MessagesCompletion(msg gjson.Result) (providers.Completion, bool) {
	var f messagesFold
	ok := true
	msg.Get("content").ForEach(func(_, b gjson.Result) bool {
		ok = f.block(b) && f.delta(b)
		return ok
	})
	if !ok {
		return providers.Completion{}, false
	}
	return f.completion(msg.Get("stop_reason").Str)
}

// messagesFold gathers a Messages answer's blocks, from a body or from a
// stream's events.
type messagesFold struct {
	text    string
	hasText bool
	calls   []providers.ToolCall
	kinds   map[int]string // a stream's open blocks by index
	callAt  map[int]int    // a stream's tool_use blocks: index into calls
	stop    string
}

// block opens a content block (its type, id and name); false for a type
// the neutral form cannot keep.
func (f *messagesFold) block(b gjson.Result) bool {
	switch b.Get("type").Str {
	case "text":
		f.hasText = true
	case "tool_use":
		f.calls = append(f.calls, providers.ToolCall{ID: b.Get("id").Str, Type: "function", Function: providers.FunctionCall{Name: b.Get("name").Str}})
	default:
		return false
	}
	return true
}

// delta adds a whole block's content (a body: text, tool input).
func (f *messagesFold) delta(b gjson.Result) bool {
	switch b.Get("type").Str {
	case "text":
		f.text += b.Get("text").Str
	case "tool_use":
		f.calls[len(f.calls)-1].Function.Arguments = b.Get("input").Raw
	}
	return true
}

// event folds one stream event; false when the answer cannot be kept.
func (f *messagesFold) event(name string, data []byte) bool {
	d := gjson.ParseBytes(data)
	switch name {
	case "message_start", "content_block_stop", "message_stop", "ping":
	case "content_block_start":
		if f.kinds == nil {
			f.kinds, f.callAt = map[int]string{}, map[int]int{}
		}
		cb := d.Get("content_block")
		if !f.block(cb) {
			return false
		}
		i := int(d.Get("index").Int())
		f.kinds[i] = cb.Get("type").Str
		if f.kinds[i] == "tool_use" {
			f.callAt[i] = len(f.calls) - 1
			if in := cb.Get("input"); in.IsObject() && len(in.Map()) > 0 {
				f.calls[len(f.calls)-1].Function.Arguments = in.Raw
			}
		}
	case "content_block_delta":
		i := int(d.Get("index").Int())
		switch dl := d.Get("delta"); dl.Get("type").Str {
		case "text_delta":
			f.text += dl.Get("text").Str
		case "input_json_delta":
			at, ok := f.callAt[i]
			if !ok {
				return false
			}
			f.calls[at].Function.Arguments += dl.Get("partial_json").Str
		default:
			return false
		}
	case "message_delta":
		if s := d.Get("delta.stop_reason").Str; s != "" {
			f.stop = s
		}
	default:
		return false
	}
	return true
}

func (f *messagesFold) completion(stop string) (providers.Completion, bool) {
	var cp providers.Completion
	switch stop {
	case "end_turn", "stop_sequence":
		cp.FinishReason = "stop"
	case "max_tokens":
		cp.FinishReason = "length"
	case "tool_use":
		cp.FinishReason = "tool_calls"
	default:
		return cp, false
	}
	for i := range f.calls {
		if f.calls[i].Function.Arguments == "" {
			f.calls[i].Function.Arguments = "{}"
		}
	}
	cp.ToolCalls = f.calls
	if f.hasText || len(f.calls) == 0 {
		s := f.text
		cp.Content = &s
	}
	return cp, true
}
