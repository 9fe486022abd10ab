package messages

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xgolden "github.com/xroute/xroute/internal/golden"
	"github.com/xroute/xroute/providers"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name (or writes it with -update).
func golden(t *testing.T, name string, got []byte) { t.Helper(); xgolden.Check(t, *update, name, got) }

func indent(t *testing.T, raw []byte) []byte { t.Helper(); return xgolden.Indent(t, raw) }

// Request translation: a Messages request -> the chat pivot and the body
// a native (Anthropic) upstream gets.
func TestGoldenRequests(t *testing.T) {
	for _, name := range []string{"claude_code", "parts", "server_tools"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "req_"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := r.Translate()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			out.WriteString("# pivot (chat completions)\n")
			out.Write(indent(t, tr.PivotBody))
			fmt.Fprintf(&out, "# native_only: %q\n# images: %v\n", tr.NativeOnly, tr.HasImages)
			if !bytes.Equal(tr.Native, body) {
				out.WriteString("# native body (differs from the caller's)\n")
				out.Write(indent(t, tr.Native))
			}
			golden(t, "req_"+name+".golden", out.Bytes())
		})
	}
}

func mustParse(t *testing.T, body string) *Request {
	t.Helper()
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Answer translation: neutral events -> the Messages stream and message.
func TestGoldenAnswers(t *testing.T) {
	u := providers.Usage{PromptTokens: 120, CompletionTokens: 40, CachedTokens: 100, CacheWriteTokens: 10}
	cases := []struct {
		name, req string
		events    []providers.Event
	}{
		{"text_thinking", `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":1024}}`, []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventReasoning, Text: "The user"}, {Kind: providers.EventReasoning, Text: " says hi."},
			{Kind: providers.EventText, Text: "Hello"}, {Kind: providers.EventText, Text: " there!"}, {Kind: providers.EventFinish, Finish: "stop"}, {Kind: providers.EventUsage}}},
		{"reasoning_hidden", `{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventReasoning, Text: "hidden"}, {Kind: providers.EventText, Text: "Hi"}, {Kind: providers.EventFinish, Finish: "stop"}}},
		{"tools", `{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"go"}]}`, []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventText, Text: "Working."},
			{Kind: providers.EventToolStart, Index: 0, ID: "call_a", Name: "Read"}, {Kind: providers.EventToolArgs, Index: 0, Text: `{"file_path":`}, {Kind: providers.EventToolArgs, Index: 0, Text: `"/a"}`},
			{Kind: providers.EventToolStart, Index: 1, ID: "call_b", Name: "Bash"},
			{Kind: providers.EventFinish, Finish: "tool_calls"}}},
		{"max_tokens", `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"long"}]}`, []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventText, Text: "Once upon"}, {Kind: providers.EventFinish, Finish: "length"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.req)
			var out bytes.Buffer
			b := NewBuilder(r, "msg_golden", "pub", 118, true)
			out.Write(b.Start())
			for _, ev := range tc.events {
				out.Write(b.Feed(ev, nil))
			}
			end, object := b.Finish(u)
			out.Write(end)
			out.WriteString("# final message\n")
			out.Write(indent(t, object))
			golden(t, "answer_"+tc.name+".golden", out.Bytes())

			nb := NewBuilder(r, "msg_golden", "pub", 118, false)
			for _, ev := range tc.events {
				if got := nb.Feed(ev, nil); got != nil {
					t.Fatalf("a non-streamed builder emitted %s", got)
				}
			}
			if _, obj2 := nb.Finish(u); !bytes.Equal(object, obj2) {
				t.Fatalf("streamed and non-streamed messages differ:\n%s\n%s", object, obj2)
			}
			for _, ev := range strings.Split(strings.TrimSpace(out.String()[:strings.Index(out.String(), "# final")]), "\n\n") {
				lines := strings.SplitN(ev, "\n", 2)
				name := strings.TrimPrefix(lines[0], "event: ")
				var d struct {
					Type string `json:"type"`
				}
				if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &d); err != nil || d.Type != name {
					t.Fatalf("event %q: %v %q", name, err, d.Type)
				}
			}
		})
	}
}
