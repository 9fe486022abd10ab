package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/providers"
)

// FuzzStreamTranslation feeds arbitrary bytes to the event-stream reader and
// the Converse→OpenAI translator. Whatever the upstream sends, the stream
// must end (io.EOF or a mid-stream *providers.Error), never panic, and
// every chunk must be a well-formed chat.completion.chunk: role first,
// tool-call indices in order, one finish, usage after it.
func FuzzStreamTranslation(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "stream_*.events.json"))
	for _, path := range seeds {
		data := encodeEvents(f, path)
		f.Add(data, false)
		f.Add(data, true)
		f.Add(data[:len(data)/2], false) // cut inside a message
		f.Add(data[:len(data)-1], true)  // bad final CRC / short message
		corrupt := bytes.Clone(data)
		corrupt[len(corrupt)/3] ^= 0x55 // checksum or length damage
		f.Add(corrupt, false)
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}, false) // huge length
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0}, false)                        // prelude only

	f.Fuzz(func(t *testing.T, data []byte, jsonMode bool) {
		jsonTool := ""
		if jsonMode {
			jsonTool = jsonToolName
		}
		s := &stream{name: "fuzz", mr: newMessageReader(bytes.NewReader(data)),
			tr: newTranslator("fuzz", providers.ChunkBuilder{ID: "chatcmpl-F", Model: "m", Created: 1}, jsonTool)}
		ts := &providers.TranslatedStream{Next: s.next}
		calls, finishes := 0, 0
		sawUsage := false
		for i := 0; ; i++ {
			if i > len(data)+8 {
				t.Fatalf("stream did not end after %d chunks from %d bytes", i, len(data))
			}
			c, err := ts.Recv()
			if errors.Is(err, io.EOF) {
				if finishes != 1 {
					t.Fatalf("clean end with %d finish chunks", finishes)
				}
				return
			}
			if err != nil {
				var pe *providers.Error
				if !errors.As(err, &pe) || !pe.MidStream || pe.Message == "" {
					t.Fatalf("stream error must be a mid-stream *providers.Error, got %T %v", err, err)
				}
				return
			}
			var ch struct {
				Object  string `json:"object"`
				Choices []struct {
					Delta struct {
						Role      string `json:"role"`
						ToolCalls []struct {
							Index int     `json:"index"`
							ID    *string `json:"id"`
						} `json:"tool_calls"`
					} `json:"delta"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
				Usage *json.RawMessage `json:"usage"`
			}
			if err := json.Unmarshal(c.Data, &ch); err != nil || ch.Object != "chat.completion.chunk" {
				t.Fatalf("chunk %d is not a chat.completion.chunk: %v %s", i, err, c.Data)
			}
			if sawUsage {
				t.Fatalf("chunk after the usage chunk: %s", c.Data)
			}
			if c.UsageOnly {
				if len(ch.Choices) != 0 || ch.Usage == nil || finishes != 1 {
					t.Fatalf("bad usage chunk (finishes=%d): %s", finishes, c.Data)
				}
				sawUsage = true
				continue
			}
			if len(ch.Choices) != 1 {
				t.Fatalf("chunk without one choice: %s", c.Data)
			}
			if (i == 0) != (ch.Choices[0].Delta.Role == "assistant") {
				t.Fatalf("role must come in the first chunk only: %s", c.Data)
			}
			if finishes > 0 {
				t.Fatalf("chunk after the finish chunk: %s", c.Data)
			}
			for _, tc := range ch.Choices[0].Delta.ToolCalls {
				switch {
				case tc.ID != nil && tc.Index == calls:
					calls++
				case tc.ID == nil && tc.Index < calls:
				default:
					t.Fatalf("tool call index %d out of order (%d calls): %s", tc.Index, calls, c.Data)
				}
			}
			if ch.Choices[0].FinishReason != nil {
				finishes++
			}
		}
	})
}
