package httpapi_test

// Regression tests from the review of the Messages ingress: each one shows
// a defect, and failed on the code it was written against.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// sseEvents splits a Messages stream into its events' types, in order.
func sseEvents(body string) []string {
	var types []string
	for _, ev := range strings.Split(strings.TrimSpace(body), "\n\n") {
		_, data, _ := strings.Cut(ev, "data: ")
		types = append(types, gjson.Get(data, "type").Str)
	}
	return types
}

// topUp gives the default account credits for priced deployments.
func topUp(t *testing.T, g *gateway) {
	t.Helper()
	if _, _, err := g.app.Ledger.TopUp(context.Background(), "acct_default", 1_000_000*1_000_000_000, "review", "test"); err != nil {
		t.Fatal(err)
	}
}

// catalogGateway is xroute with the OpenAI mock also configured as the
// provider "openai", so that deployments on it get the catalog's entries
// (gpt-4o: context 128000, max output 16384), its bodies recorded.
func catalogGateway(t *testing.T, mutate func(*config.Config)) (*gateway, *recorder) {
	t.Helper()
	rec := &recorder{}
	g := newGateway(t, gwOptions{wrapPrimary: func(h http.Handler) http.Handler { rec.h = h; return rec }, mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "openai", Type: "openai", BaseURL: c.Providers[0].BaseURL, APIKey: providerKey})
		c.Models = append(c.Models, config.Model{Name: "cc-gpt-4o", Deployments: []config.Deployment{{Provider: "openai", Model: "gpt-4o"}}})
		if mutate != nil {
			mutate(c)
		}
	}})
	topUp(t, g)
	return g, rec
}

// 1. Claude Code sends max_tokens 32000 (Sonnet) to 128000 (the recorded
// traffic) whatever the model. Translated to gpt-4o (max output 16384,
// context 128000) the pivot keeps it: xroute's own context check
// (ContextTokens = prompt + max_tokens) refuses 128000 outright with a 400
// "unsupported_by_model", and 32000 goes upstream as max_tokens 32000,
// which OpenAI refuses ("max_tokens is too large ... at most 16384
// completion tokens"). The hold already caps max_tokens by the model's
// limit; routing and the translated body do not.
func TestReviewClaudeCodeMaxTokensOnASmallerModel(t *testing.T) {
	t.Parallel()
	g, rec := catalogGateway(t, nil)
	for _, max := range []int{32000, 128000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			r := postAnthropic(t, g, "/v1/messages?beta=true", fmt.Sprintf(`{"model":"cc-gpt-4o","max_tokens":%d,"stream":true,
				"messages":[{"role":"user","content":"hello"}]}`, max), nil)
			if r.StatusCode != 200 {
				t.Fatalf("max_tokens %d: %d %s", max, r.StatusCode, r.body)
			}
			up := rec.last(t, "/chat/completions")
			if n := gjson.GetBytes(up, "max_tokens").Int() + gjson.GetBytes(up, "max_completion_tokens").Int(); n > 16384 {
				t.Fatalf("max_tokens %d sent to gpt-4o, whose limit is 16384", n)
			}
		})
	}
}

// 2. The key's TPM reservation takes max_tokens as it came, while the
// credit hold caps it by the model's max output: a key with a TPM of
// 50000 cannot send Claude Code's max_tokens 64000 to gpt-4o at all (429
// tokens_exceed_limit, x-should-retry false), although the most that
// request can use is 16384 + its prompt.
func TestReviewTPMReservationIsCappedByTheModelsLimit(t *testing.T) {
	t.Parallel()
	g, _ := catalogGateway(t, nil)
	key, _, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "tpm", TPM: 50000})
	if err != nil {
		t.Fatal(err)
	}
	g.key = key
	r := postAnthropic(t, g, "/v1/messages", `{"model":"cc-gpt-4o","max_tokens":64000,"messages":[{"role":"user","content":"hello"}]}`, nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
}

// 3. count_tokens takes no max_tokens; the handler sets max_tokens 1 so
// that the create parser accepts the body, and the parser then refuses
// any thinking {"type":"enabled","budget_tokens":N}: "`max_tokens` must
// be greater than `thinking.budget_tokens`". Counting a thinking request
// (which the SDK's MessageCountTokensParams allows) is always a 400.
func TestReviewCountTokensWithThinkingEnabled(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	c := anthropicClient(g.gateway, g.key)
	for _, model := range []string{"claude-test", "compat-test"} {
		t.Run(model, func(t *testing.T) {
			n, err := c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
				Model: anthropic.Model(model), Messages: userText("How many tokens?"), Thinking: anthropic.ThinkingConfigParamOfEnabled(2048)})
			if err != nil {
				t.Fatalf("count_tokens with thinking: %v", err)
			}
			if n.InputTokens == 0 {
				t.Fatalf("count %d", n.InputTokens)
			}
		})
	}
}

