package bedrock

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestRequestTranslationGolden: testdata/request_*.json (OpenAI bodies) are
// translated to testdata/request_*.golden (Converse bodies).
func TestRequestTranslationGolden(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/request_*.json", ".json", func(t *testing.T, _ string, body []byte) []byte {
		or, err := providers.DecodeOpenAIRequest(body)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := translateRequest(or)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.MarshalIndent(struct {
			JSONTool string          `json:"_json_tool,omitempty"`
			Request  converseRequest `json:"request"`
		}{tr.jsonTool, tr.req}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(out, '\n')
	})
}

// recordedEvent is one event-stream message in a readable form: its
// headers and its JSON payload.
type recordedEvent struct {
	Headers map[string]string `json:"headers"`
	Payload json.RawMessage   `json:"payload"`
}

// encodeEvents turns testdata/stream_*.events.json into the binary
// event-stream an upstream sends.
func encodeEvents(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []recordedEvent
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, ev := range events {
		var msg eventstream.Message
		for _, k := range []string{":event-type", ":exception-type", ":error-code", ":error-message", ":content-type", ":message-type"} {
			if v, ok := ev.Headers[k]; ok {
				msg.Headers.Set(k, eventstream.StringValue(v))
			}
		}
		if len(ev.Payload) > 0 {
			var c bytes.Buffer
			if err := json.Compact(&c, ev.Payload); err != nil {
				t.Fatal(err)
			}
			msg.Payload = c.Bytes()
		}
		if err := enc.Encode(&buf, msg); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

var chunkID = regexp.MustCompile(`"id":"chatcmpl-[0-9A-Za-z]+"`)

// TestStreamTranslationGolden: the recorded Converse streams in
// testdata/stream_*.events.json are translated to the OpenAI chunks in
// testdata/stream_*.golden (one chunk per line, then the end).
func TestStreamTranslationGolden(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/stream_*.events.json", ".events.json", func(t *testing.T, name string, _ []byte) []byte {
		jsonTool := ""
		if name == "stream_json_object" {
			jsonTool = jsonToolName
		}
		out := providertest.Transcript(t, recordedStream(encodeEvents(t, filepath.Join("testdata", name+".events.json")), jsonTool))
		return chunkID.ReplaceAll(out, []byte(`"id":"chatcmpl-ID"`))
	})
}

// recordedStream reads a recorded event stream through the adapter's
// stream reader and translator, as ChatStream would.
func recordedStream(data []byte, jsonTool string) providers.Stream {
	s := &stream{name: "bedrock", mr: newMessageReader(bytes.NewReader(data)),
		tr: newTranslator("bedrock", providers.ChunkBuilder{ID: "chatcmpl-ID", Model: "model", Created: 1700000000}, jsonTool)}
	return &providers.TranslatedStream{Next: s.next}
}
