package anthropic

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/xroute/xroute/config"
	amock "github.com/xroute/xroute/loadtest/mock/anthropic"
	"github.com/xroute/xroute/providers"
)

const firstEvent = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}` +
	"\n\n"

// BenchmarkFirstChunk measures the adapter's share of time to first token:
// from the upstream's first event written into an in-memory pipe to the
// first OpenAI chunk out of the stream.
func BenchmarkFirstChunk(b *testing.B) {
	ev := []byte(firstEvent)
	b.ReportAllocs()
	for b.Loop() {
		pr, pw := io.Pipe()
		st := &providers.TranslatedStream{Next: newTranslator("bench", pr, false, "m", 1).next}
		go func() { _, _ = pw.Write(ev) }()
		c, err := st.Recv()
		if err != nil || len(c.Data) == 0 {
			b.Fatal(err)
		}
		pw.Close()
	}
}

// BenchmarkFirstChunkHTTP is the whole first-chunk path over loopback HTTP
// against the mock: translate the request, POST it, read the headers and
// the first event, emit the first chunk.
func BenchmarkFirstChunkHTTP(b *testing.B) {
	srv := httptest.NewServer(amock.New(amock.Config{}))
	defer srv.Close()
	p, err := New(config.Provider{Name: "bench", BaseURL: srv.URL}, providers.Deps{Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	req, err := providers.ParseChatRequest([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hello there, how are you today?"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	call := &providers.Call{Request: req, Model: "claude"}
	b.ReportAllocs()
	for b.Loop() {
		st, err := p.ChatStream(context.Background(), call)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
}