// nativeRouter serves every request with a native Messages stream: the
// events of a complete answer, as the Anthropic adapter relays them.
type nativeRouter struct{ fakeRouter }

func (r *nativeRouter) Lookup(name string) (*router.Model, bool) {
	return &router.Model{Name: name}, true
}

func (r *nativeRouter) ChatStream(context.Context, *router.Model, *providers.ChatRequest) (providers.Stream, router.Result, error) {
	u := providers.Usage{PromptTokens: 10, CompletionTokens: 2}
	return &chunkStream{chunks: []providers.Chunk{
		{Native: true, Name: "message_start", Data: []byte(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}`)},
		{Native: true, Name: "content_block_start", Data: []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)},
		{Native: true, Name: "content_block_delta", Data: []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`), Events: []providers.Event{{Kind: providers.EventText, Text: "Hi"}}},
		{Native: true, Name: "content_block_stop", Data: []byte(`{"type":"content_block_stop","index":0}`)},
		{Native: true, Name: "message_delta", Data: []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}`), Usage: &u},
		{Native: true, Name: "message_stop", Data: []byte(`{"type":"message_stop"}`)},
	}}, router.Result{Attempts: 1}, nil
}

type chunkStream struct {
	chunks []providers.Chunk
	n      int
}

func (s *chunkStream) Recv() (providers.Chunk, error) {
	if s.n == len(s.chunks) {
		return providers.Chunk{}, io.EOF
	}
	s.n++
	return s.chunks[s.n-1], nil
}
func (s *chunkStream) Close() error { return nil }

// 4. "Usage committed before the final byte": a native Messages stream
// relays the upstream's message_stop as a chunk, before the relay sees
// EOF and commits the usage. When the commit cannot be kept (database down,
// usage spool full) the caller has already received a complete answer,
// which is then not charged, followed by an error event after
// message_stop, which no Anthropic client expects. Translated streams
// hold their closing events back; native ones must hold message_stop.
func TestReviewNativeStreamMessageStopWaitsForTheUsageCommit(t *testing.T) {
	t.Parallel()
	usage := &fakeUsage{}
	full := billing.ErrSpoolFull
	usage.commitErr.Store(&full)
	s, err := httpapi.New(httpapi.Config{Keys: &fakeVerifier{}, Router: &nativeRouter{}, Log: zap.NewNop(),
		MaxBodyBytes: 1 << 20, Model: httpapi.ModelConfig{Usage: usage, RequestTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(`{"model":"claude","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", "xr-anything")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	types := sseEvents(readAll(t, resp))
	for i, ty := range types {
		if ty == "message_stop" {
			t.Fatalf("the answer ended with message_stop although its usage was not kept (events %v, message_stop at %d)", types, i)
		}
	}
}

// 5. The keep-alive starts only once the router has the upstream's first
// chunk (ChatStream peeks it before relayStream runs): an upstream that
// accepted the request and then thinks before its first token — the case
// the keep-alive was written for — leaves the caller with nothing at all,
// not even the response headers, for the whole silence. Here the upstream
// is silent for 600 ms with a keep-alive of 25 ms: the only ping the caller
// sees before the first token is the one message_start always brings.
func TestReviewKeepAliveCoversTheSilenceBeforeTheFirstToken(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(600 * time.Millisecond) // the model thinks (the upstream's behaviour, not synchronisation)
		for _, d := range []string{
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", d)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(slow.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Server.StreamKeepAlive = 25 * time.Millisecond
		c.Providers = append(c.Providers, config.Provider{Name: "slow", Type: "openai", BaseURL: slow.URL + "/v1", APIKey: providerKey})
		c.Models = append(c.Models, config.Model{Name: "slow-test", Deployments: []config.Deployment{{Provider: "slow", Model: "thinker"}}})
	}})
	r := postAnthropic(t, g, "/v1/messages", `{"model":"slow-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"think first"}]}`, nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	types := sseEvents(r.body)
	pings := 0
	for _, ty := range types {
		if ty == "content_block_delta" {
			break
		}
		if ty == "ping" {
			pings++
		}
	}
	if pings < 3 {
		t.Fatalf("%d pings before the first token after 600 ms of silence (keep-alive 25 ms): %v", pings, types)
	}
}

