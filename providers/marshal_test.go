package providers

import (
	"bytes"
	stdjson "encoding/json"
	"testing"
)

// FuzzMarshalRequestMatchesStd holds MarshalRequest to encoding/json's
// Marshal, byte for byte, over requests built from the fuzzer's strings:
// every kind of content, tool calls, and the fields after the messages.
func FuzzMarshalRequestMatchesStd(f *testing.F) {
	f.Add("gpt-4o", "plain text", "name", "call_1", `{"a":1}`, uint8(0))
	f.Add("m\u2028<&>", "<b>\"q\"\\ \x00\x08\x0c\n\r\t\x1f\x7f é \u2029 \xff\xfe", "", "", "", uint8(0xff))
	f.Add("", "", "", "", "", uint8(0x10))
	f.Fuzz(func(t *testing.T, model, text, name, id, args string, shape uint8) {
		t.Parallel()
		r := &OpenAIRequest{Model: model}
		if shape&1 != 0 {
			temp := 0.5
			r.Temperature, r.User, r.Stream = &temp, name, true
			r.Tools = []Tool{{Type: "function", Function: Function{Name: name, Description: text, Parameters: stdjson.RawMessage(`{"type":"object"}`)}}}
		}
		switch shape >> 1 & 3 {
		case 0:
			r.Messages = nil
		case 1:
			r.Messages = []Message{}
		default:
			r.Messages = []Message{
				{Role: "system", Content: Content{Text: text}},
				{Role: "user", Name: name, Content: Content{IsParts: true, Parts: []ContentPart{{Type: "text", Text: text}, {Type: "image_url", ImageURL: &ImageURL{URL: args, Detail: name}}}}},
				{Role: "assistant", Content: Content{Text: text, Explicit: shape&8 != 0}, ToolCalls: []ToolCall{{ID: id, Type: "function", Function: FunctionCall{Name: name, Arguments: args}}, {ID: text}}},
				{Role: "tool", ToolCallID: id, Content: Content{Explicit: shape&16 != 0}},
				{Role: "user", Content: Content{IsParts: shape&32 != 0}},
				{Role: "assistant", Content: Content{}, ToolCalls: []ToolCall{}},
			}
		}
		want, werr := stdjson.Marshal(r)
		got, gerr := MarshalRequest(r)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("errors differ: encoding/json %v, MarshalRequest %v", werr, gerr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("MarshalRequest differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	})
}
