package mock

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/xroute/xroute/internal/testutil"
)

// ---- helpers ----

// sseEvent is an event of a Responses stream.
type sseEvent struct{ name, data string }

// readEvents returns the events of a Responses SSE body, checking the
// framing: "event: NAME", "data: JSON", a blank line.
func readEvents(t *testing.T, r io.Reader) ([]sseEvent, error) {
	t.Helper()
	var out []sseEvent
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return out, nil
			}
			return out, err
		}
		name, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "event: ")
		if !ok {
			t.Fatalf("want an event line, got %q", line)
		}
		line, err = br.ReadString('\n')
		if err != nil {
			return out, err
		}
		data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
		if !ok {
			t.Fatalf("event %s: want a data line, got %q", name, line)
		}
		if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
			t.Fatalf("event %s not followed by a blank line (%q, %v)", name, blank, err)
		}
		out = append(out, sseEvent{name, data})
	}
}

// checkRequired fails when a field the SDK marks api:"required" is absent
// from the decoded value v, or when a present field has the wrong type; it
// descends into nested objects (not unions).
func checkRequired(t *testing.T, what string, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return
	}
	meta := rv.FieldByName("JSON")
	if !meta.IsValid() {
		return
	}
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if !f.IsExported() || f.Name == "JSON" {
			continue
		}
		mf := meta.FieldByName(f.Name)
		if !mf.IsValid() {
			continue
		}
		field, ok := mf.Interface().(respjson.Field)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if strings.Contains(f.Tag.Get("api"), "required") && field.Raw() == respjson.Omitted {
			t.Errorf("%s: required field %q missing", what, name)
		}
		if raw := field.Raw(); raw != "" && raw != respjson.Null && !field.Valid() {
			t.Errorf("%s.%s: invalid value %s", what, name, raw)
		}
		if f.Type.Kind() == reflect.Struct && field.Valid() && !strings.HasSuffix(f.Type.Name(), "Union") {
			checkRequired(t, what+"."+name, rv.Field(i).Interface())
		}
	}
}

// checkItem checks the required fields of an output item by its type.
func checkItem(t *testing.T, what string, it responses.ResponseOutputItemUnion) {
	t.Helper()
	switch it.Type {
	case "message":
		m := it.AsMessage()
		checkRequired(t, what, m)
		for i, c := range m.Content {
			checkRequired(t, what+".content["+strconv.Itoa(i)+"]", c.AsOutputText())
		}
	case "function_call":
		checkRequired(t, what, it.AsFunctionCall())
	case "reasoning":
		r := it.AsReasoning()
		checkRequired(t, what, r)
		for i, s := range r.Summary {
			checkRequired(t, what+".summary["+strconv.Itoa(i)+"]", s)
		}
	default:
		t.Errorf("%s: unexpected item type %q", what, it.Type)
	}
}

// checkResponse checks the required fields of a response object and its
// items.
func checkResponse(t *testing.T, what string, r *responses.Response) {
	t.Helper()
	checkRequired(t, what, r)
	for i, it := range r.Output {
		checkItem(t, what+".output["+strconv.Itoa(i)+"]", it)
	}
}

// checkEvent decodes a raw event as its SDK type and checks its required
// fields.
func checkEvent(t *testing.T, ev sseEvent) responses.ResponseStreamEventUnion {
	t.Helper()
	var u responses.ResponseStreamEventUnion
	if err := json.Unmarshal([]byte(ev.data), &u); err != nil {
		t.Fatalf("%s: %v", ev.name, err)
	}
	if u.Type != ev.name {
		t.Fatalf("event %q carries type %q", ev.name, u.Type)
	}
	var typed any
	switch u.Type {
	case "response.created":
		typed = u.AsResponseCreated()
	case "response.in_progress":
		typed = u.AsResponseInProgress()
	case "response.completed":
		r := u.AsResponseCompleted()
		checkResponse(t, ev.name, &r.Response)
		typed = r
	case "response.incomplete":
		r := u.AsResponseIncomplete()
		checkResponse(t, ev.name, &r.Response)
		typed = r
	case "response.failed":
		typed = u.AsResponseFailed()
	case "response.output_item.added":
		e := u.AsResponseOutputItemAdded()
		checkItem(t, ev.name+".item", e.Item)
		typed = e
	case "response.output_item.done":
		e := u.AsResponseOutputItemDone()
		checkItem(t, ev.name+".item", e.Item)
		typed = e
	case "response.content_part.added":
		typed = u.AsResponseContentPartAdded()
	case "response.content_part.done":
		typed = u.AsResponseContentPartDone()
	case "response.output_text.delta":
		typed = u.AsResponseOutputTextDelta()
	case "response.output_text.done":
		typed = u.AsResponseOutputTextDone()
	case "response.function_call_arguments.delta":
		typed = u.AsResponseFunctionCallArgumentsDelta()
	case "response.function_call_arguments.done":
		typed = u.AsResponseFunctionCallArgumentsDone()
	case "response.reasoning_summary_part.added":
		typed = u.AsResponseReasoningSummaryPartAdded()
	case "response.reasoning_summary_part.done":
		typed = u.AsResponseReasoningSummaryPartDone()
	case "response.reasoning_summary_text.delta":
		typed = u.AsResponseReasoningSummaryTextDelta()
	case "response.reasoning_summary_text.done":
		typed = u.AsResponseReasoningSummaryTextDone()
	case "error":
		typed = u.AsError()
	default:
		t.Fatalf("unexpected event %q", u.Type)
	}
	checkRequired(t, ev.name, typed)
	return u
}

