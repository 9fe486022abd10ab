package mock

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
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
