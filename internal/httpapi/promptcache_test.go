package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
)

// TestPromptCacheSavingsOpenAI: OpenAI's automatic caching through the
// chat completions pass-through. Two turns of one conversation with a
// 1,300-word system prompt: the second reports cached_tokens (the mock's
// longest cached prefix, a multiple of 128), the record keeps them, and
// the saving is what the cached tokens did not cost: at 1000 USD/M input
// and 100 cached, 900 USD/M, i.e. 900,000 nano-USD per 1,000 tokens.
func TestPromptCacheSavingsOpenAI(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		priced(c)
		for i := range c.Models {
			for j := range c.Models[i].Deployments {
				c.Models[i].Deployments[j].CachedInputPrice = "100"
			}
		}
	}})
	topUp(t, g)
	sys := strings.TrimSpace(strings.Repeat("stable ", 1300))
	turn1 := `{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"system","content":"` + sys + `"},{"role":"user","content":"first question"}]}`
	turn2 := `{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"system","content":"` + sys + `"},{"role":"user","content":"first question"},{"role":"assistant","content":"an answer"},{"role":"user","content":"second question"}]}`
	var saved [2]int64
	var cached [2]int
	for i, body := range []string{turn1, turn2} {
		r := sendModel(t, g.srv.URL, g.key, "/v1/chat/completions", body)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("turn %d: %d %s", i+1, r.StatusCode, r.body)
		}
		rec := g.usageFor(r.Header.Get("x-request-id"))
		cached[i], saved[i] = rec.CachedTokens, rec.PromptCacheSavedNano
		// nano-USD: per-M prices × tokens / 1000
		if want := int64(rec.PromptTokens-rec.CachedTokens)*1000*1000 + int64(rec.CachedTokens)*100*1000 + int64(rec.CompletionTokens)*2000*1000; rec.CostNano != want {
			t.Fatalf("turn %d: cost %d, want %d (%+v)", i+1, rec.CostNano, want, rec)
		}
	}
	// turn 1: 3 + (3+1300) + (3+2) = 1311 tokens, nothing cached yet;
	// turn 2 starts with the same 1306 tokens: the 1280-token prefix is read.
	if cached != [2]int{0, 1280} || saved != [2]int64{0, 1280 * 900 * 1000} {
		t.Fatalf("cached %v, saved %v", cached, saved)
	}
}
