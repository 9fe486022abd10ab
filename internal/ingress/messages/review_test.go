package messages

// Regression tests from review: each shows a defect of the Messages
// ingress that is fixed now.

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

func reviewTranslate(t *testing.T, body string) *Translation {
	t.Helper()
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.Translate()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// output_config.effort takes low, medium, high, xhigh and max (the SDK's
// OutputConfigEffort). The pivot copies it verbatim into reasoning_effort,
// so "max" reaches OpenAI, which accepts only none/minimal/low/medium/high
// (and xhigh on a few models): every gpt-5 / o-series request of a client
// at effort max is a 400 from the upstream.
func TestReviewEffortMaxMapsToAnOpenAIEffort(t *testing.T) {
	for _, effort := range []string{"max"} {
		t.Run(effort, func(t *testing.T) {
			tr := reviewTranslate(t, `{"model":"m","max_tokens":32000,"thinking":{"type":"adaptive"},"output_config":{"effort":"`+effort+`"},
				"messages":[{"role":"user","content":"hi"}]}`)
			switch got := tr.Pivot.ReasoningEffort; got {
			case "minimal", "low", "medium", "high":
			default:
				t.Fatalf("reasoning_effort %q: not a value OpenAI's chat API accepts", got)
			}
		})
	}
}

// A tool_result may come without content, or with "" or [] (a command with
// no output; the SDKs' NewToolResultBlock(id, "", false)). The pivot's tool
// message then has "content": null, which OpenAI's chat API refuses for a
// tool message (content is required: a string or an array of parts).
func TestReviewEmptyToolResultHasStringContent(t *testing.T) {
	for name, result := range map[string]string{
		"absent":    `{"type":"tool_result","tool_use_id":"toolu_1"}`,
		"empty":     `{"type":"tool_result","tool_use_id":"toolu_1","content":""}`,
		"no blocks": `{"type":"tool_result","tool_use_id":"toolu_1","content":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			tr := reviewTranslate(t, `{"model":"m","max_tokens":64,"messages":[
				{"role":"user","content":"run it"},
				{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"true"}}]},
				{"role":"user","content":[`+result+`]}]}`)
			c := gjson.GetBytes(tr.PivotBody, `messages.#(role=="tool").content`)
			if c.Type != gjson.String {
				t.Fatalf("tool message content is %s (%s), want a string", c.Type, c.Raw)
			}
		})
	}
}

// Claude Code's Read tool answers a PDF with a document block inside the
// tool_result. The translation keeps only text and images of a tool result
// and drops the document silently: the model is told the tool returned
// nothing (and the request is not marked native-only either).
func TestReviewDocumentInToolResultIsNotDroppedSilently(t *testing.T) {
	const pdf = "JVBERi0xLjQKJcfsj6IK"
	tr := reviewTranslate(t, `{"model":"m","max_tokens":64,"messages":[
		{"role":"user","content":"read the pdf"},
		{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"/a.pdf"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[
			{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"`+pdf+`"}}]}]}]}`)
	if tr.NativeOnly == "" && !bytes.Contains(tr.PivotBody, []byte(pdf)) {
		t.Fatalf("the PDF is neither carried nor refused: %s", tr.PivotBody)
	}
}

// Some OpenAI-compatible servers (Ollama, older vLLM) end a tool-calling
// answer with finish_reason "stop". The message then holds tool_use blocks
// with stop_reason end_turn; Anthropic clients and agent loops run tools
// only on stop_reason "tool_use".
func TestReviewStopReasonIsToolUseWhenTheAnswerEndsWithToolUse(t *testing.T) {
	r, err := Parse([]byte(`{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"go"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(r, "msg_x", "m", 5, false)
	for _, ev := range []providers.Event{
		{Kind: providers.EventRole},
		{Kind: providers.EventToolStart, Index: 0, ID: "call_1", Name: "Read"},
		{Kind: providers.EventToolArgs, Index: 0, Text: `{"file_path":"/a"}`},
		{Kind: providers.EventFinish, Finish: "stop"},
	} {
		b.Feed(ev, nil)
	}
	_, obj := b.Finish(providers.Usage{PromptTokens: 5, CompletionTokens: 3})
	if got := gjson.GetBytes(obj, "stop_reason").Str; got != "tool_use" {
		t.Fatalf("stop_reason %q with a tool_use block: %s", got, obj)
	}
}

// Claude Code asks for thinking {"type":"adaptive","display":"omitted"}:
// thinking blocks with their signature but no text. Translated, the
// provider's reasoning is streamed as thinking text anyway.
func TestReviewThinkingDisplayOmittedSendsNoThinkingText(t *testing.T) {
	r, err := Parse([]byte(`{"model":"m","max_tokens":4096,"thinking":{"type":"adaptive","display":"omitted"},"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(r, "msg_x", "m", 5, true)
	var out []byte
	out = append(out, b.Start()...)
	for _, ev := range []providers.Event{
		{Kind: providers.EventRole}, {Kind: providers.EventReasoning, Text: "secret chain of thought"},
		{Kind: providers.EventText, Text: "Hello"}, {Kind: providers.EventFinish, Finish: "stop"},
	} {
		out = append(out, b.Feed(ev, nil)...)
	}
	end, obj := b.Finish(providers.Usage{PromptTokens: 5, CompletionTokens: 3})
	out = append(out, end...)
	if strings.Contains(string(out), "secret chain of thought") || strings.Contains(string(obj), "secret chain of thought") {
		t.Fatalf("display omitted, yet the thinking text was sent:\n%s", out)
	}
}
