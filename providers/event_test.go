package providers

import (
	"reflect"
	"testing"
)

func TestDecodeChatChunk(t *testing.T) {
	open := map[int]bool{}
	cases := []struct {
		name string
		data string
		want []Event
	}{
		{"role and empty content", `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, []Event{{Kind: EventRole}}},
		{"text", `{"choices":[{"delta":{"content":"Hi"}}]}`, []Event{{Kind: EventText, Text: "Hi"}}},
		{"reasoning_content (DeepSeek, vLLM)", `{"choices":[{"delta":{"reasoning_content":"hmm"}}]}`, []Event{{Kind: EventReasoning, Text: "hmm"}}},
		{"reasoning (OpenRouter)", `{"choices":[{"delta":{"reasoning":"so"}}]}`, []Event{{Kind: EventReasoning, Text: "so"}}},
		{"refusal", `{"choices":[{"delta":{"refusal":"no"}}]}`, []Event{{Kind: EventRefusal, Text: "no"}}},
		{"tool start", `{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}`,
			[]Event{{Kind: EventToolStart, Index: 0, ID: "call_1", Name: "f"}}},
		{"tool args", `{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}}]}`, []Event{{Kind: EventToolArgs, Index: 0, Text: `{"a"`}}},
		{"a repeated id does not reopen the call", `{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"arguments":":1}"}}]}}]}`, []Event{{Kind: EventToolArgs, Index: 0, Text: `:1}`}}},
		{"two calls in one chunk", `{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"c2","function":{"name":"g","arguments":"{}"}},{"index":2,"id":"c3","function":{"name":"h"}}]}}]}`,
			[]Event{{Kind: EventToolStart, Index: 1, ID: "c2", Name: "g"}, {Kind: EventToolArgs, Index: 1, Text: "{}"}, {Kind: EventToolStart, Index: 2, ID: "c3", Name: "h"}}},
		{"finish", `{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}`, []Event{{Kind: EventFinish, Finish: "tool_calls"}}},
		{"usage only", `{"choices":[],"usage":{"prompt_tokens":1}}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeChatChunk([]byte(tc.data), nil, open)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := DecodeChatChunk([]byte(`{"choices":[`), nil, open); err == nil {
		t.Fatal("a broken chunk decoded")
	}
	if _, err := DecodeChatChunk([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":99999999}]}}]}`), nil, open); err == nil {
		t.Fatal("an absurd tool index was accepted")
	}
	// A call without an id gets one: every encoder needs it.
	evs, _ := DecodeChatChunk([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":5,"function":{"name":"x"}}]}}]}`), nil, map[int]bool{})
	if len(evs) != 1 || evs[0].ID == "" {
		t.Fatalf("%+v", evs)
	}
}

func TestDecodeChatCompletionRoundTrips(t *testing.T) {
	text := "Hello"
	c := Completion{ID: "chatcmpl-1", Model: "m", Created: 9, Content: &text, FinishReason: "tool_calls", Reasoning: "think",
		ToolCalls: []ToolCall{{ID: "call_1", Type: "function", Function: FunctionCall{Name: "f", Arguments: `{"a":1}`}}}}
	resp, err := c.Response()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeChatCompletion(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Content != text || got.Reasoning != "think" || got.FinishReason != "tool_calls" || !reflect.DeepEqual(got.ToolCalls, c.ToolCalls) {
		t.Fatalf("%+v", got)
	}
	evs := got.Events()
	kinds := make([]EventKind, len(evs))
	for i, e := range evs {
		kinds[i] = e.Kind
	}
	want := []EventKind{EventRole, EventReasoning, EventText, EventToolStart, EventToolArgs, EventFinish, EventUsage}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for _, bad := range []string{`{}`, `{"choices":[]}`, `[`} {
		if _, err := DecodeChatCompletion([]byte(bad)); err == nil {
			t.Fatalf("%s decoded", bad)
		}
	}
	// A call with no arguments gets "{}".
	got, _ = DecodeChatCompletion([]byte(`{"choices":[{"message":{"content":null,"tool_calls":[{"id":"","function":{"name":"f","arguments":""}}]},"finish_reason":"tool_calls"}]}`))
	if got.ToolCalls[0].Function.Arguments != "{}" || got.ToolCalls[0].ID == "" {
		t.Fatalf("%+v", got.ToolCalls)
	}
}
