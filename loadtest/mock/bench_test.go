package mock

import (
	"net/http"
	"strings"
	"testing"
)

// discardWriter is a minimal http.ResponseWriter (with Flush) for benchmarks.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

func benchChat(b *testing.B, body string) { benchPost(b, "/v1/chat/completions", body) }

func benchPost(b *testing.B, path, body string) {
	s := New(Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(body))
			s.ServeHTTP(&discardWriter{h: http.Header{}}, req)
		}
	})
}

func BenchmarkChatNonStream(b *testing.B) {
	benchChat(b, `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there, how are you today?"}]}`)
}

func BenchmarkChatStream(b *testing.B) {
	benchChat(b, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello there, how are you today?"}]}`)
}

func BenchmarkChatToolsStream(b *testing.B) {
	benchChat(b, `{"model":"m","stream":true,"messages":[{"role":"user","content":"weather"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}]}`)
}

func BenchmarkChatJSONSchemaStream(b *testing.B) {
	benchChat(b, `{"model":"m","stream":true,"messages":[{"role":"user","content":"plan"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}}`)
}

func BenchmarkResponsesNonStream(b *testing.B) {
	benchPost(b, "/v1/responses", `{"model":"m","instructions":"be brief","input":"hello there, how are you today?"}`)
}

func BenchmarkResponsesStream(b *testing.B) {
	benchPost(b, "/v1/responses", `{"model":"m","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"hello there, how are you today?"}]}]}`)
}

func BenchmarkResponsesToolsStream(b *testing.B) {
	benchPost(b, "/v1/responses", `{"model":"m","stream":true,"input":"weather","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}]}`)
}

func BenchmarkCompletionsStream(b *testing.B) {
	benchPost(b, "/v1/completions", `{"model":"m","stream":true,"prompt":"hello there, how are you today?"}`)
}
