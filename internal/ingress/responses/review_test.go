package responses_test

// Regression tests from review: each one states the behaviour the
// Responses API reference (or the chat pivot's own rules) requires, and
// failed on the code it was written against.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/internal/ingress/responses"
	"github.com/xroute/xroute/providers"
)

func reviewParse(t *testing.T, body string) *responses.Request {
	t.Helper()
	rq, err := responses.Parse([]byte(body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return rq
}

// A stream that breaks mid-answer ends with response.failed: the items cut
// short must not claim to be complete (a half-written message, or a
// function call whose arguments are half a JSON object, is "incomplete" in
// the reference's vocabulary, and a client that trusts "completed" runs a
// tool with truncated arguments).
func TestReviewFailMarksCutItemsIncomplete(t *testing.T) {
	rq := reviewParse(t, `{"model":"m","input":"hi","stream":true,"tools":[{"type":"function","name":"f"}]}`)
	b := responses.NewBuilder(rq, responses.ToolMap{}, "resp_1", "m", 1, true)
	b.Start()
	b.Feed(providers.Event{Kind: providers.EventText, Text: "Half a sent"}, nil)
	b.Feed(providers.Event{Kind: providers.EventToolStart, Index: 0, ID: "call_1", Name: "f"}, nil)
	b.Feed(providers.Event{Kind: providers.EventToolArgs, Index: 0, Text: `{"city":"Par`}, nil)
	_, object := b.Fail("server_error", "upstream broke", providers.Usage{})
	// The message ended (its output_item.done went out) when the call
	// began: it is complete. The call was cut.
	want := map[string]string{"message": "completed", "function_call": "incomplete"}
	for _, it := range gjson.GetBytes(object, "output").Array() {
		if st := it.Get("status").Str; st != want[it.Get("type").Str] {
			t.Errorf("%s item reported %q in response.failed: %s", it.Get("type").Str, st, it.Raw)
		}
	}
	for _, it := range gjson.ParseBytes(b.Output()).Array() {
		if st := it.Get("status").Str; st != want[it.Get("type").Str] {
			t.Errorf("stored output: %s item is %q", it.Get("type").Str, st)
		}
	}
	// Cut in the middle of a message: that message is incomplete.
	b = responses.NewBuilder(rq, responses.ToolMap{}, "resp_2", "m", 1, true)
	b.Start()
	b.Feed(providers.Event{Kind: providers.EventText, Text: "Half a sent"}, nil)
	_, object = b.Fail("server_error", "upstream broke", providers.Usage{})
	if st := gjson.GetBytes(object, "output.0.status").Str; st != "incomplete" {
		t.Errorf("a message cut mid-way is %q", st)
	}
}

// An answer cut by max_output_tokens is status incomplete, and so is its
// message item (OpenAI, and xroute's own mock of it, write
// "status":"incomplete" on the truncated message).
func TestReviewLengthMarksMessageIncomplete(t *testing.T) {
	rq := reviewParse(t, `{"model":"m","input":"hi","stream":true,"max_output_tokens":16}`)
	b := responses.NewBuilder(rq, responses.ToolMap{}, "resp_1", "m", 1, true)
	b.Start()
	b.Feed(providers.Event{Kind: providers.EventText, Text: "one two three"}, nil)
	b.Feed(providers.Event{Kind: providers.EventFinish, Finish: "length"}, nil)
	events, object := b.Finish(providers.Usage{PromptTokens: 3, CompletionTokens: 16})
	if s := gjson.GetBytes(object, "status").Str; s != "incomplete" {
		t.Fatalf("status %q", s)
	}
	if st := gjson.GetBytes(object, "output.0.status").Str; st != "incomplete" {
		t.Errorf("truncated message item has status %q, want incomplete: %s", st, gjson.GetBytes(object, "output.0").Raw)
	}
	for _, ev := range strings.Split(string(events), "\n\n") {
		if strings.HasPrefix(ev, "event: response.output_item.done") && !strings.Contains(ev, `"status":"incomplete"`) {
			t.Errorf("output_item.done of a truncated message: %s", ev)
		}
	}
}

// Parallel tool calls whose first output is an image: chat requires every
// tool message answering an assistant's tool_calls to follow it directly
// ("An assistant message with 'tool_calls' must be followed by tool
// messages responding to each 'tool_call_id'"); a user message between
// them makes OpenAI-compatible upstreams answer 400. The image must follow
// the whole group of tool messages.
func TestReviewToolOutputsStayContiguous(t *testing.T) {
	rq := reviewParse(t, `{"model":"m","tools":[{"type":"function","name":"view_image"},{"type":"function","name":"shell"}],"input":[
		{"role":"user","content":"look and list"},
		{"type":"function_call","call_id":"call_a","name":"view_image","arguments":"{}"},
		{"type":"function_call","call_id":"call_b","name":"shell","arguments":"{}"},
		{"type":"function_call_output","call_id":"call_a","output":[{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]},
		{"type":"function_call_output","call_id":"call_b","output":"a.txt"}]}`)
	tr, err := rq.Translate(nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []providers.Message = tr.Pivot.Messages
	pending := map[string]bool{}
	for i, m := range msgs {
		switch {
		case m.Role == "assistant" && len(m.ToolCalls) > 0:
			for _, tc := range m.ToolCalls {
				pending[tc.ID] = true
			}
		case m.Role == "tool":
			delete(pending, m.ToolCallID)
		case len(pending) > 0:
			roles := make([]string, len(msgs))
			for j, mm := range msgs {
				roles[j] = mm.Role
			}
			t.Fatalf("message %d (%s) comes before the tool results of %v: roles %v", i, m.Role, pending, roles)
		}
	}
}

// Translate refuses input items the pivot cannot express even when the
// request will be served natively (the handler calls Translate first,
// before routing): a Responses request that a native OpenAI deployment
// serves as it is must not fail on what only the pivot lacks.
func TestReviewTranslateDoesNotRefuseNativeOnlyItems(t *testing.T) {
	for name, item := range map[string]string{
		"web_search_call": `{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"weather"}}`,
		"item_reference":  `{"type":"item_reference","id":"msg_1"}`,
		"file by url":     `{"role":"user","content":[{"type":"input_file","file_url":"https://example.com/a.pdf"}]}`,
		"image by id":     `{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			rq := reviewParse(t, `{"model":"m","input":[{"role":"user","content":"hi"},`+item+`]}`)
			tr, err := rq.Translate(nil)
			if err != nil {
				t.Fatalf("Translate refused a request a native deployment serves: %v", err)
			}
			if !json.Valid(tr.Native) || !strings.Contains(string(tr.Native), `"input"`) {
				t.Fatalf("native body %s", tr.Native)
			}
		})
	}
}
