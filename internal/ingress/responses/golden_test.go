package responses

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	xgolden "github.com/xroute/xroute/internal/golden"
	"github.com/xroute/xroute/providers"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name (or writes it with -update).
func golden(t *testing.T, name string, got []byte) { t.Helper(); xgolden.Check(t, *update, name, got) }

func indent(t *testing.T, raw []byte) []byte { t.Helper(); return xgolden.Indent(t, raw) }

// Request translation: a Responses request -> the chat pivot, the native
// body and what routing must know.
func TestGoldenRequests(t *testing.T) {
	for _, name := range []string{"codex", "structured", "parts", "previous"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "req_"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			var history []Item
			if h, err := os.ReadFile(filepath.Join("testdata", "history_"+name+".json")); err == nil {
				var turns [][2]json.RawMessage
				if err := json.Unmarshal(h, &turns); err != nil {
					t.Fatal(err)
				}
				var raw [][2][]byte
				for _, tt := range turns {
					raw = append(raw, [2][]byte{tt[0], tt[1]})
				}
				if history, err = History(raw); err != nil {
					t.Fatal(err)
				}
			}
			tr, err := r.Translate(history)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			out.WriteString("# pivot (chat completions)\n")
			out.Write(indent(t, tr.PivotBody))
			fmt.Fprintf(&out, "# native_only: %q\n# dropped: %q\n# images: %v\n# history items: %d\n", tr.NativeOnly, tr.Dropped, tr.HasImages, tr.History)
			out.WriteString("# tools (pivot name -> caller's)\n")
			names := make([]string, 0, len(tr.Tools))
			for n := range tr.Tools {
				names = append(names, n)
			}
			sortStrings(names)
			for _, n := range names {
				fmt.Fprintf(&out, "%s -> %+v\n", n, tr.Tools[n])
			}
			if !bytes.Equal(tr.Native, body) {
				out.WriteString("# native body (differs from the caller's)\n")
				out.Write(indent(t, tr.Native))
			}
			golden(t, "req_"+name+".golden", out.Bytes())
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// counter makes a Builder's ids deterministic.
func counter() func(string) string {
	n := 0
	return func(prefix string) string { n++; return prefix + strconv.Itoa(n) }
}

func mustParse(t *testing.T, body string) *Request {
	t.Helper()
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Answer translation: neutral events -> the Responses stream and the
// final response object.
func TestGoldenAnswers(t *testing.T) {
	u := providers.Usage{PromptTokens: 120, CompletionTokens: 40, CachedTokens: 100, ReasoningTokens: 12}
	cases := []struct {
		name   string
		req    string
		tools  ToolMap
		events []providers.Event
		fail   bool
	}{
		{name: "text_reasoning", req: `{"model":"m","input":"hi","reasoning":{"effort":"low","summary":"auto"}}`, events: []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventReasoning, Text: "The user"}, {Kind: providers.EventReasoning, Text: " says hi."},
			{Kind: providers.EventText, Text: "Hello"}, {Kind: providers.EventText, Text: " there!"}, {Kind: providers.EventFinish, Finish: "stop"}, {Kind: providers.EventUsage}}},
		{name: "tools", req: `{"model":"m","input":"go","tools":[{"type":"function","name":"f","parameters":{}}]}`,
			tools: ToolMap{"f": {Name: "f"}, "ns__g": {Name: "g", Namespace: "ns"}, "apply_patch": {Name: "apply_patch", Custom: true}},
			events: []providers.Event{
				{Kind: providers.EventRole}, {Kind: providers.EventText, Text: "Working."},
				{Kind: providers.EventToolStart, Index: 0, ID: "call_a", Name: "f"}, {Kind: providers.EventToolArgs, Index: 0, Text: `{"x":`}, {Kind: providers.EventToolArgs, Index: 0, Text: `1}`},
				{Kind: providers.EventToolStart, Index: 1, ID: "call_b", Name: "ns__g"},
				{Kind: providers.EventToolStart, Index: 2, ID: "call_c", Name: "apply_patch"}, {Kind: providers.EventToolArgs, Index: 2, Text: `{"input":"*** Begin Patch\n*** End Patch"}`},
				{Kind: providers.EventFinish, Finish: "tool_calls"}, {Kind: providers.EventUsage}}},
		{name: "max_tokens", req: `{"model":"m","input":"long","max_output_tokens":16}`, events: []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventText, Text: "Once upon"}, {Kind: providers.EventFinish, Finish: "length"}}},
		{name: "refusal", req: `{"model":"m","input":"bad"}`, events: []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventRefusal, Text: "I can't help with that."}, {Kind: providers.EventFinish, Finish: "stop"}}},
		{name: "broken", req: `{"model":"m","input":"hi"}`, fail: true, events: []providers.Event{
			{Kind: providers.EventRole}, {Kind: providers.EventText, Text: "Hel"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.req)
			var out bytes.Buffer
			b := NewBuilder(r, tc.tools, "resp_golden", "pub", 1700000000, true)
			b.newID = counter()
			out.Write(b.Start())
			for _, ev := range tc.events {
				out.Write(b.Feed(ev, nil))
			}
			var object []byte
			var end []byte
			if tc.fail {
				end, object = b.Fail("server_error", "The upstream stream was interrupted.", providers.Usage{PromptTokens: 5, CompletionTokens: 1})
			} else {
				end, object = b.Finish(u)
			}
			out.Write(end)
			out.WriteString("# final object\n")
			out.Write(indent(t, object))
			golden(t, "answer_"+tc.name+".golden", out.Bytes())

			// Not streamed, the same events give the same object.
			nb := NewBuilder(r, tc.tools, "resp_golden", "pub", 1700000000, false)
			nb.newID = counter()
			for _, ev := range tc.events {
				if got := nb.Feed(ev, nil); got != nil {
					t.Fatalf("a non-streamed builder emitted %s", got)
				}
			}
			var obj2 []byte
			if tc.fail {
				_, obj2 = nb.Fail("server_error", "The upstream stream was interrupted.", providers.Usage{PromptTokens: 5, CompletionTokens: 1})
			} else {
				_, obj2 = nb.Finish(u)
			}
			if !bytes.Equal(object, obj2) {
				t.Fatalf("streamed and non-streamed objects differ:\n%s\n%s", object, obj2)
			}
			checkStream(t, out.String())
		})
	}
}

// checkStream: every event's data is JSON whose type matches the event
// name, and sequence numbers count from 0.
func checkStream(t *testing.T, s string) {
	t.Helper()
	s = s[:strings.Index(s, "# final object")]
	seq := 0
	for _, ev := range strings.Split(strings.TrimSpace(s), "\n\n") {
		lines := strings.SplitN(ev, "\n", 2)
		name, _ := strings.CutPrefix(lines[0], "event: ")
		data, _ := strings.CutPrefix(lines[1], "data: ")
		var d struct {
			Type string `json:"type"`
			Seq  int    `json:"sequence_number"`
		}
		if err := json.Unmarshal([]byte(data), &d); err != nil || d.Type != name || d.Seq != seq {
			t.Fatalf("event %q: %v type %q seq %d (want %d)", name, err, d.Type, d.Seq, seq)
		}
		seq++
	}
}
