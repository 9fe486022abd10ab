package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

func anthropicClient(g *gateway, key string, opts ...aoption.RequestOption) *anthropic.Client {
	base := []aoption.RequestOption{aoption.WithBaseURL(g.srv.URL), aoption.WithAPIKey(key), aoption.WithMaxRetries(0)}
	c := anthropic.NewClient(append(base, opts...)...)
	return &c
}

// msgModels are the deployments every Messages test runs against.
var msgModels = []struct{ model, provider string }{
	{"claude-test", "claude"},  // Anthropic: native passthrough
	{"gpt-4o-mini", "primary"}, // OpenAI: translated
	{"gemini-test", "google"},  // Gemini: translated
	{"compat-test", "compat"},  // OpenAI-compatible chat: translated
}

func userText(s string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(s))}
}

func TestMessagesCreate(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	for _, m := range msgModels {
		t.Run(m.model, func(t *testing.T) {
			var raw *http.Response
			c := anthropicClient(g.gateway, g.key)
			msg, err := c.Messages.New(ctx, anthropic.MessageNewParams{
				Model: anthropic.Model(m.model), MaxTokens: 64, Messages: userText("Say hello"),
				System: []anthropic.TextBlockParam{{Text: "Be brief."}},
			}, aoption.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(msg.ID, "msg_") || msg.Type != "message" || msg.Role != "assistant" || msg.StopReason != "end_turn" || len(msg.Content) == 0 || msg.Content[0].Text == "" {
				t.Fatalf("message: %s", msg.RawJSON())
			}
			if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
				t.Fatalf("usage: %s", msg.RawJSON())
			}
			if raw.Header.Get("x-xroute-provider") != m.provider || raw.Header.Get("request-id") == "" {
				t.Fatalf("headers %v", raw.Header)
			}
			rec := g.usageFor(raw.Header.Get("x-request-id"))
			if rec.CompletionTokens != int(msg.Usage.OutputTokens) || rec.Status != 200 || rec.Model != m.model {
				t.Fatalf("usage record %+v vs %s", rec, msg.RawJSON())
			}
		})
	}
}

func TestMessagesStream(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	for _, m := range msgModels {
		t.Run(m.model, func(t *testing.T) {
			c := anthropicClient(g.gateway, g.key)
			st := c.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: anthropic.Model(m.model), MaxTokens: 64, Messages: userText("Count to five")})
			var msg anthropic.Message
			var types []string
			var text string
			var startInput int64 = -1
			for st.Next() {
				ev := st.Current()
				types = append(types, ev.Type)
				if ev.Type == "message_start" {
					// Native: the upstream's count; translated: xroute's
					// estimate, counted when the translated stream starts.
					startInput = ev.Message.Usage.InputTokens
				}
				if err := msg.Accumulate(ev); err != nil {
					t.Fatal(err)
				}
				if ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" {
					text += ev.Delta.Text
				}
			}
			if err := st.Err(); err != nil {
				t.Fatalf("stream: %v (%v)", err, types)
			}
			want := []string{"message_start", "content_block_start", "content_block_delta"}
			var seen []string
			for _, ty := range types {
				if ty != "ping" && (len(seen) == 0 || seen[len(seen)-1] != ty) {
					seen = append(seen, ty)
				}
			}
			if len(seen) < 6 || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] ||
				seen[len(seen)-3] != "content_block_stop" || seen[len(seen)-2] != "message_delta" || seen[len(seen)-1] != "message_stop" {
				t.Fatalf("events %v", types)
			}
			if startInput <= 0 {
				t.Fatalf("message_start reports %d input tokens (%v)", startInput, types)
			}
			if text == "" || msg.Content[0].Text != text || msg.StopReason != "end_turn" || msg.Usage.OutputTokens == 0 || msg.Usage.InputTokens == 0 {
				t.Fatalf("accumulated %s (text %q)", msg.RawJSON(), text)
			}
		})
	}
}

var weatherToolA = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name: "get_weather", Description: anthropic.String("Current weather in a city."),
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}},
}}