// collapse replaces each run of an event type by "TYPE+" when it repeats.
func collapse(types []string) []string {
	var out []string
	for i := 0; i < len(types); {
		j := i
		for j < len(types) && types[j] == types[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, types[i]+"+")
		} else {
			out = append(out, types[i])
		}
		i = j
	}
	return out
}

func userInput(text string) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfString: openai.String(text)}
}

func weatherTools() []responses.ToolUnionParam {
	return []responses.ToolUnionParam{
		responses.ToolParamOfFunction("get_weather", weatherParams, false),
		responses.ToolParamOfFunction("get_time", timeParams, false),
	}
}

// ---- non-stream ----

func TestResponsesText(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{CompletionTokens: 12})
	oc := officialClient(base, "")
	cases := []struct {
		name       string
		input      string
		maxOut     int64
		wantWords  int
		wantStatus responses.ResponseStatus
	}{
		{"default length", "hello there mock", 0, 12, "completed"},
		{"tokens directive", "hello there mock #mock:tokens=20", 0, 20, "completed"},
		{"max_output_tokens cuts", "hello there mock #mock:tokens=20", 17, 17, "incomplete"},
		{"max_output_tokens above length", "hello there mock", 100, 12, "completed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			params := responses.ResponseNewParams{
				Model:        "gpt-4.1-mini",
				Instructions: openai.String("be brief"),
				Input:        userInput(tc.input),
				Metadata:     shared.Metadata{"trace": "t1"},
				User:         openai.String("u-1"),
			}
			if tc.maxOut > 0 {
				params.MaxOutputTokens = openai.Int(tc.maxOut)
			}
			var hr *http.Response
			r, err := oc.Responses.New(context.Background(), params, option.WithResponseInto(&hr))
			if err != nil {
				t.Fatal(err)
			}
			checkResponse(t, "response", r)
			if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.Model != "gpt-4.1-mini" || r.Status != tc.wantStatus {
				t.Fatalf("envelope: %s", r.RawJSON())
			}
			if r.Instructions.OfString != "be brief" || r.Metadata["trace"] != "t1" || r.User != "u-1" || !r.ParallelToolCalls ||
				r.JSON.ExtraFields["store"].Raw() != "true" || r.Temperature != 1 || r.TopP != 1 || r.Text.Format.Type != "text" || r.ToolChoice.OfToolChoiceMode != "auto" ||
				len(r.Tools) != 0 || r.Truncation != "disabled" || r.Background || r.PreviousResponseID != "" {
				t.Fatalf("echo: %s", r.RawJSON())
			}
			if len(r.Output) != 1 || r.Output[0].Type != "message" {
				t.Fatalf("output: %s", r.RawJSON())
			}
			msg := r.Output[0].AsMessage()
			wantItem := "completed"
			if tc.wantStatus == "incomplete" {
				wantItem = "incomplete"
				if r.IncompleteDetails.Reason != "max_output_tokens" {
					t.Fatalf("incomplete_details: %s", r.RawJSON())
				}
			} else if r.JSON.IncompleteDetails.Raw() != "null" || r.CompletedAt == 0 {
				t.Fatalf("incomplete_details/completed_at: %s", r.RawJSON())
			}
			if !strings.HasPrefix(msg.ID, "msg_") || msg.Role != "assistant" || string(msg.Status) != wantItem ||
				len(msg.Content) != 1 || msg.Content[0].Type != "output_text" || msg.Content[0].JSON.Annotations.Raw() != "[]" {
				t.Fatalf("message: %s", r.Output[0].RawJSON())
			}
			text := r.OutputText()
			if got := len(strings.Fields(text)); got != tc.wantWords {
				t.Fatalf("%q: %d words, want %d", text, got, tc.wantWords)
			}
			// Input tokens as chat counts them: 3 + (3 + instructions) + (3 + input).
			wantIn := int64(3 + 3 + 2 + 3 + len(strings.Fields(tc.input)))
			u := r.Usage
			if u.InputTokens != wantIn || u.OutputTokens != int64(tc.wantWords) || u.TotalTokens != wantIn+int64(tc.wantWords) ||
				u.OutputTokensDetails.ReasoningTokens != 0 || u.InputTokensDetails.CachedTokens != 0 {
				t.Fatalf("usage %s, want input %d", u.RawJSON(), wantIn)
			}
			if !strings.HasPrefix(hr.Header.Get("x-request-id"), "req_") || hr.Header.Get("openai-processing-ms") == "" ||
				hr.Header.Get("x-ratelimit-remaining-tokens") == "" || hr.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", hr.Header)
			}

			// Chat answers the same text, with the same prompt tokens.
			cp := openai.ChatCompletionNewParams{
				Model:    "gpt-4.1-mini",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage(tc.input)},
			}
			if tc.maxOut > 0 {
				cp.MaxCompletionTokens = openai.Int(tc.maxOut)
			}
			cc, err := oc.Chat.Completions.New(context.Background(), cp)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Choices[0].Message.Content != text || cc.Usage.PromptTokens != wantIn {
				t.Fatalf("chat %q (%d) != responses %q (%d)", cc.Choices[0].Message.Content, cc.Usage.PromptTokens, text, wantIn)
			}
		})
	}
	if s := srv.Stats(); s.Chat != int64(2*len(cases)) || s.Completed != s.Chat || s.Streams != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestResponsesInputItems(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{CompletionTokens: 4})
	cases := []struct {
		name, input string
		wantIn      int
		seedText    string // the user text the answer derives from
	}{
		{"string", `"a b c"`, 3 + 3 + 3, "a b c"},
		{"easy messages", `[{"role":"developer","content":"be nice"},{"role":"user","content":"a b c"}]`, 3 + 5 + 6, "a b c"},
		{"typed message with parts", `[{"type":"message","role":"user","content":[{"type":"input_text","text":"a b"},{"type":"input_image","image_url":"data:image/png;base64,AA==","detail":"low"},{"type":"input_text","text":"c"}]}]`, 3 + 3 + 3, "a b\nc"},
		{"assistant output_text and reasoning", `[{"role":"user","content":"a b c"},{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"x y"}],"encrypted_content":"gAAA"},{"type":"message","role":"assistant","id":"msg_1","status":"completed","content":[{"type":"output_text","text":"d e","annotations":[]}]},{"type":"item_reference","id":"msg_0"}]`, 3 + 6 + 5 + 5 + 3, "a b c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, context.Background(), base+"/responses", `{"model":"m","input":`+tc.input+`}`, nil)
			body := readAll(t, resp)
			var r responses.Response
			if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			want := strings.Join(Answer(Seed(tc.seedText), 4, true), "")
			if r.Usage.InputTokens != int64(tc.wantIn) || r.OutputText() != want {
				t.Fatalf("input tokens %d (want %d), text %q (want %q)", r.Usage.InputTokens, tc.wantIn, r.OutputText(), want)
			}
		})
	}
}

