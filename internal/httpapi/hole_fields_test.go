package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/billing"
)

// TestHoleDuplicateOrMistypedFieldRefused: a body with a key xroute reads
// given twice ({"model":"free","model":"priced"}) was routed by one and
// sent upstream with the other; a key spelled in another case is the same
// key to Go's decoder and another key upstream; a field of the wrong type
// was the upstream's problem. Each is a 400 from xroute, in the caller's
// API shape, naming the field, before any upstream call.
func TestHoleDuplicateOrMistypedFieldRefused(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: listPriced})
	reviewTopUp(t, g, 10*billing.NanoPerUSD)
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct {
		name, path, body, param string
	}{
		{"chat model twice", "/v1/chat/completions", `{"model":"gpt-4o-mini","model":"gpt-4o",` + msgs + `}`, "model"},
		{"chat n twice", "/v1/chat/completions", `{"model":"gpt-4o-mini","n":1,` + msgs + `,"n":100}`, "n"},
		{"chat max_tokens in another case", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":10000,"MAX_TOKENS":1,` + msgs + `}`, "max_tokens"},
		{"chat escaped duplicate", "/v1/chat/completions", `{"model":"gpt-4o-mini","str\u0065am":true,"stream":false,` + msgs + `}`, "stream"},
		{"chat messages twice", "/v1/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,` + msgs + `}`, "messages"},
		{"chat n a string", "/v1/chat/completions", `{"model":"gpt-4o-mini","n":"three",` + msgs + `}`, "n"},
		{"chat n zero", "/v1/chat/completions", `{"model":"gpt-4o-mini","n":0,` + msgs + `}`, "n"},
		{"chat temperature a string", "/v1/chat/completions", `{"model":"gpt-4o-mini","temperature":"hot",` + msgs + `}`, "temperature"},
		{"chat top_p a string", "/v1/chat/completions", `{"model":"gpt-4o-mini","top_p":"all",` + msgs + `}`, "top_p"},
		{"chat max_tokens zero", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":0,` + msgs + `}`, "max_tokens"},
		{"chat stream_options a string", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"stream_options":"usage",` + msgs + `}`, "stream_options"},
		{"completions prompt twice", "/v1/completions", `{"model":"gpt-4o-mini","prompt":"a","prompt":"` + strings.Repeat("b ", 100) + `"}`, "prompt"},
		{"completions best_of a float", "/v1/completions", `{"model":"gpt-4o-mini","prompt":"a","best_of":2.5}`, "best_of"},
		{"embeddings model twice", "/v1/embeddings", `{"model":"gpt-4o-mini","input":"a","model":"gpt-4o"}`, "model"},
		{"responses max_output_tokens twice", "/v1/responses", `{"model":"gpt-4o-mini","input":"a","max_output_tokens":16,"max_output_tokens":100000}`, "max_output_tokens"},
		{"responses temperature a string", "/v1/responses", `{"model":"gpt-4o-mini","input":"a","temperature":"hot"}`, "temperature"},
		{"messages model twice", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":16,"model":"gpt-4o",` + msgs + `}`, "model"},
		{"messages max_tokens twice", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":16,"max_tokens":100000,` + msgs + `}`, "max_tokens"},
		{"messages stream a string", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":16,"stream":"yes",` + msgs + `}`, "stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := g.primary.Stats().Requests
			r := moneyPost(t, g, g.key, c.path, c.body)
			msg := gjson.Get(r.body, "error.message").Str
			if r.StatusCode != http.StatusBadRequest || !strings.Contains(msg, "'"+c.param+"'") {
				t.Fatalf("%d %s; want a 400 naming '%s'", r.StatusCode, r.body, c.param)
			}
			if c.path == "/v1/messages" {
				if gjson.Get(r.body, "type").Str != "error" || gjson.Get(r.body, "error.type").Str != "invalid_request_error" {
					t.Fatalf("not Anthropic's error shape: %s", r.body)
				}
			} else if p := gjson.Get(r.body, "error.param").Str; p != c.param {
				t.Fatalf("param %q, want %q: %s", p, c.param, r.body)
			}
			if n := g.primary.Stats().Requests - before; n != 0 {
				t.Fatalf("the upstream was called %d times", n)
			}
		})
	}
}