func TestMessagesToolUseRoundTrip(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	for _, m := range msgModels {
		t.Run(m.model, func(t *testing.T) {
			c := anthropicClient(g.gateway, g.key)
			ask := userText("Weather in Paris?")
			first, err := c.Messages.New(ctx, anthropic.MessageNewParams{Model: anthropic.Model(m.model), MaxTokens: 256, Messages: ask,
				Tools: []anthropic.ToolUnionParam{weatherToolA}, ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}}})
			if err != nil {
				t.Fatal(err)
			}
			var use anthropic.ToolUseBlock
			for _, b := range first.Content {
				if b.Type == "tool_use" {
					use = b.AsToolUse()
				}
			}
			if first.StopReason != "tool_use" || use.Name != "get_weather" || use.ID == "" || !json.Valid(use.Input) || !gjson.GetBytes(use.Input, "city").Exists() {
				t.Fatalf("first turn: %s", first.RawJSON())
			}
			msgs := append(ask, first.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, `{"temperature_c": 21}`, false)))
			second, err := c.Messages.New(ctx, anthropic.MessageNewParams{Model: anthropic.Model(m.model), MaxTokens: 256, Messages: msgs, Tools: []anthropic.ToolUnionParam{weatherToolA}})
			if err != nil {
				t.Fatal(err)
			}
			if second.StopReason != "end_turn" || second.Content[0].Text == "" {
				t.Fatalf("after the tool: %s", second.RawJSON())
			}
			// Streamed, the input arrives as input_json_delta.
			st := c.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: anthropic.Model(m.model), MaxTokens: 256, Messages: ask,
				Tools: []anthropic.ToolUnionParam{weatherToolA}, ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}}})
			var acc anthropic.Message
			var partial string
			for st.Next() {
				ev := st.Current()
				if err := acc.Accumulate(ev); err != nil {
					t.Fatal(err)
				}
				if ev.Type == "content_block_delta" && ev.Delta.Type == "input_json_delta" {
					partial += ev.Delta.PartialJSON
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			last := acc.Content[len(acc.Content)-1]
			if acc.StopReason != "tool_use" || last.Type != "tool_use" || partial == "" || !json.Valid(last.Input) {
				t.Fatalf("streamed tool use: %s (partial %q)", acc.RawJSON(), partial)
			}
		})
	}
}

func TestMessagesImageInput(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	for _, m := range msgModels {
		t.Run(m.model, func(t *testing.T) {
			c := anthropicClient(g.gateway, g.key)
			msg, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{Model: anthropic.Model(m.model), MaxTokens: 64,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is this?"), anthropic.NewImageBlockBase64("image/png", "iVBORw0KGgo="))}})
			if err != nil || msg.Content[0].Text == "" {
				t.Fatalf("%v %v", err, msg)
			}
		})
	}
}

func TestMessagesCountTokensAndModels(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := anthropicClient(g.gateway, g.key)
	msgs := userText("How many tokens is this sentence?")
	created, err := c.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-test", MaxTokens: 16, Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	var raw *http.Response
	n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "claude-test", Messages: msgs}, aoption.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("x-xroute-token-count") != "exact" || n.InputTokens != created.Usage.InputTokens+created.Usage.CacheReadInputTokens+created.Usage.CacheCreationInputTokens {
		t.Fatalf("native count %d (%s), the create's input %+v", n.InputTokens, raw.Header.Get("x-xroute-token-count"), created.Usage)
	}
	n, err = c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "compat-test", Messages: msgs}, aoption.WithResponseInto(&raw))
	if err != nil || raw.Header.Get("x-xroute-token-count") != "estimate" || n.InputTokens < 5 {
		t.Fatalf("estimate: %v %s %d", err, raw.Header.Get("x-xroute-token-count"), n.InputTokens)
	}
	page, err := c.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mi := range page.Data {
		found = found || (mi.ID == "claude-test" && mi.Type == "model" && !mi.CreatedAt.IsZero())
	}
	if !found || page.FirstID == "" {
		t.Fatalf("models: %s", page.RawJSON())
	}
	one, err := c.Models.Get(ctx, "gemini-test", anthropic.ModelGetParams{})
	if err != nil || one.ID != "gemini-test" {
		t.Fatalf("model: %v %v", err, one)
	}
}