// ---- tools ----

func TestResponsesTools(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		setup     func(p *responses.ResponseNewParams)
		wantNames []string
	}{
		{"parallel", func(p *responses.ResponseNewParams) {}, []string{"get_weather", "get_time"}},
		{"parallel off", func(p *responses.ResponseNewParams) { p.ParallelToolCalls = openai.Bool(false) }, []string{"get_weather"}},
		{"named", func(p *responses.ResponseNewParams) {
			p.ToolChoice = responses.ResponseNewParamsToolChoiceUnion{OfFunctionTool: &responses.ToolChoiceFunctionParam{Name: "get_time"}}
		}, []string{"get_time"}},
		{"allowed tools", func(p *responses.ResponseNewParams) {
			p.ToolChoice = responses.ResponseNewParamsToolChoiceUnion{OfAllowedTools: &responses.ToolChoiceAllowedParam{
				Mode: "required", Tools: []map[string]any{{"type": "function", "name": "get_time"}},
			}}
		}, []string{"get_time"}},
		{"none", func(p *responses.ResponseNewParams) {
			p.ToolChoice = responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: openai.Opt(responses.ToolChoiceOptionsNone)}
		}, nil},
		{"hosted tools only", func(p *responses.ResponseNewParams) {
			p.Tools = []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: "web_search"}}}
		}, nil},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(tc.name+"/stream="+strconv.FormatBool(stream), func(t *testing.T) {
				_, base := startServer(t, Config{ChunkTokens: 3})
				oc := officialClient(base, "")
				params := responses.ResponseNewParams{
					Model: "m",
					Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
						responses.ResponseInputItemParamOfMessage("weather in Paris?", responses.EasyInputMessageRoleUser),
					}},
					Tools: weatherTools(),
				}
				tc.setup(&params)
				var r *responses.Response
				if stream {
					r = streamToResponse(t, oc, params)
				} else {
					var err error
					if r, err = oc.Responses.New(context.Background(), params); err != nil {
						t.Fatal(err)
					}
				}
				checkResponse(t, "response", r)
				if len(r.Tools) != len(params.Tools) {
					t.Fatalf("tools not echoed: %s", r.RawJSON())
				}
				if len(tc.wantNames) == 0 {
					if len(r.Output) != 1 || r.Output[0].Type != "message" || r.OutputText() == "" {
						t.Fatalf("want text: %s", r.RawJSON())
					}
					return
				}
				if len(r.Output) != len(tc.wantNames) || r.Status != "completed" {
					t.Fatalf("output: %s", r.RawJSON())
				}
				next := params.Input.OfInputItemList
				outTokens := int64(0)
				for i, it := range r.Output {
					fc := it.AsFunctionCall()
					if it.Type != "function_call" || fc.Name != tc.wantNames[i] || !strings.HasPrefix(fc.ID, "fc_") ||
						!strings.HasPrefix(fc.CallID, "call_") || fc.Status != "completed" {
						t.Fatalf("call %d: %s", i, it.RawJSON())
					}
					sc := timeParams
					if fc.Name == "get_weather" {
						sc = weatherParams
					}
					checkSchema(t, mustJSON(t, sc), fc.Arguments)
					outTokens += int64(1 + len(Fragments(fc.Arguments)))
					call := fc.ToParam()
					out := responses.ResponseInputItemParamOfFunctionCallOutput(`{"temp":21}`)
					out.OfFunctionCallOutput.CallID = openai.String(fc.CallID)
					next = append(next, responses.ResponseInputItemUnionParam{OfFunctionCall: &call}, out)
				}
				if r.Usage.OutputTokens != outTokens {
					t.Fatalf("usage %s, want %d output tokens", r.Usage.RawJSON(), outTokens)
				}

				// The round trip: after the outputs, the answer is text.
				params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: next}
				r2, err := oc.Responses.New(context.Background(), params)
				if err != nil {
					t.Fatal(err)
				}
				if len(r2.Output) != 1 || r2.Output[0].Type != "message" || r2.OutputText() == "" || r2.Status != "completed" ||
					r2.Usage.InputTokens <= r.Usage.InputTokens {
					t.Fatalf("after the outputs: %s", r2.RawJSON())
				}
			})
		}
	}
}

