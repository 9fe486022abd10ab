package anthropic

// Regression tests from the review of the native Messages passthrough:
// each one shows a defect, now fixed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// sseUpstream answers every request with these events, then ends the body.
func sseUpstream(t *testing.T, events [][2]string) *Adapter {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for _, ev := range events {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev[0], ev[1])
		}
	}))
	t.Cleanup(srv.Close)
	p, err := New(config.Provider{Name: "claude", Type: "anthropic", BaseURL: srv.URL, APIKey: testKey}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Adapter)
}

func nativeCall() *providers.Call {
	body := []byte(`{"model":"pub","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	req := &providers.ChatRequest{Model: "pub", Stream: true, MaxTokens: 64, Format: providers.FormatMessages, Native: body,
		Body: []byte(`{"model":"pub","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)}
	return &providers.Call{Request: req, Model: "claude-upstream"}
}

const cachedStart = `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-upstream","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":50000,"output_tokens":1}}}`

// message_start carries the exact input side of the usage (input, cache
// reads, cache writes), but the native stream hands usage to the relay only
// with message_delta. A stream that breaks, or that the caller abandons,
// before message_delta has no usage at all: the gateway then estimates the
// prompt with its tokenizer, without the cache split, and prices all of it
// at the input rate.
func TestReviewNativeStreamSurfacesMessageStartUsage(t *testing.T) {
	a := sseUpstream(t, [][2]string{
		{"message_start", cachedStart},
		{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
		{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`},
	})
	st, err := a.ChatStream(context.Background(), nativeCall())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var last *providers.Usage
	for {
		c, err := st.Recv()
		if err != nil {
			break // the stream broke after the text delta
		}
		if c.Usage != nil {
			last = c.Usage
		}
	}
	if last == nil || last.PromptTokens != 50010 || last.CachedTokens != 50000 {
		t.Fatalf("usage known when the stream broke: %+v; message_start said input 10 + 50000 cache reads", last)
	}
}

// An overloaded Anthropic answers 200, message_start, then an error event.
// The native stream hands message_start out as a chunk first (and marks
// itself sent), so the router, which commits to a deployment on its first
// chunk, cannot fail over although no content reached anyone; the error
// comes back as a mid-stream failure.
func TestReviewNativeStreamErrorBeforeContentAllowsFailover(t *testing.T) {
	a := sseUpstream(t, [][2]string{
		{"message_start", cachedStart},
		{"ping", `{"type":"ping"}`},
		{"error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
	})
	st, err := a.ChatStream(context.Background(), nativeCall())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.Recv()
	var pe *providers.Error
	if err == nil || !errors.As(err, &pe) || pe.Status != 529 {
		t.Fatalf("first Recv gave the %q chunk (err %v): the failure before any content is no longer a failover", c.Name, err)
	}
}