func TestMessagesErrorsAreAnthropicShaped(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	var apiErr *anthropic.Error
	check := func(t *testing.T, err error, status int, typ string) {
		t.Helper()
		if !errors.As(err, &apiErr) || apiErr.StatusCode != status || gjson.Get(apiErr.RawJSON(), "error.type").Str != typ || gjson.Get(apiErr.RawJSON(), "type").Str != "error" {
			t.Fatalf("got %v, want %d %s", err, status, typ)
		}
	}
	_, err := anthropicClient(g.gateway, "xr-nope").Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-test", MaxTokens: 8, Messages: userText("hi")})
	check(t, err, 401, "authentication_error")
	_, err = anthropicClient(g.gateway, g.key).Messages.New(ctx, anthropic.MessageNewParams{Model: "no-such-model", MaxTokens: 8, Messages: userText("hi")})
	check(t, err, 404, "not_found_error")
	ck, _, kerr := g.app.Keys.Create(ctx, keys.CreateParams{Name: "chat-only", AllowedEndpoints: []string{keys.EndpointChat}})
	if kerr != nil {
		t.Fatal(kerr)
	}
	_, err = anthropicClient(g.gateway, ck).Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-test", MaxTokens: 8, Messages: userText("hi")})
	check(t, err, 403, "permission_error")
	// An overloaded upstream is Anthropic's 529, which Claude Code retries.
	g.gateway.primary.SetConfig(mock.Config{APIKey: providerKey, FailRate503: 1})
	_, err = anthropicClient(g.gateway, g.key).Messages.New(ctx, anthropic.MessageNewParams{Model: "gpt-4o-mini", MaxTokens: 8, Messages: userText("hi")})
	check(t, err, 529, "overloaded_error")
	g.gateway.primary.SetConfig(mock.Config{APIKey: providerKey})
	// Bad requests, raw: Anthropic's wording and shape.
	for _, body := range []string{`{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}`, `{"model":"claude-test","max_tokens":8,"messages":[]}`,
		`{"model":"claude-test","max_tokens":8,"messages":[{"role":"tool","content":"x"}]}`, `not json`,
		`{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`} {
		r := postAnthropic(t, g.gateway, "/v1/messages", body, nil)
		if r.StatusCode != 400 || gjson.Get(r.body, "error.type").Str != "invalid_request_error" || gjson.Get(r.body, "type").Str != "error" {
			t.Fatalf("%s: %d %s", body, r.StatusCode, r.body)
		}
	}
}

// postAnthropic posts a raw Messages body as Claude Code does (x-api-key,
// anthropic-version, ?beta=true), with extra headers.
func postAnthropic(t *testing.T, g *gateway, path, body string, hdr map[string]string) rawResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, strings.NewReader(body))
	req.Header.Set("x-api-key", g.key)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return rawResponse{resp, sb.String()}
}

// TestMessagesClaudeCodeReplay replays a request shaped like Claude
// Code's (system blocks with cache_control, 30+ tools one deferred, a
// thinking turn and a tool_result passed back, a role "system" message,
// adaptive thinking with output_config, context_management, its
// anthropic-beta list, ?beta=true, stream) natively and translated, and
// checks what the client needs.
func TestMessagesClaudeCodeReplay(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	body, err := os.ReadFile("../ingress/messages/testdata/req_claude_code.json")
	if err != nil {
		t.Fatal(err)
	}
	// 30 more tools, as Claude Code sends.
	for i := range 30 {
		body, _ = sjson.SetRawBytes(body, "tools.-1", []byte(`{"name":"Tool`+strconv.Itoa(i)+`","description":"A tool.","input_schema":{"type":"object","properties":{"x":{"type":"string"}}}}`))
	}
	betas := "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,advanced-tool-use-2025-11-20"
	for _, m := range msgModels {
		t.Run(m.model, func(t *testing.T) {
			b, _ := sjson.SetBytes(body, "model", m.model)
			r := postAnthropic(t, g.gateway, "/v1/messages?beta=true", string(b), map[string]string{"anthropic-beta": betas, "x-app": "cli", "Authorization": "Bearer " + g.key})
			if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%d %s", r.StatusCode, tail(r.body))
			}
			var types []string
			var stop string
			for _, ev := range strings.Split(strings.TrimSpace(r.body), "\n\n") {
				_, data, _ := strings.Cut(ev, "data: ")
				types = append(types, gjson.Get(data, "type").Str)
				if s := gjson.Get(data, "delta.stop_reason").Str; s != "" {
					stop = s
				}
			}
			if types[0] != "message_start" || types[len(types)-1] != "message_stop" || stop == "" || !slices.Contains(types, "content_block_delta") {
				t.Fatalf("events %v", types)
			}
			if m.provider == "claude" {
				// Natively: the betas and version went upstream, the system turn
				// was folded into system, and nothing else changed.
				h := g.claude.header(t, "/v1/messages")
				if h.Get("anthropic-beta") != betas || h.Get("anthropic-version") != "2023-06-01" {
					t.Fatalf("upstream headers %v", h)
				}
				up := g.claude.last(t, "/v1/messages")
				if gjson.GetBytes(up, `messages.#(role=="system")`).Exists() || !strings.Contains(gjson.GetBytes(up, "system").Raw, "An extra system turn") ||
					gjson.GetBytes(up, "tools.#").Int() != 33 || !gjson.GetBytes(up, "context_management").Exists() || !strings.Contains(string(up), "<system-reminder>") {
					t.Fatalf("native body: %.1500s", up)
				}
			}
		})
	}
}