// streamToResponse streams params with the official SDK, checks the
// events' order and sequence numbers, checks that the deltas add up to the
// done events and returns the final response.
func streamToResponse(t *testing.T, oc *openai.Client, params responses.ResponseNewParams) *responses.Response {
	t.Helper()
	st := oc.Responses.NewStreaming(context.Background(), params)
	defer st.Close()
	var final *responses.Response
	text := map[string]string{}
	args := map[string]string{}
	n := int64(0)
	for st.Next() {
		ev := st.Current()
		if ev.SequenceNumber != n {
			t.Fatalf("event %d (%s) has sequence_number %d", n, ev.Type, ev.SequenceNumber)
		}
		n++
		switch ev.Type {
		case "response.output_text.delta":
			text[ev.ItemID] += ev.Delta
		case "response.output_text.done":
			if ev.Text != text[ev.ItemID] {
				t.Fatalf("text done %q != deltas %q", ev.Text, text[ev.ItemID])
			}
		case "response.function_call_arguments.delta":
			args[ev.ItemID] += ev.Delta
		case "response.function_call_arguments.done":
			if ev.Arguments != args[ev.ItemID] {
				t.Fatalf("arguments done %q != deltas %q", ev.Arguments, args[ev.ItemID])
			}
		case "response.completed", "response.incomplete":
			r := ev.Response
			final = &r
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if final == nil {
		t.Fatal("no final response")
	}
	return final
}

// ---- stream wire ----

func TestResponsesStreamEvents(t *testing.T) {
	t.Parallel()
	msg := []string{"response.output_item.added", "response.content_part.added", "response.output_text.delta+",
		"response.output_text.done", "response.content_part.done", "response.output_item.done"}
	call := []string{"response.output_item.added", "response.function_call_arguments.delta+",
		"response.function_call_arguments.done", "response.output_item.done"}
	reasoning := []string{"response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta+",
		"response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done"}
	join := func(parts ...[]string) []string {
		out := []string{"response.created", "response.in_progress"}
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tools := `,"tools":[{"type":"function","name":"get_weather","parameters":` + mustJSON(t, weatherParams) +
		`},{"type":"function","name":"get_time","parameters":` + mustJSON(t, timeParams) + `}]`
	cases := []struct {
		name       string
		body       string
		want       []string
		wantDeltas int // text deltas, 0 = not checked
		wantStatus string
	}{
		{"text", `"model":"m","input":"tell me"`, join(msg, []string{"response.completed"}), 4, "completed"},
		{"cut by max_output_tokens", `"model":"m","input":"tell me #mock:tokens=40","max_output_tokens":16`, join(msg, []string{"response.incomplete"}), 8, "incomplete"},
		{"tool calls", `"model":"m","input":"weather?"` + tools, join(call, call, []string{"response.completed"}), 0, "completed"},
		{"reasoning with summary", `"model":"gpt-5-mini","input":"think","reasoning":{"effort":"low","summary":"auto"},"include":["reasoning.encrypted_content"]`,
			join(reasoning, msg, []string{"response.completed"}), 4, "completed"},
		{"reasoning without summary", `"model":"o4-mini","input":"think"`,
			join([]string{"response.output_item.added", "response.output_item.done"}, msg, []string{"response.completed"}), 4, "completed"},
		{"reasoning then tool call", `"model":"m","input":"weather?","reasoning":{"effort":"minimal","summary":"concise"},"parallel_tool_calls":false` + tools,
			join(reasoning, call, []string{"response.completed"}), 0, "completed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{CompletionTokens: 7, ChunkTokens: 2})
			resp := post(t, context.Background(), base+"/responses", `{"stream":true,`+tc.body+`}`, map[string]string{"Accept": "application/json"})
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" ||
				resp.Header.Get("x-ratelimit-limit-requests") == "" || !strings.HasPrefix(resp.Header.Get("x-request-id"), "req_") {
				t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
			}
			events, err := readEvents(t, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			var respID string
			text, summary, args := "", "", map[string]string{}
			deltas := 0
			for i, ev := range events {
				if strings.Contains(ev.data, "[DONE]") {
					t.Fatal("a Responses stream has no [DONE]")
				}
				u := checkEvent(t, ev)
				if u.SequenceNumber != int64(i) || !u.JSON.SequenceNumber.Valid() {
					t.Fatalf("event %d (%s): sequence_number %s", i, ev.name, u.JSON.SequenceNumber.Raw())
				}
				types = append(types, ev.name)
				switch ev.name {
				case "response.created", "response.in_progress":
					if u.Response.Status != "in_progress" || len(u.Response.Output) != 0 || u.Response.JSON.Usage.Raw() != "null" {
						t.Fatalf("%s: %s", ev.name, ev.data)
					}
					if respID == "" {
						respID = u.Response.ID
					}
				case "response.output_item.added":
					switch it := u.Item; it.Type {
					case "message":
						if it.Status != "in_progress" || len(it.Content) != 0 {
							t.Fatalf("added: %s", ev.data)
						}
					case "function_call":
						if it.Status != "in_progress" || it.Arguments.OfString != "" || it.Name == "" || it.CallID == "" {
							t.Fatalf("added: %s", ev.data)
						}
					case "reasoning":
						if len(it.Summary) != 0 || it.EncryptedContent != "" {
							t.Fatalf("added: %s", ev.data)
						}
					}
				case "response.content_part.added":
					if u.Part.Type != "output_text" || u.Part.Text != "" {
						t.Fatalf("%s", ev.data)
					}
				case "response.output_text.delta":
					if u.JSON.Logprobs.Raw() != "[]" || u.ContentIndex != 0 {
						t.Fatalf("%s", ev.data)
					}
					text += u.Delta
					deltas++
				case "response.output_text.done":
					if u.Text != text {
						t.Fatalf("done %q != deltas %q", u.Text, text)
					}
				case "response.content_part.done":
					if u.Part.Text != text {
						t.Fatalf("%s", ev.data)
					}
				case "response.reasoning_summary_text.delta":
					summary += u.Delta
				case "response.reasoning_summary_text.done", "response.reasoning_summary_part.done":
					if got := u.Text + u.Part.Text; got != summary {
						t.Fatalf("%s: %q != deltas %q", ev.name, got, summary)
					}
				case "response.function_call_arguments.delta":
					args[u.ItemID] += u.Delta
				case "response.function_call_arguments.done":
					if u.Arguments != args[u.ItemID] || u.Arguments == "" || !strings.Contains(ev.data, `"name":`) {
						t.Fatalf("%s", ev.data)
					}
				case "response.output_item.done":
					if it := u.Item; it.Type != "reasoning" && string(it.Status) != map[bool]string{true: "incomplete", false: "completed"}[tc.wantStatus == "incomplete"] {
						t.Fatalf("done: %s", ev.data)
					}
				case "response.completed", "response.incomplete":
					r := u.Response
					if string(r.Status) != tc.wantStatus || r.ID != respID || r.OutputText() != text || r.Usage.TotalTokens == 0 {
						t.Fatalf("final: %s", ev.data)
					}
					// The same answer as without streaming.
					body := readAll(t, post(t, context.Background(), base+"/responses", `{`+tc.body+`}`, nil))
					var full responses.Response
					if err := json.Unmarshal(body, &full); err != nil {
						t.Fatal(err)
					}
					if full.OutputText() != r.OutputText() || full.Usage.RawJSON() != r.Usage.RawJSON() || len(full.Output) != len(r.Output) {
						t.Fatalf("stream %s\n!= non-stream %s", ev.data, body)
					}
				}
			}
			if got := collapse(types); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			if tc.wantDeltas > 0 && deltas != tc.wantDeltas {
				t.Fatalf("%d text deltas, want %d", deltas, tc.wantDeltas)
			}
			testutil.Eventually(t, "stream completed", func() bool { return srv.Stats().Completed == 2 })
			if s := srv.Stats(); s.Streams != 1 || s.Chat != 2 || s.Canceled != 0 || s.CompletionTokens%2 != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestResponsesStreamSDK(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{ChunkTokens: 2, TokensPerSec: 5000})
	oc := officialClient(base, "")
	params := responses.ResponseNewParams{Model: "m", Input: userInput("stream please"), MaxOutputTokens: openai.Int(16)}
	r := streamToResponse(t, oc, params)
	full, err := oc.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() != full.OutputText() || r.Usage.OutputTokens != 16 || r.Status != "completed" {
		t.Fatalf("stream %s\nnon-stream %s", r.RawJSON(), full.RawJSON())
	}
	testutil.Eventually(t, "completed", func() bool { return srv.Stats().Completed == 2 })
	if s := srv.Stats(); s.Streams != 1 || s.CompletionTokens != 32 || s.PromptTokens != 2*(3+3+2) {
		t.Fatalf("stats %+v", s)
	}
}

// ---- JSON mode ----

func TestResponsesStructuredOutputs(t *testing.T) {
	t.Parallel()
	var sc map[string]any
	if err := json.Unmarshal([]byte(planSchema), &sc); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		t.Run("stream="+strconv.FormatBool(stream), func(t *testing.T) {
			_, base := startServer(t, Config{ChunkTokens: 5})
			oc := officialClient(base, "")
			params := responses.ResponseNewParams{
				Model: "gpt-4o-2024-08-06",
				Input: userInput("plan my day"),
				Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
					OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{Name: "plan", Schema: sc, Strict: openai.Bool(true)},
				}},
			}
			var r *responses.Response
			if stream {
				r = streamToResponse(t, oc, params)
			} else {
				var err error
				if r, err = oc.Responses.New(context.Background(), params); err != nil {
					t.Fatal(err)
				}
			}
			doc := r.OutputText()
			checkSchema(t, planSchema, doc)
			var p plan
			decodeStrict(t, doc, &p)
			if r.Text.Format.Type != "json_schema" || r.Text.Format.Name != "plan" || !r.Text.Format.Strict {
				t.Fatalf("format not echoed: %s", r.RawJSON())
			}
			if r.Usage.OutputTokens != int64(len(Fragments(doc))) {
				t.Fatalf("usage %s for %d pieces", r.Usage.RawJSON(), len(Fragments(doc)))
			}
		})
	}

	t.Run("json_object", func(t *testing.T) {
		_, base := startServer(t, Config{})
		oc := officialClient(base, "")
		params := responses.ResponseNewParams{
			Model: "m", Input: userInput("answer in JSON"),
			Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}},
		}
		r, err := oc.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]string
		if err := json.Unmarshal([]byte(r.OutputText()), &v); err != nil || len(strings.Fields(v["text"])) != DefaultCompletionTokens {
			t.Fatalf("%q: %v", r.OutputText(), err)
		}
		// The word "json" must appear in the input or the instructions.
		params.Input = userInput("answer please")
		_, err = oc.Responses.New(context.Background(), params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "input" {
			t.Fatalf("want a 400 on input, got %v", err)
		}
		params.Instructions = openai.String("Reply with a JSON object.")
		if _, err := oc.Responses.New(context.Background(), params); err != nil {
			t.Fatal(err)
		}
	})
}

// ---- reasoning ----

func TestResponsesReasoning(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		model         string
		reasoning     string // the request's reasoning object, "" = none
		include       bool   // reasoning.encrypted_content
		maxOut        int
		wantReasoning int // reasoning tokens; 0 = no reasoning item
		wantSummary   bool
		wantEffort    string // echoed; "" = null
		wantMessage   bool
	}{
		{"effort and summary and encrypted", "m", `{"effort":"low","summary":"detailed"}`, true, 0, 8, true, "low", true},
		{"generate_summary spelling", "m", `{"effort":"high","generate_summary":"concise"}`, false, 0, 32, true, "high", true},
		{"reasoning model by name", "o3", "", false, 0, 16, false, "medium", true},
		{"effort none", "gpt-5", `{"effort":"none"}`, false, 0, 0, false, "none", true},
		{"no reasoning", "gpt-4o", "", false, 0, 0, false, "", true},
		{"reasoning uses up max_output_tokens", "gpt-5", `{"effort":"high","summary":"auto"}`, false, 20, 20, true, "high", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startServer(t, Config{CompletionTokens: 6})
			body := `{"model":"` + tc.model + `","input":"why is the sky blue?"`
			if tc.reasoning != "" {
				body += `,"reasoning":` + tc.reasoning
			}
			if tc.include {
				body += `,"include":["reasoning.encrypted_content"]`
			}
			if tc.maxOut > 0 {
				body += `,"max_output_tokens":` + strconv.Itoa(tc.maxOut)
			}
			raw := readAll(t, post(t, context.Background(), base+"/responses", body+"}", nil))
			var r responses.Response
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			checkResponse(t, "response", &r)
			if string(r.Reasoning.Effort) != tc.wantEffort || (tc.wantEffort == "" && r.JSON.Reasoning.Raw() != `{"effort":null,"summary":null}`) {
				t.Fatalf("reasoning echo: %s", r.JSON.Reasoning.Raw())
			}
			out := r.Output
			if tc.wantReasoning > 0 {
				if len(out) == 0 || out[0].Type != "reasoning" || !strings.HasPrefix(out[0].ID, "rs_") {
					t.Fatalf("output: %s", raw)
				}
				rs := out[0].AsReasoning()
				if tc.wantSummary != (len(rs.Summary) == 1) {
					t.Fatalf("summary: %s", out[0].RawJSON())
				}
				if tc.wantSummary && (rs.Summary[0].Type != "summary_text" || len(strings.Fields(rs.Summary[0].Text)) != tc.wantReasoning) {
					t.Fatalf("summary: %s", out[0].RawJSON())
				}
				if tc.include {
					if _, err := base64.URLEncoding.DecodeString(rs.EncryptedContent); err != nil || len(rs.EncryptedContent) < 32 {
						t.Fatalf("encrypted_content %q: %v", rs.EncryptedContent, err)
					}
				} else if rs.JSON.EncryptedContent.Raw() != "" {
					t.Fatalf("encrypted_content not asked for: %s", out[0].RawJSON())
				}
				out = out[1:]
			}
			if tc.wantMessage != (len(out) == 1 && out[0].Type == "message") || (!tc.wantMessage && len(out) != 0) {
				t.Fatalf("output: %s", raw)
			}
			wantOut := int64(tc.wantReasoning)
			if tc.wantMessage {
				wantOut += 6
			}
			if r.Usage.OutputTokensDetails.ReasoningTokens != int64(tc.wantReasoning) || r.Usage.OutputTokens != wantOut {
				t.Fatalf("usage %s, want output %d", r.Usage.RawJSON(), wantOut)
			}
			if !tc.wantMessage && (r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens") {
				t.Fatalf("status: %s", raw)
			}
		})
	}
}

