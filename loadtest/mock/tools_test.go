package mock

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	openai "github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
)

var weatherParams = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"city":  map[string]any{"type": "string"},
		"unit":  map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
		"days":  map[string]any{"type": "integer"},
		"tags":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"extra": map[string]any{"type": []string{"boolean", "null"}},
	},
	"required": []string{"city"},
}

var timeParams = map[string]any{
	"type":       "object",
	"properties": map[string]any{"zone": map[string]any{"type": "string"}},
}

func officialTools() []openai.ChatCompletionToolUnionParam {
	return []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Parameters: weatherParams}),
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_time", Parameters: timeParams}),
	}
}

func TestToolCallsOfficial(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		setup     func(p *openai.ChatCompletionNewParams)
		wantNames []string
	}{
		{"parallel", func(p *openai.ChatCompletionNewParams) {}, []string{"get_weather", "get_time"}},
		{"parallel off", func(p *openai.ChatCompletionNewParams) { p.ParallelToolCalls = openai.Bool(false) }, []string{"get_weather"}},
		{"named", func(p *openai.ChatCompletionNewParams) {
			p.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"})
		}, []string{"get_time"}},
		{"none", func(p *openai.ChatCompletionNewParams) {
			p.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
		}, nil},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(tc.name+"/stream="+strconv.FormatBool(stream), func(t *testing.T) {
				_, base := startServer(t, Config{ChunkTokens: 2})
				oc := officialClient(base, "")
				params := openai.ChatCompletionNewParams{
					Model:    "m",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris?")},
					Tools:    officialTools(),
				}
				tc.setup(&params)
				var cc openai.ChatCompletion
				if stream {
					st := oc.Chat.Completions.NewStreaming(context.Background(), params)
					var acc openai.ChatCompletionAccumulator
					finished := 0
					for st.Next() {
						if !acc.AddChunk(st.Current()) {
							t.Fatal("accumulator rejected a chunk")
						}
						if _, ok := acc.JustFinishedToolCall(); ok {
							finished++
						}
					}
					if err := st.Err(); err != nil {
						t.Fatal(err)
					}
					if finished != len(tc.wantNames) {
						t.Fatalf("%d finished tool calls, want %d", finished, len(tc.wantNames))
					}
					cc = acc.ChatCompletion
				} else {
					r, err := oc.Chat.Completions.New(context.Background(), params)
					if err != nil {
						t.Fatal(err)
					}
					cc = *r
				}
				msg := cc.Choices[0].Message
				if len(tc.wantNames) == 0 {
					if len(msg.ToolCalls) != 0 || msg.Content == "" || cc.Choices[0].FinishReason != "stop" {
						t.Fatalf("want text, got %+v", cc.Choices[0])
					}
					return
				}
				if cc.Choices[0].FinishReason != "tool_calls" || msg.Content != "" || len(msg.ToolCalls) != len(tc.wantNames) {
					t.Fatalf("got %+v", cc.Choices[0])
				}
				for i, call := range msg.ToolCalls {
					if call.Function.Name != tc.wantNames[i] || !strings.HasPrefix(call.ID, "call_") || call.Type != "function" {
						t.Fatalf("call %d: %+v", i, call)
					}
					var args map[string]any
					if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil {
						t.Fatalf("arguments %q: %v", call.Function.Arguments, err)
					}
					if call.Function.Name == "get_weather" {
						if _, ok := args["city"].(string); !ok {
							t.Fatalf("args %v", args)
						}
						if u := args["unit"]; u != "celsius" && u != "fahrenheit" {
							t.Fatalf("unit %v", u)
						}
						if _, ok := args["days"].(float64); !ok {
							t.Fatalf("days %v", args)
						}
						if _, ok := args["extra"].(bool); !ok {
							t.Fatalf("extra %v", args)
						}
					}
				}
				if cc.Usage.CompletionTokens == 0 && !stream {
					t.Fatalf("usage %+v", cc.Usage)
				}

				// Answer the calls: the reply is text.
				params.Messages = append(params.Messages, msg.ToParam())
				for _, call := range msg.ToolCalls {
					params.Messages = append(params.Messages, openai.ToolMessage(`{"temp":21}`, call.ID))
				}
				r2, err := oc.Chat.Completions.New(context.Background(), params)
				if err != nil {
					t.Fatal(err)
				}
				if len(r2.Choices[0].Message.ToolCalls) != 0 || r2.Choices[0].Message.Content == "" || r2.Choices[0].FinishReason != "stop" {
					t.Fatalf("after tool result: %+v", r2.Choices[0])
				}
			})
		}
	}
}

