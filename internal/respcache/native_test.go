package respcache_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/internal/respcache"
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
