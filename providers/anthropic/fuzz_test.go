package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/providers"
)

// FuzzStream feeds arbitrary bytes to the stream translator: it must never
// panic or loop, every chunk must be valid JSON, tool-call indices must
// count up from 0 with the id on each call's first fragment only, and the
// stream must end with io.EOF (after a finish chunk) or a typed mid-stream
// error that repeats.
func FuzzStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "stream_*.sse"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte("event: message_stop\ndata: {}\n\n"), false)
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n"), false)
	f.Add([]byte("event: content_block_start\ndata: {\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"json_response\"}}\n\nevent: content_block_stop\ndata: {\"index\":0}\n\nevent: message_stop\ndata: {}\n\n"), true)
	f.Add([]byte("event: error\ndata: not json\n\n"), false)

	f.Fuzz(func(t *testing.T, data []byte, jsonTool bool) {
		tr := newTranslator("fuzz", bytes.NewReader(data), jsonTool, "m", 1)
		st := &providers.TranslatedStream{Next: tr.next}
		calls := 0
		finished := false
		for i := 0; ; i++ {
			if i > 2*len(data)+16 {
				t.Fatal("more chunks than the input can explain")
			}
			c, err := st.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					if !finished {
						t.Fatal("io.EOF without a finish chunk")
					}
				} else {
					var pe *providers.Error
					if !errors.As(err, &pe) || !pe.MidStream {
						t.Fatalf("untyped stream error %#v", err)
					}
				}
				if _, again := st.Recv(); !errors.Is(again, err) && again != err {
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
				return
			}
			var ch struct {
				Choices []struct {
					Delta struct {
						ToolCalls []struct {
							Index int    `json:"index"`
							ID    string `json:"id"`
						} `json:"tool_calls"`
					} `json:"delta"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
			}
			if err := json.Unmarshal(c.Data, &ch); err != nil {
				t.Fatalf("chunk is not JSON: %v: %q", err, c.Data)
			}
			if finished && !c.UsageOnly {
				t.Fatalf("chunk after the finish chunk: %s", c.Data)
			}
			for _, choice := range ch.Choices {
				for _, tc := range choice.Delta.ToolCalls {
					switch {
					case tc.Index == calls && tc.ID != "":
						calls++
					case tc.Index < calls && tc.ID == "":
					default:
						t.Fatalf("tool call delta out of order (have %d calls): %s", calls, c.Data)
					}
				}
				if choice.FinishReason != nil {
					finished = true
				}
			}
		}
	})
}

// FuzzTranslateRequest checks that any caller body either translates to a
// JSON request or fails with a *providers.RequestError.
func FuzzTranslateRequest(f *testing.F) {
	for _, tc := range requestCases {
		f.Add([]byte(tc.body))
	}
	f.Add([]byte(`{"messages":[{"role":"tool","tool_call_id":"a","content":[{"type":"image_url"}]}]}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"a\":"}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := translateRequest(body, "m", false)
		if err != nil {
			var re *providers.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("untyped error %#v", err)
			}
			return
		}
		if !json.Valid(tr.body) {
			t.Fatalf("invalid upstream JSON %s", tr.body)
		}
	})
}
