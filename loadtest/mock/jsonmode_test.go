package mock

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	goopenai "github.com/sashabaranov/go-openai"
)

// chatJSON runs params with the official SDK, streamed (accumulated) or
// not.
func chatJSON(t *testing.T, oc *openai.Client, params openai.ChatCompletionNewParams, stream bool) openai.ChatCompletion {
	t.Helper()
	if !stream {
		cc, err := oc.Chat.Completions.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		return *cc
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	st := oc.Chat.Completions.NewStreaming(context.Background(), params)
	defer st.Close()
	var acc openai.ChatCompletionAccumulator
	deltas := 0
	for st.Next() {
		if !acc.AddChunk(st.Current()) {
			t.Fatal("accumulator rejected a chunk")
		}
		if c := st.Current(); len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			deltas++
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas < 2 {
		t.Fatalf("the JSON text came in %d deltas", deltas)
	}
	return acc.ChatCompletion
}

func TestChatJSONMode(t *testing.T) {
	t.Parallel()
	var sc map[string]any
	if err := json.Unmarshal([]byte(planSchema), &sc); err != nil {
		t.Fatal(err)
	}
	schemaFormat := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "plan", Schema: sc, Strict: openai.Bool(true)},
	}}
	objectFormat := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	for _, stream := range []bool{false, true} {
		t.Run("json_schema/stream="+strconv.FormatBool(stream), func(t *testing.T) {
			_, base := startServer(t, Config{ChunkTokens: 4})
			cc := chatJSON(t, officialClient(base, ""), openai.ChatCompletionNewParams{
				Model: "gpt-4o", ResponseFormat: schemaFormat,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("plan my day")},
			}, stream)
			doc := cc.Choices[0].Message.Content
			checkSchema(t, planSchema, doc)
			var p plan
			decodeStrict(t, doc, &p)
			if cc.Choices[0].FinishReason != "stop" || cc.Usage.CompletionTokens != int64(len(Fragments(doc))) {
				t.Fatalf("finish %q usage %+v", cc.Choices[0].FinishReason, cc.Usage)
			}
		})
		t.Run("json_object/stream="+strconv.FormatBool(stream), func(t *testing.T) {
			_, base := startServer(t, Config{ChunkTokens: 2, CompletionTokens: 5})
			cc := chatJSON(t, officialClient(base, ""), openai.ChatCompletionNewParams{
				Model: "gpt-4o", ResponseFormat: objectFormat,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Answer in json."), openai.UserMessage("hi")},
			}, stream)
			var v map[string]string
			if err := json.Unmarshal([]byte(cc.Choices[0].Message.Content), &v); err != nil || len(strings.Fields(v["text"])) != 5 {
				t.Fatalf("%q: %v", cc.Choices[0].Message.Content, err)
			}
		})
	}

	t.Run("cut by max_completion_tokens", func(t *testing.T) {
		_, base := startServer(t, Config{})
		oc := officialClient(base, "")
		params := openai.ChatCompletionNewParams{
			Model: "gpt-4o", ResponseFormat: schemaFormat,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("plan my day")},
		}
		full := chatJSON(t, oc, params, false).Choices[0].Message.Content
		params.MaxCompletionTokens = openai.Int(5)
		for _, stream := range []bool{false, true} {
			cc := chatJSON(t, oc, params, stream)
			got := cc.Choices[0].Message.Content
			if cc.Choices[0].FinishReason != "length" || !strings.HasPrefix(full, got) || got == full || json.Valid([]byte(got)) {
				t.Fatalf("stream=%v: %q (finish %q), full %q", stream, got, cc.Choices[0].FinishReason, full)
			}
		}
	})

	t.Run("tools win over the format", func(t *testing.T) {
		_, base := startServer(t, Config{})
		cc := chatJSON(t, officialClient(base, ""), openai.ChatCompletionNewParams{
			Model: "gpt-4o", ResponseFormat: schemaFormat, Tools: officialTools(),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("plan my day")},
		}, false)
		if cc.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("%+v", cc.Choices[0])
		}
	})

	t.Run("go-openai", func(t *testing.T) {
		_, base := startServer(t, Config{})
		resp, err := goClient(base, "").CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
			Model:    "gpt-4o",
			Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "plan my day"}},
			ResponseFormat: &goopenai.ChatCompletionResponseFormat{
				Type:       goopenai.ChatCompletionResponseFormatTypeJSONSchema,
				JSONSchema: &goopenai.ChatCompletionResponseFormatJSONSchema{Name: "plan", Schema: json.RawMessage(planSchema), Strict: true},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkSchema(t, planSchema, resp.Choices[0].Message.Content)
	})

	t.Run("validation", func(t *testing.T) {
		_, base := startServer(t, Config{})
		cases := []struct{ name, format, content, wantParam string }{
			{"no json word", `{"type":"json_object"}`, "hello", "messages"},
			{"bad type", `{"type":"yaml"}`, "hello", "response_format.type"},
			{"json_schema without json_schema", `{"type":"json_schema"}`, "hello", "response_format.json_schema"},
			{"json_schema without name", `{"type":"json_schema","json_schema":{"schema":{"type":"object"}}}`, "hello", "response_format.json_schema.name"},
		}
		for _, tc := range cases {
			_, err := officialClient(base, "").Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tc.content)},
			}, option.WithJSONSet("response_format", json.RawMessage(tc.format)))
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != tc.wantParam {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		// "text" is plain text.
		resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","response_format":{"type":"text"},"messages":[{"role":"user","content":"hi"}]}`, nil)
		if body := readAll(t, resp); resp.StatusCode != 200 || strings.Contains(body2text(body), "{") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

// body2text returns the content of a chat completion body.
func body2text(body []byte) string {
	var r goopenai.ChatCompletionResponse
	_ = json.Unmarshal(body, &r)
	if len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Content
}
