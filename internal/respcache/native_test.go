package respcache_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/providers"
)

func TestResponsesCompletion(t *testing.T) {
	for _, tc := range []struct {
		name, obj       string
		ok              bool
		text, finish    string
		calls           int
		reasoning, refu string
	}{
		{"text", `{"status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi "},{"type":"output_text","text":"there"}]}]}`, true, "Hi there", "stop", 0, "", ""},
		{"reasoning and a tool call", `{"status":"completed","output":[{"type":"reasoning","summary":[{"text":"think"}]},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}]}`, true, "", "tool_calls", 1, "think", ""},
		{"refusal", `{"status":"completed","output":[{"type":"message","content":[{"type":"refusal","refusal":"no"}]}]}`, true, "", "stop", 0, "", "no"},
		{"cut at max tokens", `{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}]}`, true, "Hi", "length", 0, "", ""},
		{"content filter: not kept", `{"status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[]}`, false, "", "", 0, "", ""},
		{"failed: not kept", `{"status":"failed","output":[]}`, false, "", "", 0, "", ""},
		{"a built-in tool's item: not kept", `{"status":"completed","output":[{"type":"web_search_call","id":"ws"},{"type":"message","content":[{"type":"output_text","text":"x"}]}]}`, false, "", "", 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, ok := respcache.ResponsesCompletion(gjson.Parse(tc.obj))
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			text := ""
			if cp.Content != nil {
				text = *cp.Content
			}
			refusal := ""
			if cp.Refusal != nil {
				refusal = *cp.Refusal
			}
			if text != tc.text || cp.FinishReason != tc.finish || len(cp.ToolCalls) != tc.calls || cp.Reasoning != tc.reasoning || refusal != tc.refu {
				t.Fatalf("completion %+v (text %q, refusal %q)", cp, text, refusal)
			}
		})
	}
}

func TestMessagesCompletion(t *testing.T) {
	for _, tc := range []struct {
		name, msg    string
		ok           bool
		text, finish string
		args         string
	}{
		{"text", `{"type":"message","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn"}`, true, "Hi", "stop", ""},
		{"a tool call", `{"type":"message","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}],"stop_reason":"tool_use"}`, true, "", "tool_calls", `{"a":1}`},
		{"max tokens", `{"type":"message","content":[{"type":"text","text":"Hi"}],"stop_reason":"max_tokens"}`, true, "Hi", "length", ""},
		{"thinking (signed): not kept", `{"type":"message","content":[{"type":"thinking","thinking":"x","signature":"s"},{"type":"text","text":"Hi"}],"stop_reason":"end_turn"}`, false, "", "", ""},
		{"refusal stop: not kept", `{"type":"message","content":[],"stop_reason":"refusal"}`, false, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, ok := respcache.MessagesCompletion(gjson.Parse(tc.msg))
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			text := ""
			if cp.Content != nil {
				text = *cp.Content
			}
			args := ""
			if len(cp.ToolCalls) > 0 {
				args = cp.ToolCalls[0].Function.Arguments
			}
			if text != tc.text || cp.FinishReason != tc.finish || args != tc.args {
				t.Fatalf("completion %+v (text %q)", cp, text)
			}
		})
	}
}

// TestCollectorNativeMessagesStream: a native Messages stream is folded
// into the answer at message_stop; a thinking block makes it uncacheable.
func TestCollectorNativeMessagesStream(t *testing.T) {
	ev := func(name, data string) providers.Chunk {
		return providers.Chunk{Native: true, Name: name, Data: []byte(data)}
	}
	base := []providers.Chunk{
		ev("message_start", `{"type":"message_start","message":{"usage":{"input_tokens":3}}}`),
		ev("content_block_start", `{"index":0,"content_block":{"type":"text","text":""}}`),
		ev("content_block_delta", `{"index":0,"delta":{"type":"text_delta","text":"Hel"}}`),
		ev("ping", `{}`),
		ev("content_block_delta", `{"index":0,"delta":{"type":"text_delta","text":"lo"}}`),
		ev("content_block_stop", `{"index":0}`),
		ev("content_block_start", `{"index":1,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}`),
		ev("content_block_delta", `{"index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`),
		ev("content_block_delta", `{"index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}`),
		ev("content_block_stop", `{"index":1}`),
		ev("message_delta", `{"delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}`),
		ev("message_stop", `{}`),
	}
	var c respcache.Collector
	for _, ch := range base {
		c.Chunk(ch)
	}
	cp, ok := c.Completion()
	if !ok || cp.Content == nil || *cp.Content != "Hello" || len(cp.ToolCalls) != 1 || cp.ToolCalls[0].Function.Arguments != `{"a":1}` || cp.FinishReason != "tool_calls" {
		t.Fatalf("folded %+v, %v", cp, ok)
	}
	var thinking respcache.Collector
	for _, ch := range append([]providers.Chunk{base[0], ev("content_block_start", `{"index":0,"content_block":{"type":"thinking","thinking":""}}`)}, base[1:]...) {
		thinking.Chunk(ch)
	}
	if _, ok := thinking.Completion(); ok {
		t.Fatal("a stream with a thinking block was kept")
	}
	var cut respcache.Collector
	for _, ch := range base[:len(base)-2] {
		cut.Chunk(ch)
	}
	if _, ok := cut.Completion(); ok {
		t.Fatal("a stream cut before message_stop was kept")
	}
}
