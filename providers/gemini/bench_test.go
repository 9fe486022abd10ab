package gemini

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"testing"

	mockgemini "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
)

// firstEvent is the first event of a streamGenerateContent answer as the
// mock (and Gemini) sends it.
var firstEvent = []byte("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 9}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"h4xKaPqZBs6Y1dkP8e-mwAk\"}\r\n\r\n")

var builder = providers.ChunkBuilder{ID: "chatcmpl-bench", Model: "pub", Created: 1700000000}

// BenchmarkFirstChunk measures the adapter's share of time to first
// token: from the first event arriving on the connection (an in-memory
// pipe written by another goroutine) to the first OpenAI chunk.
func BenchmarkFirstChunk(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		pr, pw := io.Pipe()
		go func() { _, _ = pw.Write(firstEvent) }()
		tr := newTranslator("gem", pr, builder)
		chunks, err := tr.next()
		if err != nil || len(chunks) == 0 {
			b.Fatal(err)
		}
		pw.Close()
	}
}

// BenchmarkFirstChunkParse is the same without the pipe: parsing and
// translating the first event only.
func BenchmarkFirstChunkParse(b *testing.B) {
	b.ReportAllocs()
	r := bytes.NewReader(firstEvent)
	for b.Loop() {
		r.Reset(firstEvent)
		tr := newTranslator("gem", r, builder)
		if chunks, err := tr.next(); err != nil || len(chunks) == 0 {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstChunkHTTP is a whole streaming call against the mock over
// loopback HTTP, up to the first chunk: request translation, the round
// trip, and the first event.
func BenchmarkFirstChunkHTTP(b *testing.B) {
	srv := httptest.NewServer(mockgemini.New(mockgemini.Config{}))
	defer srv.Close()
	a := adapterFor(b, srv, "")
	req, err := providers.ParseChatRequest([]byte(`{"model":"pub","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there, how are you today?"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	call := &providers.Call{Request: req, Model: "gemini-2.5-flash"}
	b.ReportAllocs()
	for b.Loop() {
		st, err := a.ChatStream(context.Background(), call)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
}

// BenchmarkNextEvent is the steady-state cost of one text event of a
// running stream.
func BenchmarkNextEvent(b *testing.B) {
	const n = 1000
	body := bytes.Repeat(firstEvent, n)
	b.ReportAllocs()
	var tr *translator
	r := bytes.NewReader(body)
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			r.Reset(body)
			tr = newTranslator("gem", r, builder)
		}
		if chunks, err := tr.next(); err != nil || len(chunks) == 0 {
			b.Fatal(err)
		}
	}
}
