package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

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
