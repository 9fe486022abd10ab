package httpapi

import (
	"bytes"
	"testing"
)

func TestWithModel(t *testing.T) {
	q := quoteModel("public")
	tests := []struct {
		name, in, want string
		same           bool // the input itself comes back, not a copy
	}{
		{"no model", `{"id":"x","choices":[]}`, `{"id":"x","choices":[]}`, true},
		{"already public", `{"id":"x","model":"public","choices":[]}`, `{"id":"x","model":"public","choices":[]}`, true},
		{"already public, spaced", `{"id":"x", "model" :  "public" ,"choices":[]}`, `{"id":"x", "model" :  "public" ,"choices":[]}`, true},
		{"upstream id", `{"id":"x","model":"gpt-4o-2024-08-06","choices":[]}`, `{"id":"x","model":"public","choices":[]}`, false},
		{"a longer name that starts alike", `{"model":"public-2","x":1}`, `{"model":"public","x":1}`, false},
		{"an escaped quote after the name", `{"model":"public\"x","x":1}`, `{"model":"public","x":1}`, false},
		{"messages stream", `{"type":"message_start","message":{"id":"m","model":"claude-x","role":"assistant"}}`, `{"type":"message_start","message":{"id":"m","model":"public","role":"assistant"}}`, false},
		{"responses stream", `{"type":"response.created","response":{"id":"r","model":"gpt-x"}}`, `{"type":"response.created","response":{"id":"r","model":"public"}}`, false},
		// "model" as a value, then the real key: the first is not the
		// model, so the answer is parsed and rewritten.
		{"model as a value first", `{"role":"model","model":"gemini-x"}`, `{"role":"model","model":"public"}`, false},
		// Twice: the top-level key decides, even though a nested one names
		// the public model already.
		{"nested public, top upstream", `{"meta":{"model":"public"},"model":"up"}`, `{"meta":{"model":"public"},"model":"public"}`, false},
		{"a model key nowhere the formats put one", `{"x":{"model":"up"}}`, `{"x":{"model":"up"}}`, true},
		{"not a string", `{"model":7}`, `{"model":7}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got := withModel(nil, in, q)
			if string(got) != tt.want {
				t.Fatalf("withModel(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if same := len(got) > 0 && &got[0] == &in[0]; same != tt.same {
				t.Fatalf("withModel(%s) returned the input itself: %v, want %v", tt.in, same, tt.same)
			}
		})
	}
}

// BenchmarkWithModel is the per-chunk cost of naming the public model in
// a chat stream's chunk: named already (the common case), and not.
func BenchmarkWithModel(b *testing.B) {
	const chunk = `{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,"model":"%s","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" hello"},"logprobs":null,"finish_reason":null}],"usage":null}`
	q := quoteModel("gpt-4o-mini")
	for _, tc := range []struct{ name, model string }{{"named", "gpt-4o-mini"}, {"rewritten", "gpt-4o-mini-2024-07-18"}} {
		b.Run(tc.name, func(b *testing.B) {
			data := bytes.Replace([]byte(chunk), []byte("%s"), []byte(tc.model), 1)
			dst := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				dst = withModel(dst, data, q)
			}
		})
	}
}
