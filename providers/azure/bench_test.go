package azure

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkFirstChunk measures the adapter's work from the upstream's first
// event to the first chunk handed on: Azure's prompt-filter chunk (dropped)
// then the role chunk, read from an in-memory body.
func BenchmarkFirstChunk(b *testing.B) {
	data := []byte(`data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}` + "\n\n" +
		`data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1733000000,"id":"chatcmpl-AZ1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}` + "\n\n")
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		s := recordedStream(io.NopCloser(r))
		if _, err := s.Recv(); err != nil {
			b.Fatal(err)
		}
	}
}
