package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds for %s: %v", pattern, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzStream feeds arbitrary bytes to the stream translator as the body of
// a streamGenerateContent?alt=sse answer. Whatever arrives, the stream must
// end (io.EOF or a mid-stream *providers.Error), every chunk must be JSON,
// and the chunks must keep OpenAI's rules: role first, tool-call indexes in
// order, nothing but usage after the finish, usage last.
func FuzzStream(f *testing.F) {
	addSeeds(f, "testdata/streams/*.sse")
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":null},\"thoughtSignature\":\"@@\"}]},\"finishReason\":\"STOP\"}]}\n\n"))
	f.Add([]byte("data: {\"candidates\":[]}\n\ndata: {\"error\":{\"code\":\"x\"}}\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		out := providertest.Transcript(t, recordedStream(bytes.NewReader(body)))
		lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
		finished, usage, calls := false, false, 0
		for i, line := range lines[:len(lines)-1] {
			var c struct {
				Choices []struct {
					Delta struct {
						Role      string `json:"role"`
						ToolCalls []struct {
							Index int    `json:"index"`
							ID    string `json:"id"`
						} `json:"tool_calls"`
					} `json:"delta"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
			}
			data, ok := bytes.CutPrefix(line, []byte("CHUNK "))
			if !ok {
				_, data, _ = bytes.Cut(line, []byte("} ")) // USAGE {…} <data>
			}
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if usage {
				t.Fatalf("chunk after usage: %s", line)
			}
			if len(c.Choices) == 0 {
				usage = true
				continue
			}
			if finished {
				t.Fatalf("chunk after finish: %s", line)
			}
			ch := c.Choices[0]
			if (i == 0) != (ch.Delta.Role == "assistant") {
				t.Fatalf("role must come first and once: %s", line)
			}
			for _, tc := range ch.Delta.ToolCalls {
				if tc.ID != "" {
					if tc.Index != calls {
						t.Fatalf("tool call index %d, want %d", tc.Index, calls)
					}
					calls++
				} else if tc.Index >= calls {
					t.Fatalf("arguments before the call started: %s", line)
				}
			}
			finished = ch.FinishReason != nil
		}
		last := lines[len(lines)-1]
		clean := bytes.Equal(last, []byte("END: EOF"))
		if !clean && !(bytes.HasPrefix(last, []byte("END: {")) && bytes.Contains(last, []byte(`"mid_stream":true`))) {
			t.Fatalf("stream ended with %q, want EOF or a mid-stream error", last)
		}
		if clean && !finished {
			t.Fatal("a stream that ends cleanly must have finished")
		}
	})
}

// FuzzTranslateRequest: any caller body either translates to JSON or is
// refused with a *providers.RequestError (a 400), never a panic.
func FuzzTranslateRequest(f *testing.F) {
	addSeeds(f, "testdata/requests/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := translateRequest(body)
		if err != nil {
			var re *providers.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v is not a RequestError", err, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}