func TestToolCallStreamWire(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	body := mustJSON(t, map[string]any{
		"model": "m", "stream": true,
		"messages": []any{map[string]any{"role": "user", "content": "go"}},
		"tools": []any{
			map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": weatherParams}},
			map[string]any{"type": "function", "function": map[string]any{"name": "get_time", "parameters": timeParams}},
		},
	})
	resp := post(t, context.Background(), base+"/chat/completions", body, nil)
	defer resp.Body.Close()
	events, err := readSSE(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	type fragment struct {
		Index    *int    `json:"index"`
		ID       *string `json:"id"`
		Type     *string `json:"type"`
		Function struct {
			Name      *string `json:"name"`
			Arguments *string `json:"arguments"`
		} `json:"function"`
	}
	seen := map[int]bool{}
	args := map[int]string{}
	var ids []string
	for _, ev := range events[:len(events)-1] {
		var c struct {
			Choices []struct {
				Delta struct {
					ToolCalls []fragment `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatal(err)
		}
		for _, f := range c.Choices[0].Delta.ToolCalls {
			if f.Index == nil || f.Function.Arguments == nil {
				t.Fatalf("fragment without index/arguments: %s", ev)
			}
			if !seen[*f.Index] {
				seen[*f.Index] = true
				if f.ID == nil || f.Type == nil || *f.Type != "function" || f.Function.Name == nil || *f.Function.Arguments != "" {
					t.Fatalf("first fragment: %s", ev)
				}
				ids = append(ids, *f.ID)
				if *f.Index != len(ids)-1 {
					t.Fatalf("index %d out of order", *f.Index)
				}
				continue
			}
			if f.ID != nil || f.Type != nil || f.Function.Name != nil {
				t.Fatalf("later fragment carries more than index+arguments: %s", ev)
			}
			args[*f.Index] += *f.Function.Arguments
		}
	}
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("ids %v", ids)
	}
	for i := range 2 {
		if !json.Valid([]byte(args[i])) {
			t.Fatalf("args %d: %q", i, args[i])
		}
	}
}

func TestToolCallsGoOpenAI(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	params, _ := json.Marshal(weatherParams)
	req := goopenai.ChatCompletionRequest{
		Model:    "m",
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "weather"}},
		Tools: []goopenai.Tool{{Type: goopenai.ToolTypeFunction, Function: &goopenai.FunctionDefinition{
			Name: "get_weather", Parameters: json.RawMessage(params),
		}}},
	}
	gc := goClient(base, "")
	resp, err := gc.CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if len(calls) != 1 || resp.Choices[0].FinishReason != goopenai.FinishReasonToolCalls {
		t.Fatalf("%+v", resp.Choices[0])
	}
	// Streamed: reassemble by index, same call as the non-stream one.
	req.Stream = true
	st, err := gc.CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var id, name, args string
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range r.Choices[0].Delta.ToolCalls {
			if tc.Index == nil || *tc.Index != 0 {
				t.Fatalf("index %v", tc.Index)
			}
			id += tc.ID
			name += tc.Function.Name
			args += tc.Function.Arguments
		}
	}
	if id != calls[0].ID || name != "get_weather" || args != calls[0].Function.Arguments {
		t.Fatalf("stream %q %q %q vs %+v", id, name, args, calls[0])
	}
}
