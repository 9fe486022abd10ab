package bedrock

import (
	"bytes"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/xroute/xroute/providers"
)

func encodeForBench(b *testing.B, events ...[2]string) []byte {
	b.Helper()
	var buf bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, ev := range events {
		var msg eventstream.Message
		msg.Headers.Set(":event-type", eventstream.StringValue(ev[0]))
		msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		msg.Payload = []byte(ev[1])
		if err := enc.Encode(&buf, msg); err != nil {
			b.Fatal(err)
		}
	}
	return buf.Bytes()
}

// BenchmarkFirstChunk measures the adapter's work from the upstream's first
// event (messageStart) to the first OpenAI chunk: a new stream reader over
// an in-memory body, decoding, translating and rendering the role chunk.
func BenchmarkFirstChunk(b *testing.B) {
	data := encodeForBench(b, [2]string{"messageStart", `{"p":"abcdefgh","role":"assistant"}`})
	benchFirst(b, data, 1)
}

// BenchmarkFirstChunkText is the same up to the first text chunk
// (messageStart, then a contentBlockDelta).
func BenchmarkFirstChunkText(b *testing.B) {
	data := encodeForBench(b,
		[2]string{"messageStart", `{"p":"abcdefgh","role":"assistant"}`},
		[2]string{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcd"}`})
	benchFirst(b, data, 2)
}

func benchFirst(b *testing.B, data []byte, chunks int) {
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		s := &stream{name: "b", mr: newMessageReader(io.NopCloser(r)),
			tr: newTranslator("b", providers.ChunkBuilder{ID: "chatcmpl-B", Model: "m", Created: 1}, "")}
		ts := &providers.TranslatedStream{Next: s.next}
		for i := 0; i < chunks; i++ {
			if _, err := ts.Recv(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