// cutAnthropic is an Anthropic upstream whose stream reports its input
// usage in message_start (mostly read from the prompt cache, as Claude
// Code's long conversations are), sends one text delta and breaks.
func cutAnthropic(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for _, ev := range [][2]string{
			{"message_start", `{"type":"message_start","message":{"id":"msg_cut","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":50000,"output_tokens":1}}}`},
			{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`},
		} {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev[0], ev[1])
		}
		// The connection ends here: no message_delta, no message_stop.
	}))
	t.Cleanup(srv.Close)
	return srv
}

// 6. A native stream that breaks (or that the caller abandons, as Claude
// Code does on Esc) before message_delta is metered from an estimate: the
// prompt counted by xroute's tokenizer, with no cache reads, at the full
// input price, although message_start reported the exact input side
// (here 10 input tokens and 50000 read from the cache, billed by Anthropic
// at a tenth of the input price). A long cached conversation interrupted
// mid-answer is charged the wrong prompt at up to 10x its real price.
func TestReviewBrokenNativeStreamKeepsMessageStartUsage(t *testing.T) {
	t.Parallel()
	cut := cutAnthropic(t)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "cut", Type: "anthropic", BaseURL: cut.URL, APIKey: "sk-ant-test-key-0001"})
		c.Models = append(c.Models, config.Model{Name: "cut-test", Deployments: []config.Deployment{{Provider: "cut", Model: "claude-x",
			InputPrice: "1000", CachedInputPrice: "100", CacheWriteInputPrice: "1250", OutputPrice: "2000"}}})
	}})
	topUp(t, g)
	r := postAnthropic(t, g, "/v1/messages", `{"model":"cut-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"a long cached conversation"}]}`, nil)
	if r.StatusCode != 200 || !strings.Contains(r.body, "Hello") {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	rec := g.usageFor(r.Header.Get("x-request-id"))
	if rec.CachedTokens != 50000 || rec.PromptTokens != 50010 {
		t.Fatalf("record: prompt %d, cached %d (estimated %v, cost %d nano); message_start said 10 + 50000 read from the cache",
			rec.PromptTokens, rec.CachedTokens, rec.Estimated, rec.CostNano)
	}
}

// 7. Anthropic prices a 1-hour cache write at 2x the input price (5-minute
// writes 1.25x) and reports the split in usage.cache_creation
// (ephemeral_5m_input_tokens, ephemeral_1h_input_tokens). xroute reads only
// cache_creation_input_tokens and prices every write at the one
// cache-write rate: 1h writes (cache_control ttl "1h") are undercharged by
// 37.5% of their cost.
func TestReviewOneHourCacheWritesArePricedAtTheirRate(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t, config.Model{Name: "claude-priced", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5",
		InputPrice: "1000", CachedInputPrice: "100", CacheWriteInputPrice: "1250", OutputPrice: "2000"}}})
	topUp(t, g.gateway)
	long := strings.Repeat("You are a careful assistant. ", 220) // above claude-sonnet-4-5's 1024-token minimum
	body := `{"model":"claude-priced","max_tokens":16,"system":[{"type":"text","text":"` + long + `","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":"hi"}]}`
	r := postAnthropic(t, g.gateway, "/v1/messages", body, nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	u := gjson.Get(r.body, "usage")
	w1h := u.Get("cache_creation.ephemeral_1h_input_tokens").Int()
	if w1h == 0 {
		t.Fatalf("the mock wrote no 1h cache: %s", u.Raw)
	}
	in, w, out := u.Get("input_tokens").Int(), u.Get("cache_creation_input_tokens").Int(), u.Get("output_tokens").Int()
	// nano-USD: per-M prices × tokens / 1000; a 1h write at 2x input.
	want := (in*1000 + (w-w1h)*1250 + w1h*2000 + out*2000) * 1000
	if rec := g.usageFor(r.Header.Get("x-request-id")); rec.CostNano < want {
		t.Fatalf("cost %d nano-USD, want %d (usage %s)", rec.CostNano, want, u.Raw)
	}
}

// 8. A turn served by a translating deployment comes back with its
// thinking signed "xroute-translated"; when the conversation continues on
// an Anthropic deployment (failover, cost routing, a model with both), the
// native body drops that block. With thinking enabled, the assistant turn
// being continued (tool_use, then the tool_result) then starts with
// tool_use, which Anthropic refuses ("a final assistant message must start
// with a thinking block ... To avoid this requirement, disable
// thinking"). The gateway made the block unusable; it must also not send a
// request that needs it (e.g. turn thinking off for that request).
func TestReviewDroppedXrouteThinkingDoesNotBreakTheToolTurn(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	body := `{"model":"claude-test","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1024},
		"tools":[{"name":"get_weather","description":"Weather.","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
		"messages":[
			{"role":"user","content":"Weather in Paris?"},
			{"role":"assistant","content":[{"type":"thinking","thinking":"I should call the tool.","signature":"xroute-translated"},
				{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"21C"}]}]}`
	r := postAnthropic(t, g.gateway, "/v1/messages", body, nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
}

// overloadedAnthropic answers 200, message_start, then Anthropic's
// overloaded error event: the shape an overloaded Anthropic stream takes.
func overloadedAnthropic(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_o\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n")
		fmt.Fprint(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// 9. Failover "before the first byte" never happens on a native stream
// that fails right after message_start (Anthropic's overloaded_error in a
// 200 stream): the router commits to the first chunk, and message_start
// is always first, so the caller gets the error although a second
// deployment could serve it and nothing of the answer was sent. (The
// translating Anthropic adapter has the same gap: it emits its role chunk
// at message_start.)
func TestReviewNativeStreamFailsOverWhenItFailsBeforeContent(t *testing.T) {
	t.Parallel()
	bad := overloadedAnthropic(t)
	good := httptest.NewServer(anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: "sk-ant-test-key-0001"}}))
	t.Cleanup(good.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers,
			config.Provider{Name: "claude-bad", Type: "anthropic", BaseURL: bad.URL, APIKey: "sk-ant-test-key-0001"},
			config.Provider{Name: "claude-good", Type: "anthropic", BaseURL: good.URL, APIKey: "sk-ant-test-key-0001"})
		c.Models = append(c.Models, config.Model{Name: "two-claudes", Deployments: []config.Deployment{
			{Provider: "claude-bad", Model: "claude-sonnet-4-5"}, {Provider: "claude-good", Model: "claude-sonnet-4-5"}}})
	}})
	c := anthropicClient(g, g.key)
	st := c.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "two-claudes", MaxTokens: 32, Messages: userText("hi")},
		aoption.WithHeader("anthropic-version", "2023-06-01"))
	var msg anthropic.Message
	for st.Next() {
		if err := msg.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("no failover: %v", err)
	}
}

