package azure

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

// FuzzStream feeds arbitrary bytes to the Azure stream reader: it must end
// (io.EOF after [DONE], or a mid-stream *providers.Error), never panic, and
// pass on only JSON chunks, never Azure's prompt-filter-only chunk.
func FuzzStream(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "stream_*.sse"))
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte("data: [DONE]\n\n"))
	f.Add([]byte("data: {\"error\":\"x\"}\n\n"))
	f.Add([]byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":\"x\"}}\n\ndata: [DONE]"))

	f.Fuzz(func(t *testing.T, data []byte) {
		s := recordedStream(io.NopCloser(bytes.NewReader(data)))
		for i := 0; ; i++ {
			if i > len(data)+2 {
				t.Fatalf("stream did not end after %d chunks from %d bytes", i, len(data))
			}
			c, err := s.Recv()
			if errors.Is(err, io.EOF) {
				if _, err := s.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("Recv after the end: %v", err)
				}
				return
			}
			if err != nil {
				var pe *providers.Error
				if !errors.As(err, &pe) || !pe.MidStream {
					t.Fatalf("want a mid-stream *providers.Error, got %T %v", err, err)
				}
				return
			}
			if !json.Valid(c.Data) {
				t.Fatalf("chunk is not JSON: %q", c.Data)
			}
			if !c.UsageOnly && bytes.Contains(c.Data, []byte("prompt_filter_results")) {
				var ch struct {
					Choices []json.RawMessage `json:"choices"`
				}
				if json.Unmarshal(c.Data, &ch) == nil && len(ch.Choices) == 0 {
					t.Fatalf("prompt-filter chunk passed on: %s", c.Data)
				}
			}
			if c.UsageOnly && c.Usage == nil {
				t.Fatalf("usage-only chunk without usage: %s", c.Data)
			}
		}
	})
}