// TestMessagesKeepAlivePings: a Messages stream whose upstream goes quiet
// (here 250 ms between tokens, a keep-alive of 40 ms) gets Anthropic's
// ping events meanwhile, and its answer is intact.
func TestMessagesKeepAlivePings(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{TokensPerSec: 4}, mutate: func(c *config.Config) {
		c.Server.StreamKeepAlive = 40 * time.Millisecond
	}})
	r := postAnthropic(t, g, "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":3,"stream":true,"messages":[{"role":"user","content":"slowly"}]}`, nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	pings, text := 0, ""
	var types []string
	for _, ev := range strings.Split(strings.TrimSpace(r.body), "\n\n") {
		_, data, _ := strings.Cut(ev, "data: ")
		ty := gjson.Get(data, "type").Str
		types = append(types, ty)
		switch ty {
		case "ping":
			pings++
		case "content_block_delta":
			text += gjson.Get(data, "delta.text").Str
		}
	}
	if pings < 2 || text == "" || types[len(types)-1] != "message_stop" {
		t.Fatalf("%d pings, text %q, events %v", pings, text, types)
	}
}

// TestMessagesCacheTokensArePricedAtTheirRates: a native Claude request
// with cache_control breakpoints writes the prefix to the prompt cache,
// then reads it; the usage records keep both counts and the costs price
// them at the cache-write and cache-read rates.
func TestMessagesCacheTokensArePricedAtTheirRates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The claude deployment: 1000 USD/M input, 100 cached, 1250 cache writes, 2000 output.
	g := newRespGateway(t, config.Model{Name: "claude-priced", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5",
		InputPrice: "1000", CachedInputPrice: "100", CacheWriteInputPrice: "1250", OutputPrice: "2000"}}})
	if _, _, err := g.app.Ledger.TopUp(ctx, "acct_default", 1_000_000*1_000_000_000, "t", "test"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("You are a careful assistant. ", 220) // above claude-sonnet-4-5's 1024-token minimum
	body := `{"model":"claude-priced","max_tokens":16,"system":[{"type":"text","text":"` + long + `","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}`
	var recs [2]struct {
		in, write, read, out int64
		cost, saved          int64
	}
	for i := range 2 {
		r := postAnthropic(t, g.gateway, "/v1/messages", body, nil)
		if r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
		u := gjson.Get(r.body, "usage")
		rec := g.usageFor(r.Header.Get("x-request-id"))
		recs[i].in, recs[i].write, recs[i].read, recs[i].out = u.Get("input_tokens").Int(), u.Get("cache_creation_input_tokens").Int(), u.Get("cache_read_input_tokens").Int(), u.Get("output_tokens").Int()
		recs[i].cost, recs[i].saved = rec.CostNano, rec.PromptCacheSavedNano
		if rec.CacheWriteTokens != int(recs[i].write) || rec.CachedTokens != int(recs[i].read) || rec.PromptTokens != int(recs[i].in+recs[i].write+recs[i].read) {
			t.Fatalf("record %+v vs usage %s", rec, u.Raw)
		}
		// nano-USD: per-M prices × tokens / 1000.
		want := (recs[i].in*1000 + recs[i].write*1250 + recs[i].read*100 + recs[i].out*2000) * 1000
		if rec.CostNano != want {
			t.Fatalf("turn %d cost %d, want %d (usage %s)", i, rec.CostNano, want, u.Raw)
		}
	}
	if recs[0].write == 0 || recs[1].read == 0 || recs[1].read != recs[0].write {
		t.Fatalf("cache write then read: %+v", recs)
	}
	// Savings against the uncached price (every cache token at 1000):
	// a write costs 250 more per token, a read 900 less.
	for i, r := range recs {
		if want := (r.read*900 - r.write*250) * 1000; r.saved != want {
			t.Fatalf("turn %d saved %d, want %d (%+v)", i, r.saved, want, r)
		}
	}
	if recs[0].saved >= 0 || recs[1].saved <= 0 {
		t.Fatalf("the write turn must cost more than uncached, the read turn less: %+v", recs)
	}

	// The report per account, key and model and the request log show the
	// same: hit ratio, cache writes, money saved.
	admin := g.adminKey(t)
	rep := adminGet(t, g.gateway, admin, "/usage/report?group_by=account,key,model&model=claude-priced", http.StatusOK)
	rows := rep["data"].([]any)
	if len(rows) != 1 {
		t.Fatalf("report rows %v", rows)
	}
	row := rows[0].(map[string]any)
	prompt := recs[0].in + recs[0].write + recs[0].read + recs[1].in + recs[1].write + recs[1].read
	saved := recs[0].saved + recs[1].saved
	wantRatio := math.Round(float64(recs[1].read)/float64(prompt)*10000) / 10000
	if row["cached_tokens"] != float64(recs[1].read) || row["cache_write_tokens"] != float64(recs[0].write) ||
		row["prompt_cache_hit_ratio"] != wantRatio || row["prompt_cache_saved_nano"] != float64(saved) ||
		row["prompt_cache_saved_usd"] != billing.FormatUSD(saved) || row["key_id"] == "" || row["account_id"] == "" {
		t.Fatalf("report row %v, want cached %d, written %d, ratio %v, saved %d", row, recs[1].read, recs[0].write, wantRatio, saved)
	}
	log := adminGet(t, g.gateway, admin, "/requests?model=claude-priced&limit=1", http.StatusOK)
	last := log["data"].([]any)[0].(map[string]any)
	if last["cached_tokens"] != float64(recs[1].read) || last["cache_write_tokens"] != float64(recs[1].write) ||
		last["prompt_cache_saved_usd"] != billing.Nano(recs[1].saved).String() {
		t.Fatalf("request log row %v, want turn 2 %+v", last, recs[1])
	}
	// The metrics count the cache's tokens by model and deployment.
	dep := "claude/claude-sonnet-4-5"
	g.eventually("prompt cache tokens", func(s scrape) bool {
		return s.value("xroute_prompt_cache_tokens_total", "model", "claude-priced", "deployment", dep, "type", "read") == float64(recs[1].read) &&
			s.value("xroute_prompt_cache_tokens_total", "model", "claude-priced", "deployment", dep, "type", "write") == float64(recs[0].write+recs[1].write)
	})
}

// TestMessagesThinking: extended thinking natively (Anthropic's thinking
// blocks and signatures, passed back on the next turn as they are) and
// translated (Gemini's thought summary shown as a thinking block, because
// the caller asked for thinking; its reasoning effort mapped from the
// budget).
func TestMessagesThinking(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := anthropicClient(g.gateway, g.key)
	for _, m := range []struct{ model, provider string }{{"claude-test", "claude"}, {"gemini-test", "google"}} {
		t.Run(m.model, func(t *testing.T) {
			p := anthropic.MessageNewParams{Model: anthropic.Model(m.model), MaxTokens: 4096, Messages: userText("Think, then answer."),
				Thinking: anthropic.ThinkingConfigParamOfEnabled(2048)}
			st := c.Messages.NewStreaming(ctx, p)
			var msg anthropic.Message
			var deltas []string
			for st.Next() {
				ev := st.Current()
				if err := msg.Accumulate(ev); err != nil {
					t.Fatal(err)
				}
				if ev.Type == "content_block_delta" {
					deltas = append(deltas, ev.Delta.Type)
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) < 2 || msg.Content[0].Type != "thinking" || msg.Content[0].Thinking == "" || msg.Content[0].Signature == "" ||
				!slices.Contains(deltas, "thinking_delta") || !slices.Contains(deltas, "signature_delta") || msg.Content[len(msg.Content)-1].Type != "text" {
				t.Fatalf("thinking answer: %s (deltas %v)", msg.RawJSON(), deltas)
			}
			// The next turn passes the thinking back as it came.
			p.Messages = append(p.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewTextBlock("And again?")))
			if _, err := c.Messages.New(ctx, p); err != nil {
				t.Fatalf("second turn with the thinking passed back: %v", err)
			}
		})
	}
}
