package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	official "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/xroute/xroute/config"
)

// TestCacheNativeResponses: a Responses request served natively (the
// upstream speaks the Responses API) is cached too, whether the answer
// came as a body or a stream, and its hits, streamed or not, parse with
// openai-go.
func TestCacheNativeResponses(t *testing.T) {
	t.Parallel()
	cg := newCacheGateway(t, config.ModelCache{}, func(c *config.Config) { c.Providers[0].NativeFormats = []string{"responses"} })
	c := officialClient(cg.gateway, cg.key)
	ctx := context.Background()
	params := func(q string) responses.ResponseNewParams {
		return responses.ResponseNewParams{Model: "gpt-4o-mini", Input: textInput(q), Store: official.Bool(false)}
	}
	plain := func(q string) (string, string) {
		t.Helper()
		var raw *http.Response
		r, err := c.Responses.New(ctx, params(q), option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		return raw.Header.Get("x-xroute-cache"), r.OutputText()
	}
	streamed := func(q string) (string, string) {
		t.Helper()
		var raw *http.Response
		s := streamResponse(ctx, c, params(q), option.WithResponseInto(&raw))
		s.checkOrder(t)
		var b strings.Builder
		for _, ev := range s.events {
			if ev.Type == "response.output_text.delta" {
				b.WriteString(ev.Delta)
			}
		}
		return raw.Header.Get("x-xroute-cache"), b.String()
	}
	for _, tc := range []struct {
		name        string
		first, then func(string) (string, string)
	}{
		{"a body, then a body and a stream", plain, streamed},
		{"a stream, then a body and a stream", streamed, plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := "Tell me a story: " + tc.name
			before := cg.upstream.Load()
			res, text := tc.first(q)
			if res != "miss" || text == "" {
				t.Fatalf("first: %q %q", res, text)
			}
			if p, _ := cg.lastPath.Load().(string); p != "/v1/responses" {
				t.Fatalf("the upstream was called at %q, not natively", p)
			}
			for i, ask := range []func(string) (string, string){tc.then, plain, streamed} {
				if res, got := ask(q); res != "hit" || got != text {
					t.Fatalf("request %d: %q %q, the first answered %q", i+2, res, got, text)
				}
			}
			if n := cg.upstream.Load() - before; n != 1 {
				t.Fatalf("the upstream was called %d times, want 1", n)
			}
		})
	}
}

// TestCacheNativeMessages: a Messages request served natively by an
// Anthropic deployment is cached too, from a body or a stream, and its
// hits, streamed or not, parse with anthropic-sdk-go.
func TestCacheNativeMessages(t *testing.T) {
	t.Parallel()
	rg := newRespGateway(t, config.Model{Name: "claude-cached",
		Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5"}}, Cache: &config.ModelCache{Enabled: true}})
	c := anthropicClient(rg.gateway, rg.key)
	ctx := context.Background()
	params := func(q string) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: "claude-cached", MaxTokens: 64, Messages: userText(q)}
	}
	plain := func(q string) (string, string) {
		t.Helper()
		var raw *http.Response
		m, err := c.Messages.New(ctx, params(q), aoption.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, blk := range m.Content {
			b.WriteString(blk.Text)
		}
		return raw.Header.Get("x-xroute-cache"), b.String()
	}
	streamed := func(q string) (string, string) {
		t.Helper()
		var raw *http.Response
		st := c.Messages.NewStreaming(ctx, params(q), aoption.WithResponseInto(&raw))
		var msg anthropic.Message
		for st.Next() {
			if err := msg.Accumulate(st.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, blk := range msg.Content {
			b.WriteString(blk.Text)
		}
		if msg.StopReason == "" {
			t.Fatalf("stream without a stop reason: %+v", msg)
		}
		return raw.Header.Get("x-xroute-cache"), b.String()
	}
	for _, tc := range []struct {
		name        string
		first, then func(string) (string, string)
	}{
		{"a body, then a body and a stream", plain, streamed},
		{"a stream, then a body and a stream", streamed, plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := "Tell me a story: " + tc.name
			before := claudeCalls(rg.claude)
			res, text := tc.first(q)
			if res != "miss" || text == "" {
				t.Fatalf("first: %q %q", res, text)
			}
			for i, ask := range []func(string) (string, string){tc.then, plain, streamed} {
				if res, got := ask(q); res != "hit" || got != text {
					t.Fatalf("request %d: %q %q, the first answered %q", i+2, res, got, text)
				}
			}
			if n := claudeCalls(rg.claude) - before; n != 1 {
				t.Fatalf("the Anthropic upstream was called %d times, want 1", n)
			}
		})
	}
}

// claudeCalls counts the Messages calls the Anthropic mock received.
func claudeCalls(r *recorder) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies["/v1/messages"])
}
