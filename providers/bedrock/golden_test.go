package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	xgolden "github.com/xroute/xroute/internal/golden"
	"github.com/xroute/xroute/providers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name (or writes it with -update).
func golden(t *testing.T, name string, got []byte) { t.Helper(); xgolden.Check(t, *update, name, got) }

// TestRequestTranslationGolden: testdata/request_*.json (OpenAI bodies) are
// translated to testdata/request_*.golden (Converse bodies).
func TestRequestTranslationGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "request_*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := filepath.Base(in)
		name = name[:len(name)-len(".json")]
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
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
			golden(t, name+".golden", append(out, '\n'))
		})
	}
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
	inputs, err := filepath.Glob(filepath.Join("testdata", "stream_*.events.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := filepath.Base(in)
		name = name[:len(name)-len(".events.json")]
		t.Run(name, func(t *testing.T) {
			jsonTool := ""
			if name == "stream_json_object" {
				jsonTool = jsonToolName
			}
			var out bytes.Buffer
			for _, line := range translateAll(encodeEvents(t, in), jsonTool) {
				out.Write(chunkID.ReplaceAll(line, []byte(`"id":"chatcmpl-ID"`)))
				out.WriteByte('\n')
			}
			golden(t, name+".golden", out.Bytes())
		})
	}
}

// translateAll drives the stream reader and translator over data and
// returns every chunk, then a line for how the stream ended.
func translateAll(data []byte, jsonTool string) [][]byte {
	s := &stream{name: "bedrock", mr: newMessageReader(bytes.NewReader(data)),
		tr: newTranslator("bedrock", providers.ChunkBuilder{ID: "chatcmpl-ID", Model: "model", Created: 1700000000}, jsonTool)}
	ts := &providers.TranslatedStream{Next: s.next}
	var lines [][]byte
	for {
		c, err := ts.Recv()
		if errors.Is(err, io.EOF) {
			return append(lines, []byte("END: EOF"))
		}
		if err != nil {
			var pe *providers.Error
			if errors.As(err, &pe) {
				e, _ := json.Marshal(struct {
					Status    int    `json:"status"`
					Type      string `json:"type"`
					Code      string `json:"code"`
					Message   string `json:"message"`
					MidStream bool   `json:"mid_stream"`
				}{pe.Status, pe.Type, pe.Code, pe.Message, pe.MidStream})
				return append(lines, append([]byte("END: "), e...))
			}
			return append(lines, []byte("END: "+err.Error()))
		}
		line := c.Data
		if c.UsageOnly {
			line = append([]byte("USAGE "), line...)
		}
		lines = append(lines, line)
	}
}
