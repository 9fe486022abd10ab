package anthropic

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	providertest.Golden(t, *update, name, got)
}

func indent(t *testing.T, raw []byte) []byte { t.Helper(); return providertest.Indent(t, raw) }

// Request translation: OpenAI body -> Messages body.
var requestCases = []struct{ name, body string }{
	{"text", `{"model":"claude","messages":[` +
		`{"role":"system","content":"You are terse."},{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},` +
		`{"role":"user","content":"Hello"},{"role":"assistant","content":"Bonjour"},{"role":"user","content":[{"type":"text","text":"How are you?"},{"type":"text","text":""}]}],` +
		`"temperature":0,"top_p":0.9,"max_tokens":300,"stop":"\n\n","user":"user-42","seed":7,"presence_penalty":0.5,"frequency_penalty":0.5,"logprobs":true,"stream":true,"stream_options":{"include_usage":true}}`},
	{"defaults", `{"model":"claude","messages":[{"role":"user","content":"Hi"}],"temperature":1.7,"max_completion_tokens":null,"stop":["END",""]}`},
	{"tools", `{"model":"claude","max_completion_tokens":1024,` + tools + `,"tool_choice":"required","parallel_tool_calls":false,"messages":[` +
		`{"role":"user","content":"Weather and time in Paris?"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"toolu_b","type":"function","function":{"name":"get_time","arguments":""}}]},` +
		`{"role":"tool","tool_call_id":"toolu_a","content":"18C, sunny"},` +
		`{"role":"tool","tool_call_id":"toolu_b","content":[{"type":"text","text":"12:00"},{"type":"text","text":"CET"}]},` +
		`{"role":"user","content":"Thanks! And tomorrow?"}]}`},
	{"tool_choice_named", `{"model":"claude",` + tools + `,"tool_choice":{"type":"function","function":{"name":"get_time"}},"messages":[{"role":"user","content":"time?"}]}`},
	{"tool_choice_none", `{"model":"claude",` + tools + `,"tool_choice":"none","parallel_tool_calls":false,"messages":[{"role":"user","content":"hi"}]}`},
	{"tool_choice_without_tools", `{"model":"claude","tool_choice":"auto","messages":[{"role":"user","content":"hi"}]}`},
	{"no_parallel_auto", `{"model":"claude","tools":[{"type":"function","function":{"name":"ping"}}],"parallel_tool_calls":false,"messages":[{"role":"user","content":"hi"}]}`},
	{"images", `{"model":"claude","messages":[{"role":"user","content":[{"type":"text","text":"Compare these."},` +
		`{"type":"image_url","image_url":{"url":"` + pngDataURL + `","detail":"high"}},` +
		`{"type":"image_url","image_url":{"url":"https://upload.wikimedia.org/cat.jpg"}}]}]}`},
	{"json_object", `{"model":"claude","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"List 3 colors as JSON."}]}`},
	{"json_schema", `{"model":"claude","response_format":{"type":"json_schema","json_schema":{"name":"colors","strict":true,"schema":{"type":"object","properties":{"colors":{"type":"array","items":{"type":"string"}}},"required":["colors"],"additionalProperties":false}}},"messages":[{"role":"user","content":"List 3 colors."}]}`},
	{"json_schema_with_tools", `{"model":"claude",` + tools + `,"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object","properties":{"t":{"type":"number"}}}}},"messages":[{"role":"system","content":"Be exact."},{"role":"user","content":"Weather?"}]}`},
	{"json_schema_array_root", `{"model":"claude","response_format":{"type":"json_schema","json_schema":{"name":"list","schema":{"type":"array","items":{"type":"integer"}}}},"messages":[{"role":"user","content":"Primes below 10."}]}`},
	{"assistant_prefill_and_merge", `{"model":"claude","messages":[{"role":"user","content":"Part one."},{"role":"user","content":"Part two."},{"role":"assistant","content":[{"type":"text","text":"{"}]}]}`},
}

func TestGoldenRequests(t *testing.T) {
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			stream := strings.Contains(tc.body, `"stream":true`)
			tr, err := translateRequest([]byte(tc.body), "claude-sonnet-4-5", stream)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := json.Marshal(struct {
				JSONTool bool            `json:"json_tool"`
				Body     json.RawMessage `json:"body"`
			}{tr.jsonTool, tr.body})
			golden(t, "request_"+tc.name+".golden", indent(t, out))
		})
	}
}

// Response translation: testdata/response_*.json (Messages answers) ->
// chat.completion bodies and their usage.
func TestGoldenResponses(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/response_*.json", ".json", func(t *testing.T, name string, in []byte) []byte {
		resp, err := translateResponse(in, name == "response_json", "fallback-model", 1700000000)
		if err != nil {
			t.Fatal(err)
		}
		body := normalizeID(t, resp.Body)
		return append(indent(t, body), fmt.Sprintf("usage: %+v\n", resp.Usage)...)
	})
}

func normalizeID(t *testing.T, b []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(m["id"], []byte(`"chatcmpl-`)) {
		t.Fatalf("id %s", m["id"])
	}
	return bytes.Replace(b, m["id"], []byte(`"chatcmpl-golden"`), 1)
}

// Stream translation: recorded Messages streams (testdata/stream_*.sse) ->
// the chunks the adapter passes on.
func TestGoldenStreams(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/stream_*.sse", ".sse", func(t *testing.T, name string, in []byte) []byte {
		tr := newTranslator("claude", bytes.NewReader(in), name == "stream_json", "fallback-model", 1700000000)
		tr.cb.ID = "chatcmpl-golden"
		return providertest.Transcript(t, &providers.TranslatedStream{Next: tr.next})
	})
}