// ---- errors ----

func TestResponsesErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		cfg        Config
		params     func(p *responses.ResponseNewParams)
		wantStatus int
		wantCode   string
		wantParam  string
		check      func(t *testing.T, e *openai.Error)
	}{
		{"429 with retry-after", Config{FailRate429: 1, RetryAfter: 1500 * time.Millisecond}, nil, 429, "rate_limit_exceeded", "", func(t *testing.T, e *openai.Error) {
			h := e.Response.Header
			if h.Get("Retry-After") != "2" || h.Get("retry-after-ms") != "1500" || h.Get("x-ratelimit-remaining-requests") != "0" || e.Type != "requests" {
				t.Fatalf("headers %v type %q", h, e.Type)
			}
		}},
		{"directive 429 retry-after", Config{}, func(p *responses.ResponseNewParams) { p.Input = userInput("x #mock:status=429;retry-after=3") }, 429, "rate_limit_exceeded", "", func(t *testing.T, e *openai.Error) {
			if e.Response.Header.Get("Retry-After") != "3" {
				t.Fatalf("headers %v", e.Response.Header)
			}
		}},
		{"quota", Config{}, func(p *responses.ResponseNewParams) { p.Input = userInput("x #mock:quota") }, 429, "insufficient_quota", "", func(t *testing.T, e *openai.Error) {
			if e.Response.Header.Get("x-should-retry") != "false" {
				t.Fatalf("headers %v", e.Response.Header)
			}
		}},
		{"503 by header", Config{}, func(p *responses.ResponseNewParams) {}, 503, "", "", nil},
		{"unknown model", Config{Models: []string{"gpt-a"}}, nil, 404, "model_not_found", "", nil},
		{"previous_response_id", Config{}, func(p *responses.ResponseNewParams) { p.PreviousResponseID = openai.String("resp_gone") }, 400, "previous_response_not_found", "previous_response_id", func(t *testing.T, e *openai.Error) {
			if e.Message != "Previous response with id 'resp_gone' not found." || e.Type != "invalid_request_error" {
				t.Fatalf("%q %q", e.Message, e.Type)
			}
		}},
		{"max_output_tokens below 16", Config{}, func(p *responses.ResponseNewParams) { p.MaxOutputTokens = openai.Int(15) }, 400, "integer_below_min_value", "max_output_tokens", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, tc.cfg)
			params := responses.ResponseNewParams{Model: "m", Input: userInput("hi")}
			if tc.params != nil {
				tc.params(&params)
			}
			var opts []option.RequestOption
			if tc.name == "503 by header" {
				opts = append(opts, option.WithHeader(DirectiveHeader, "status=503"))
			}
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					st := officialClient(base, "").Responses.NewStreaming(context.Background(), params, opts...)
					for st.Next() {
						t.Fatal("an HTTP error must not yield events")
					}
					err = st.Err()
				} else {
					_, err = officialClient(base, "").Responses.New(context.Background(), params, opts...)
				}
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("stream=%v: want *openai.Error, got %T %v", stream, err, err)
				}
				if apiErr.StatusCode != tc.wantStatus || apiErr.Code != tc.wantCode || apiErr.Param != tc.wantParam || apiErr.Message == "" {
					t.Fatalf("stream=%v: got %d code=%q param=%q msg=%q", stream, apiErr.StatusCode, apiErr.Code, apiErr.Param, apiErr.Message)
				}
				if !strings.HasPrefix(apiErr.Response.Header.Get("x-request-id"), "req_") {
					t.Fatalf("no x-request-id: %v", apiErr.Response.Header)
				}
				if tc.check != nil {
					tc.check(t, apiErr)
				}
			}
			if s := srv.Stats(); s.Failures[tc.wantStatus] != 2 || s.Streams != 0 || s.Chat != 2 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestResponsesValidation(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	fn := `{"type":"function","name":"f","parameters":{"type":"object"}}`
	cases := []struct {
		name, body string
		wantStatus int
		wantParam  string // "" = null
		wantCode   string
	}{
		{"missing model", `{"input":"x"}`, 400, "model", "missing_required_parameter"},
		{"missing input", `{"model":"m"}`, 400, "input", "missing_required_parameter"},
		{"stored prompt without input", `{"model":"m","prompt":{"id":"pmpt_1"}}`, 200, "", ""},
		{"input of a bad type", `{"model":"m","input":5}`, 400, "input", "invalid_type"},
		{"empty input", `{"model":"m","input":[]}`, 400, "input", "empty_array"},
		{"bad role", `{"model":"m","input":[{"role":"bot","content":"x"}]}`, 400, "input[0].role", "invalid_value"},
		{"missing role", `{"model":"m","input":[{"content":"x"}]}`, 400, "input[0].role", "missing_required_parameter"},
		{"bad content", `{"model":"m","input":[{"role":"user","content":5}]}`, 400, "input[0].content", "invalid_type"},
		{"output without call_id", `{"model":"m","input":[{"role":"user","content":"x"},{"type":"function_call_output","output":"y"}]}`, 400, "input[1].call_id", "missing_required_parameter"},
		{"unknown item types are accepted", `{"model":"m","input":[{"type":"computer_call_output","call_id":"c","output":{"type":"computer_screenshot","image_url":"u"}},{"role":"user","content":"x"}]}`, 200, "", ""},
		{"chat-style tool", `{"model":"m","input":"x","tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "tools[0].name", "missing_required_parameter"},
		{"tool without type", `{"model":"m","input":"x","tools":[{"name":"f"}]}`, 400, "tools[0].type", "missing_required_parameter"},
		{"unknown named tool", `{"model":"m","input":"x","tools":[` + fn + `],"tool_choice":{"type":"function","name":"g"}}`, 400, "tool_choice", "invalid_value"},
		{"bad tool_choice", `{"model":"m","input":"x","tools":[` + fn + `],"tool_choice":"always"}`, 400, "tool_choice", "invalid_value"},
		{"json_schema without name", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`, 400, "text.format.name", "missing_required_parameter"},
		{"json_schema without schema", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"s"}}}`, 400, "text.format.schema", "missing_required_parameter"},
		{"bad format type", `{"model":"m","input":"x","text":{"format":{"type":"xml"}}}`, 400, "text.format.type", "invalid_value"},
		{"json_object without the word", `{"model":"m","input":"x","text":{"format":{"type":"json_object"}}}`, 400, "input", ""},
		{"bad effort", `{"model":"m","input":"x","reasoning":{"effort":"huge"}}`, 400, "reasoning.effort", "invalid_value"},
		{"bad summary", `{"model":"m","input":"x","reasoning":{"summary":"long"}}`, 400, "reasoning.summary", "invalid_value"},
		{"temperature above 2", `{"model":"m","input":"x","temperature":2.5}`, 400, "temperature", "decimal_above_max_value"},
		{"top_p below 0", `{"model":"m","input":"x","top_p":-1}`, 400, "top_p", "decimal_below_min_value"},
		{"bad truncation", `{"model":"m","input":"x","truncation":"sometimes"}`, 400, "truncation", "invalid_value"},
		{"bad metadata", `{"model":"m","input":"x","metadata":"k"}`, 400, "metadata", "invalid_type"},
		{"bad directive", `{"model":"m","input":"x #mock:status=abc"}`, 400, "input", ""},
		{"unknown fields are accepted", `{"model":"m","input":"x","store":false,"prompt_cache_key":"k","service_tier":"flex","safety_identifier":"s","stream_options":{"include_obfuscation":false},"future_field":{"a":1}}`, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, context.Background(), base+"/responses", tc.body, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tc.wantStatus == 200 {
				var r responses.Response
				if err := json.Unmarshal(body, &r); err != nil || r.Status != "completed" {
					t.Fatalf("%s", body)
				}
				return
			}
			var e struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			want := func(v string) string {
				if v == "" {
					return "null"
				}
				return strconv.Quote(v)
			}
			if string(e.Error["param"]) != want(tc.wantParam) || string(e.Error["code"]) != want(tc.wantCode) ||
				string(e.Error["type"]) != `"invalid_request_error"` || len(e.Error["message"]) < 3 {
				t.Fatalf("body %s", body)
			}
		})
	}
}

// ---- mid-stream faults ----

func TestResponsesMidStream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		input     string
		wantLast  string // the last event; "" = the connection is cut
		sdkErrors bool   // openai-go reports an error
	}{
		{"error event", "hi #mock:stream-error", "error", true},
		{"response.failed", "hi #mock:stream-error=failed", "response.failed", false},
		{"reset", "hi #mock:reset", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{CompletionTokens: 30})
			resp := post(t, context.Background(), base+"/responses", `{"model":"m","stream":true,"input":"`+tc.input+`"}`, nil)
			events, err := readEvents(t, resp.Body)
			resp.Body.Close()
			if tc.wantLast == "" {
				if err == nil || len(events) != respEventsBeforeFault {
					t.Fatalf("a cut stream: %d events, err %v", len(events), err)
				}
			} else {
				if err != nil || len(events) != respEventsBeforeFault+1 {
					t.Fatalf("%d events, err %v", len(events), err)
				}
				last := events[len(events)-1]
				if last.name != tc.wantLast || events[len(events)-2].name != "response.output_text.delta" {
					t.Fatalf("events end with %s: %s", last.name, last.data)
				}
				u := checkEvent(t, last)
				if u.SequenceNumber != respEventsBeforeFault {
					t.Fatalf("sequence_number %d", u.SequenceNumber)
				}
				switch last.name {
				case "error":
					e := u.AsError()
					var nested struct {
						Error struct{ Type, Code, Message string }
					}
					_ = json.Unmarshal([]byte(last.data), &nested)
					if e.Code != "server_error" || e.Message == "" || e.JSON.Param.Raw() != "null" ||
						nested.Error.Type != "server_error" || nested.Error.Message != e.Message {
						t.Fatalf("error event %s", last.data)
					}
				case "response.failed":
					r := u.AsResponseFailed().Response
					if r.Status != "failed" || r.Error.Code != "server_error" || r.Error.Message == "" {
						t.Fatalf("failed event %s", last.data)
					}
				}
			}

			// The official SDK.
			st := officialClient(base, "").Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "m", Input: userInput(tc.input)})
			var types []string
			for st.Next() {
				types = append(types, st.Current().Type)
			}
			st.Close()
			if tc.sdkErrors != (st.Err() != nil) {
				t.Fatalf("openai-go: err %v after %v", st.Err(), types)
			}
			if tc.wantLast == "response.failed" && types[len(types)-1] != "response.failed" {
				t.Fatalf("openai-go: %v", types)
			}
			testutil.Eventually(t, "handlers done", func() bool { return srv.Stats().Active == 0 })
			s := srv.Stats()
			if s.Completed != 0 || s.Streams != 2 || s.CompletionTokens != 2 {
				t.Fatalf("stats %+v", s)
			}
			if (tc.wantLast == "") != (s.Resets == 2) {
				t.Fatalf("resets: %+v", s)
			}
		})
	}

	t.Run("non-stream reset", func(t *testing.T) {
		_, base := startServer(t, Config{})
		_, err := officialClient(base, "").Responses.New(context.Background(), responses.ResponseNewParams{Model: "m", Input: userInput("#mock:reset")})
		if err == nil {
			t.Fatal("want a connection error")
		}
	})
}

func TestResponsesClientCancel(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{TokensPerSec: 50})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := officialClient(base, "").Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "m", Input: userInput("#mock:tokens=100000")})
	for st.Next() {
		if st.Current().Type == "response.output_text.delta" {
			cancel()
		}
	}
	st.Close()
	testutil.Eventually(t, "Canceled", func() bool { return srv.Stats().Canceled == 1 })
	testutil.Eventually(t, "handler exit", func() bool { return srv.Stats().Active == 0 })
	if s := srv.Stats(); s.Completed != 0 || s.CompletionTokens == 0 || s.CompletionTokens > 1000 {
		t.Fatalf("stats %+v", s)
	}
}

// ExampleServer_responses shows the Responses API of the mock with the
// official SDK.
func ExampleServer_responses() {
	srv := httptest.NewServer(New(Config{CompletionTokens: 5}))
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("sk-any"))
	r, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
		Model:     "gpt-5-mini",
		Input:     responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")},
		Reasoning: shared.ReasoningParam{Effort: shared.ReasoningEffortMinimal},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Status, r.Output[0].Type, r.Output[1].Type, r.Usage.OutputTokensDetails.ReasoningTokens, r.Usage.OutputTokens)
	// Output: completed reasoning message 4 9
}