// 10. GET /v1/models for an Anthropic client ignores limit, after_id and
// before_id: limit=1 returns every model with has_more false, and a client
// paging with after_id gets the first page again.
func TestReviewAnthropicModelListHonoursLimit(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	req, _ := http.NewRequest(http.MethodGet, g.gateway.srv.URL+"/v1/models?limit=1", nil)
	req.Header.Set("x-api-key", g.key)
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if n := gjson.Get(body, "data.#").Int(); n != 1 || !gjson.Get(body, "has_more").Bool() {
		t.Fatalf("limit=1: %d models, has_more %v", n, gjson.Get(body, "has_more").Bool())
	}
}

// 11. Server tools are served only natively, and Anthropic bills each
// web search ($10 per 1000, usage.server_tool_use.web_search_requests; web
// fetches and code execution likewise). The native usage reader takes the
// token counts only: a priced request that ran three searches costs the
// operator $0.03 more than xroute charges the caller.
func TestReviewServerToolUseIsMetered(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"msg_s","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Found it."}],
			"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
			"output_tokens":5,"server_tool_use":{"web_search_requests":3}}}`)
	}))
	t.Cleanup(up.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "searcher", Type: "anthropic", BaseURL: up.URL, APIKey: "sk-ant-test-key-0001"})
		c.Models = append(c.Models, config.Model{Name: "search-test", Deployments: []config.Deployment{{Provider: "searcher", Model: "claude-x",
			InputPrice: "1000", OutputPrice: "2000"}}})
	}})
	topUp(t, g)
	r := postAnthropic(t, g, "/v1/messages", `{"model":"search-test","max_tokens":64,"tools":[{"type":"web_search_20250305","name":"web_search"}],
		"messages":[{"role":"user","content":"search the web"}]}`, nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	tokens := int64(10*1000+5*2000) * 1000 // nano-USD
	searches := int64(3 * 10_000_000)      // $0.01 each
	if rec := g.usageFor(r.Header.Get("x-request-id")); rec.CostNano < tokens+searches {
		t.Fatalf("cost %d nano-USD: the tokens' %d and nothing for 3 web searches (%d)", rec.CostNano, tokens, searches)
	}
}

// 12. A translating adapter that cannot express the caller's request
// returns a *providers.RequestError (the Gemini adapter for a PDF
// document, which the Messages ingress maps to a "file" part; or a
// tool_result answering an unknown tool_use id). Neither the router nor
// the handler knows that type: the caller gets 502 "The upstream provider
// failed." (an api_error Claude Code and the SDKs retry), and the
// router's judge counts it as a deployment failure. Claude Code resends
// the PDF on every later turn, so one conversation trips the Gemini
// deployment's breaker (5 failures) for every caller of the model.
func TestReviewUntranslatableRequestIsA400NotABreakerFailure(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	pdf := `{"model":"gemini-test","max_tokens":16,"messages":[{"role":"user","content":[{"type":"text","text":"Summarise"},
		{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"}}]}]}`
	for i := range 6 {
		r := postAnthropic(t, g.gateway, "/v1/messages", pdf, nil)
		if i == 0 && r.StatusCode != 400 {
			t.Errorf("a request the adapter cannot translate: %d %s, want a 400 invalid_request_error", r.StatusCode, r.body)
		}
	}
	r := postAnthropic(t, g.gateway, "/v1/messages", `{"model":"gemini-test","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if r.StatusCode != 200 {
		t.Fatalf("after one caller's untranslatable requests, everyone's: %d %s", r.StatusCode, r.body)
	}
}

// 13. When a request carries both Authorization and x-api-key, Anthropic's
// API authenticates with x-api-key (the mock, written to the reference,
// says "x-api-key wins when both are present"); xroute takes Authorization
// and never looks at x-api-key. A client or proxy that adds x-api-key next
// to an Authorization it inherited (another token, or an empty
// "Bearer " from an empty auth-token setting) is refused with 401 although
// its x-api-key is a valid xroute key.
func TestReviewXAPIKeyWinsOverAuthorizationForAnthropicClients(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	for name, auth := range map[string]string{"empty bearer": "Bearer ", "another token": "Bearer sk-ant-oat01-not-an-xroute-key"} {
		t.Run(name, func(t *testing.T) {
			r := postAnthropic(t, g.gateway, "/v1/messages", `{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
				map[string]string{"Authorization": auth})
			if r.StatusCode != 200 {
				t.Fatalf("valid x-api-key with Authorization %q: %d %s", auth, r.StatusCode, r.body)
			}
		})
	}
}

// 14. Claude Code's Sonnet with a 1M-token window ("sonnet[1m]") sends
// anthropic-beta context-1m-2025-08-07; the catalog gives
// claude-sonnet-4-5 a 200000-token context, and the router refuses any
// request whose estimate (pivot bytes / 4 + max_tokens) exceeds it, native
// or not: the conversation dies with a 400 at ~170k tokens although the
// caller paid for, and asked for, the 1M window. (The same check also
// counts max_tokens in full, while Sonnet 4.5 answers such requests and
// stops with model_context_window_exceeded.)
func TestReviewContextOneMillionBetaIsNotRefusedAt200k(t *testing.T) {
	t.Parallel()
	am := httptest.NewServer(anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: "sk-ant-test-key-0001"}}))
	t.Cleanup(am.Close)
	g := newGateway(t, gwOptions{maxBody: 4 << 20, mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "anthropic", Type: "anthropic", BaseURL: am.URL, APIKey: "sk-ant-test-key-0001"})
		c.Models = append(c.Models, config.Model{Name: "sonnet-1m", Deployments: []config.Deployment{{Provider: "anthropic", Model: "claude-sonnet-4-5-20250929"}}})
	}})
	topUp(t, g)
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20000) // ~900 kB: ~225k by the router's estimate
	r := postAnthropic(t, g, "/v1/messages?beta=true", `{"model":"sonnet-1m","max_tokens":32000,"messages":[{"role":"user","content":"`+long+`"}]}`,
		map[string]string{"anthropic-beta": "context-1m-2025-08-07"})
	if r.StatusCode != 200 {
		t.Fatalf("%d %.400s", r.StatusCode, r.body)
	}
}
