package providers

import (
	"encoding/json"
	"errors"
	"io"
	"testing"

	goopenai "github.com/sashabaranov/go-openai"
)

func TestChunkBuilderMatchesOpenAIShape(t *testing.T) {
	b := &ChunkBuilder{ID: "chatcmpl-1", Model: "m", Created: 7}
	chunks := []Chunk{b.Role(), b.Text("Hi"), b.ToolCallStart(0, "call_1", "get"), b.ToolCallArgs(0, `{"a":`), b.ToolCallArgs(0, `1}`), b.Finish("tool_calls"), b.Usage(Usage{PromptTokens: 3, CompletionTokens: 2, CachedTokens: 1})}
	var args string
	for i, c := range chunks {
		var got goopenai.ChatCompletionStreamResponse
		if err := json.Unmarshal(c.Data, &got); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if got.ID != "chatcmpl-1" || got.Object != "chat.completion.chunk" || got.Created != 7 {
			t.Fatalf("chunk %d header: %s", i, c.Data)
		}
		for _, ch := range got.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				args += tc.Function.Arguments
			}
		}
	}
	var first map[string]any
	json.Unmarshal(chunks[2].Data, &first)
	fn := first["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)
	if fn["arguments"] != "" || fn["name"] != "get" {
		t.Fatalf("first tool fragment must carry name and arguments \"\": %s", chunks[2].Data)
	}
	if args != `{"a":1}` {
		t.Fatalf("reassembled args %q", args)
	}
	u := chunks[len(chunks)-1]
	if !u.UsageOnly || u.Usage.PromptTokens != 3 || string(mustField(t, u.Data, "choices")) != "[]" {
		t.Fatalf("usage chunk: %s", u.Data)
	}
}

func mustField(t *testing.T, data []byte, k string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m[k]
}

func TestContentForms(t *testing.T) {
	var r OpenAIRequest
	body := `{"model":"m","stop":"\n","messages":[{"role":"user","content":"plain"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],"tool_choice":{"type":"function","function":{"name":"f"}}}`
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.Messages[0].Content.String() != "plain" || !r.Messages[1].Content.IsParts || r.Messages[2].Content.String() != "" || len(r.Stop) != 1 {
		t.Fatalf("%+v", r)
	}
	mt, b64, ok := DataURL(r.Messages[1].Content.Parts[1].ImageURL.URL)
	if !ok || mt != "image/png" || b64 == "" {
		t.Fatal("data url")
	}
	if mode, name, err := r.ToolChoiceMode(); mode != "function" || name != "f" || err != nil {
		t.Fatalf("tool choice %q %q %v", mode, name, err)
	}
}

func TestTranslatedStreamQueues(t *testing.T) {
	calls := 0
	ts := &TranslatedStream{Next: func() ([]Chunk, error) {
		calls++
		switch calls {
		case 1:
			return nil, nil // an event that yields nothing (ping)
		case 2:
			return []Chunk{{Data: []byte("a")}, {Data: []byte("b")}}, nil
		}
		return []Chunk{{Data: []byte("c")}}, io.EOF
	}}
	var got string
	for {
		c, err := ts.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		got += string(c.Data)
	}
	if got != "abc" {
		t.Fatalf("got %q", got)
	}
}
