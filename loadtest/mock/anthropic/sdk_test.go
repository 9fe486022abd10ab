package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/xroute/xroute/loadtest/mock"
)

// These tests drive the mock with the official Go SDK (v2, API version
// 2026-10-21), as a gateway's clients would.

const testKey = "sk-ant-test"

// newClient starts a mock with cfg (and the test key) and returns an SDK
// client of it that does not retry.
func newClient(t *testing.T, cfg Config, opts ...option.RequestOption) (anthropic.Client, *Server) {
	t.Helper()
	cfg.APIKey = testKey
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	base := []option.RequestOption{option.WithBaseURL(ts.URL), option.WithAPIKey(testKey), option.WithHTTPClient(ts.Client()), option.WithMaxRetries(0)}
	return anthropic.NewClient(append(base, opts...)...), s
}

// clock is a settable clock for the prompt cache's TTLs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func userText(s string) anthropic.MessageParam {
	return anthropic.NewUserMessage(anthropic.NewTextBlock(s))
}

// cachedText is a text block with a cache breakpoint.
func cachedText(s string) anthropic.ContentBlockParamUnion {
	return anthropic.ContentBlockParamUnion{OfText: &anthropic.TextBlockParam{Text: s, CacheControl: anthropic.NewCacheControlEphemeralParam()}}
}

func prompt(u anthropic.Usage) int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// countOf is the count_tokens answer for the prompt of p.
func countOf(t *testing.T, c anthropic.Client, p anthropic.MessageNewParams) int64 {
	t.Helper()
	n, err := c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model: p.Model, Messages: p.Messages, System: anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: p.System},
		Thinking: p.Thinking, ToolChoice: p.ToolChoice, Tools: countTools(p.Tools),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n.InputTokens
}

func countTools(tools []anthropic.ToolUnionParam) []anthropic.MessageCountTokensToolUnionParam {
	var out []anthropic.MessageCountTokensToolUnionParam
	for _, t := range tools {
		out = append(out, anthropic.MessageCountTokensToolUnionParam{OfTool: t.OfTool})
	}
	return out
}

var weatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name: "get_weather", Description: anthropic.String("Weather of a city"),
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}},
}}

var timeTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name: "get_time", InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"tz": map[string]any{"type": "string"}}},
}}

func TestSDKPromptCaching(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	c, _ := newClient(t, Config{Now: clk.Now})
	ctx := context.Background()
	long := strings.Repeat("policy words ", 510) // 1020 words: above the model's 1024-token minimum with the framing
	cached := func(ttl anthropic.CacheControlEphemeralTTL) anthropic.MessageNewParams {
		cc := anthropic.NewCacheControlEphemeralParam()
		cc.TTL = ttl
		return anthropic.MessageNewParams{
			Model: "claude-sonnet-5-5", MaxTokens: 64,
			System:   []anthropic.TextBlockParam{{Text: "You are a gateway test."}, {Text: long, CacheControl: cc}},
			Messages: []anthropic.MessageParam{userText("hello there")},
		}
	}
	// framing 3, system 3 + 5 + 1020; then the message 3 + 2.
	const prefixTokens, rest = 3 + 3 + 5 + 1020, 3 + 2
	type want struct{ write, read, w5m, w1h int64 }
	steps := []struct {
		name    string
		ttl     anthropic.CacheControlEphemeralTTL
		advance time.Duration
		want    want
	}{
		{"first request writes the prefix", "", 0, want{write: prefixTokens, w5m: prefixTokens}},
		{"a repeat reads it", "", time.Minute, want{read: prefixTokens}},
		{"a read refreshes the 5m TTL", "", 4 * time.Minute, want{read: prefixTokens}},
		{"after 5 minutes it is written again", "", 5*time.Minute + time.Second, want{write: prefixTokens, w5m: prefixTokens}},
		{"a 1h breakpoint reads the same prefix and keeps it an hour", anthropic.CacheControlEphemeralTTLTTL1h, 0, want{read: prefixTokens}},
		{"1h entries outlive 5 minutes", anthropic.CacheControlEphemeralTTLTTL1h, 30 * time.Minute, want{read: prefixTokens}},
		{"and expire after an hour", anthropic.CacheControlEphemeralTTLTTL1h, time.Hour, want{write: prefixTokens, w1h: prefixTokens}},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		p := cached(st.ttl)
		msg, err := c.Messages.New(ctx, p)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		u := msg.Usage
		got := want{u.CacheCreationInputTokens, u.CacheReadInputTokens, u.CacheCreation.Ephemeral5mInputTokens, u.CacheCreation.Ephemeral1hInputTokens}
		if got != st.want || u.InputTokens != rest {
			t.Fatalf("%s: usage %+v (input %d), want %+v (input %d)", st.name, got, u.InputTokens, st.want, rest)
		}
		if n := countOf(t, c, p); n != prompt(u) {
			t.Fatalf("%s: count_tokens %d, prompt %d", st.name, n, prompt(u))
		}
	}

	// Claude Code moves its breakpoint to the newest message every turn;
	// the next turn finds the previous one within the 20-block lookback.
	turn1 := anthropic.MessageNewParams{Model: "claude-opus-5-5", MaxTokens: 64,
		System:   []anthropic.TextBlockParam{{Text: long, CacheControl: anthropic.NewCacheControlEphemeralParam()}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(cachedText("first question"))}}
	m1, err := c.Messages.New(ctx, turn1)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Usage.CacheReadInputTokens != 0 || m1.Usage.InputTokens != 0 {
		t.Fatalf("turn 1 usage %+v", m1.Usage)
	}
	turn2 := turn1
	turn2.Messages = []anthropic.MessageParam{userText("first question"), m1.ToParam(),
		anthropic.NewUserMessage(cachedText("second question"))}
	m2, err := c.Messages.New(ctx, turn2)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Usage.CacheReadInputTokens != m1.Usage.CacheCreationInputTokens || m2.Usage.CacheCreationInputTokens != prompt(m2.Usage)-m1.Usage.CacheCreationInputTokens || m2.Usage.InputTokens != 0 {
		t.Fatalf("turn 2 usage %+v after turn 1 %+v", m2.Usage, m1.Usage)
	}

	// A stream reports the same usage: the input side in message_start,
	// the cumulative counts in message_delta.
	p := cached("")
	stream := c.Messages.NewStreaming(ctx, p)
	defer stream.Close() // an unread body keeps its connection and its goroutines alive
	var acc anthropic.Message
	var start, delta anthropic.MessageDeltaUsage
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "message_start":
			start.InputTokens, start.CacheReadInputTokens = ev.Message.Usage.InputTokens, ev.Message.Usage.CacheReadInputTokens
		case "message_delta":
			delta = ev.Usage
		}
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if start.CacheReadInputTokens != prefixTokens || start.InputTokens != rest || delta.CacheReadInputTokens != prefixTokens || delta.InputTokens != rest || delta.OutputTokens != int64(mock.DefaultCompletionTokens) {
		t.Fatalf("stream usage: start %+v, delta %+v", start, delta)
	}
	if acc.Usage.CacheReadInputTokens != prefixTokens || acc.Usage.OutputTokens != int64(mock.DefaultCompletionTokens) {
		t.Fatalf("accumulated usage %+v", acc.Usage)
	}
}

func TestSDKCacheKnobsWin(t *testing.T) {
	c, _ := newClient(t, Config{CacheReadTokens: 4, CacheCreationTokens: 2})
	p := anthropic.MessageNewParams{Model: "m", MaxTokens: 10,
		System:   []anthropic.TextBlockParam{{Text: "be brief", CacheControl: anthropic.NewCacheControlEphemeralParam()}},
		Messages: []anthropic.MessageParam{userText("hello there")}}
	for i := 0; i < 2; i++ {
		msg, err := c.Messages.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if u := msg.Usage; u.CacheReadInputTokens != 4 || u.CacheCreationInputTokens != 2 || u.CacheCreation.Ephemeral5mInputTokens != 2 || prompt(u) != 3+3+2+3+2 {
			t.Fatalf("request %d usage %+v", i, u)
		}
	}
}

// streamed collects the events of a stream as "type" or "type:delta type"
// (pings, which the SDK drops, aside) and the accumulated message.
func streamed(t *testing.T, c anthropic.Client, p anthropic.MessageNewParams) ([]string, anthropic.Message) {
	t.Helper()
	stream := c.Messages.NewStreaming(context.Background(), p)
	defer stream.Close() // an unread body keeps its connection and its goroutines alive
	var names []string
	var acc anthropic.Message
	for stream.Next() {
		ev := stream.Current()
		name := ev.Type
		switch ev.Type {
		case "content_block_start":
			name += ":" + ev.ContentBlock.Type
		case "content_block_delta":
			name += ":" + ev.Delta.Type
		}
		if len(names) > 0 && names[len(names)-1] == name && ev.Type == "content_block_delta" {
			names[len(names)-1] = name + "+" // one or more
		} else if len(names) == 0 || names[len(names)-1] != name+"+" {
			names = append(names, name)
		}
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return names, acc
}

func blockTypes(m *anthropic.Message) string {
	var ts []string
	for _, b := range m.Content {
		ts = append(ts, b.Type)
	}
	return strings.Join(ts, ",")
}

func TestSDKThinkingToolRoundTrip(t *testing.T) {
	c, _ := newClient(t, Config{Config: mock.Config{ChunkTokens: 16}})
	ctx := context.Background()
	p := anthropic.MessageNewParams{Model: "claude-opus-5-5", MaxTokens: 4096,
		Thinking: anthropic.ThinkingConfigParamOfEnabled(2048),
		Tools:    []anthropic.ToolUnionParam{weatherTool},
		Messages: []anthropic.MessageParam{userText("what is the weather in Paris?")}}
	msg, err := c.Messages.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if blockTypes(msg) != "thinking,text,tool_use" || msg.StopReason != "tool_use" {
		t.Fatalf("blocks %s stop %s", blockTypes(msg), msg.StopReason)
	}
	th, call := msg.Content[0], msg.Content[2]
	if len(strings.Fields(th.Thinking)) != maxThinkingTokens || !validSignature(th.Signature, th.Thinking) {
		t.Fatalf("thinking block %+v", th)
	}
	if u := msg.Usage; u.OutputTokensDetails.ThinkingTokens != maxThinkingTokens || u.OutputTokens < maxThinkingTokens+3+2 {
		t.Fatalf("usage %+v", u)
	}
	var args struct{ City string }
	if err := json.Unmarshal(call.Input, &args); err != nil || call.Name != "get_weather" || !strings.HasPrefix(call.ID, "toolu_01") {
		t.Fatalf("tool_use %+v", call)
	}

	// The stream sends the same blocks, thinking first.
	names, acc := streamed(t, c, p)
	want := "message_start content_block_start:thinking content_block_delta:thinking_delta+ content_block_delta:signature_delta content_block_stop " +
		"content_block_start:text content_block_delta:text_delta content_block_stop " +
		"content_block_start:tool_use content_block_delta:input_json_delta+ content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	if acc.Content[0].Thinking != th.Thinking || acc.Content[0].Signature != th.Signature || string(acc.Content[2].Input) != string(call.Input) ||
		acc.Usage.OutputTokens != msg.Usage.OutputTokens || acc.Usage.OutputTokensDetails.ThinkingTokens != maxThinkingTokens || acc.StopReason != "tool_use" {
		t.Fatalf("streamed %+v\nplain %+v", acc, msg)
	}

	// The tool fails; the thinking block goes back with the tool use.
	next := p
	next.Messages = append([]anthropic.MessageParam{}, p.Messages...)
	next.Messages = append(next.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(call.ID, "city not found", true)))
	answer, err := c.Messages.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if blockTypes(answer) != "thinking,text" || answer.StopReason != "end_turn" || answer.Content[1].Text == "" {
		t.Fatalf("answer to the tool result: %s %s", blockTypes(answer), answer.StopReason)
	}
	if n := countOf(t, c, next); n != prompt(answer.Usage) {
		t.Fatalf("count_tokens %d, prompt %d", n, prompt(answer.Usage))
	}

	// Gateways must send thinking blocks back intact.
	tamper := func(f func(*anthropic.MessageParam)) anthropic.MessageNewParams {
		q := next
		q.Messages = append([]anthropic.MessageParam{}, next.Messages...)
		a := msg.ToParam()
		f(&a)
		q.Messages[1] = a
		return q
	}
	bad := []struct {
		name string
		p    anthropic.MessageNewParams
		msg  string
	}{
		{"modified thinking", tamper(func(a *anthropic.MessageParam) {
			a.OfAssistant.Content[0] = anthropic.NewThinkingBlock(th.Signature, th.Thinking+" more")
		}), "cannot be modified"},
		{"dropped thinking", tamper(func(a *anthropic.MessageParam) { a.OfAssistant.Content = a.OfAssistant.Content[1:] }), "Expected `thinking` or `redacted_thinking`"},
	}
	for _, b := range bad {
		_, err := c.Messages.New(ctx, b.p)
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, b.msg) {
			t.Fatalf("%s: %v", b.name, err)
		}
	}
}

func TestSDKThinkingVariants(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()

	// Adaptive thinking, effort low, display omitted: an empty thinking
	// text with its signature; the tokens still count.
	p := anthropic.MessageNewParams{Model: "claude-opus-5-5", MaxTokens: 100,
		Thinking:     anthropic.ThinkingConfigParamUnion{OfAdaptive: &anthropic.ThinkingConfigAdaptiveParam{Display: "omitted"}},
		OutputConfig: anthropic.OutputConfigParam{Effort: "low"},
		Messages:     []anthropic.MessageParam{userText("hello there")}}
	msg, err := c.Messages.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if blockTypes(msg) != "thinking,text" || msg.Content[0].Thinking != "" || msg.Content[0].Signature == "" ||
		msg.Usage.OutputTokensDetails.ThinkingTokens != 8 || msg.Usage.OutputTokens != 8+int64(mock.DefaultCompletionTokens) {
		t.Fatalf("adaptive omitted: %s %+v %+v", blockTypes(msg), msg.Content[0], msg.Usage)
	}
	names, acc := streamed(t, c, p)
	if got := strings.Join(names[:4], " "); got != "message_start content_block_start:thinking content_block_delta:signature_delta content_block_stop" || acc.Content[0].Signature != msg.Content[0].Signature {
		t.Fatalf("omitted thinking streamed as %s", strings.Join(names, " "))
	}

	// Interleaved thinking (beta): a budget above max_tokens is allowed,
	// and a thinking block precedes each later tool_use.
	bm, err := c.Beta.Messages.New(ctx, anthropic.BetaMessageNewParams{Model: "claude-opus-5-5", MaxTokens: 4096,
		Betas:    []anthropic.AnthropicBeta{anthropic.AnthropicBetaInterleavedThinking2025_05_14},
		Thinking: anthropic.BetaThinkingConfigParamUnion{OfEnabled: &anthropic.BetaThinkingConfigEnabledParam{BudgetTokens: 8192}},
		Tools: []anthropic.BetaToolUnionParam{
			{OfTool: &anthropic.BetaToolParam{Name: "get_weather", InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}},
			{OfTool: &anthropic.BetaToolParam{Name: "get_time", InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"tz": map[string]any{"type": "string"}}}}},
		},
		Messages: []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("weather and time?"))}})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, b := range bm.Content {
		types = append(types, b.Type)
	}
	if strings.Join(types, ",") != "thinking,text,tool_use,thinking,tool_use" || bm.Usage.OutputTokensDetails.ThinkingTokens != maxThinkingTokens+interleavedTokens {
		t.Fatalf("interleaved: %v %+v", types, bm.Usage)
	}
	// Without the beta the same budget is refused.
	_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: "m", MaxTokens: 4096, Thinking: anthropic.ThinkingConfigParamOfEnabled(8192),
		Messages: []anthropic.MessageParam{userText("hi")}})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "budget_tokens") {
		t.Fatalf("budget above max_tokens: %v", err)
	}
}

func TestSDKStopSequences(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	p := anthropic.MessageNewParams{Model: "m", MaxTokens: 100, Messages: []anthropic.MessageParam{userText("hello there")}}
	full, err := c.Messages.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields(full.Content[0].Text)
	p.StopSequences = []string{"zzz", " " + words[2]}
	for _, stream := range []bool{false, true} {
		var msg *anthropic.Message
		if stream {
			_, acc := streamed(t, c, p)
			msg = &acc
		} else if msg, err = c.Messages.New(ctx, p); err != nil {
			t.Fatal(err)
		}
		if msg.StopReason != "stop_sequence" || msg.StopSequence != " "+words[2] || msg.Content[0].Text != words[0]+" "+words[1] {
			t.Fatalf("stream %v: %s %q %q (full %q)", stream, msg.StopReason, msg.StopSequence, msg.Content[0].Text, full.Content[0].Text)
		}
	}
}

func TestSDKImagesAndDocuments(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	p := anthropic.MessageNewParams{Model: "m", MaxTokens: 50, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(
		anthropic.NewImageBlockBase64("image/png", pngB64),
		anthropic.NewImageBlock(anthropic.URLImageSourceParam{URL: "https://example.com/cat.jpg"}),
		anthropic.NewDocumentBlock(anthropic.Base64PDFSourceParam{Data: pdfB64}),
		anthropic.NewDocumentBlock(anthropic.PlainTextSourceParam{Data: "three plain words"}),
		anthropic.NewTextBlock("compare them"),
	)}}
	msg, err := c.Messages.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// framing 3, message 3, PDF 1 + 45/64, text document 3, text 2.
	if got := prompt(msg.Usage); got != 3+3+1+3+2 || countOf(t, c, p) != got {
		t.Fatalf("prompt %d, count %d", got, countOf(t, c, p))
	}
	p.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewImageBlockBase64("image/jpeg", pngB64))}
	_, err = c.Messages.New(ctx, p)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "appears to be a image/png image") {
		t.Fatalf("mismatched image: %v", err)
	}
}

func TestSDKCountTokens(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	p := anthropic.MessageNewParams{Model: "claude-opus-5-5", MaxTokens: 4096,
		System:     []anthropic.TextBlockParam{{Text: "You answer in one word."}},
		Tools:      []anthropic.ToolUnionParam{weatherTool, timeTool},
		ToolChoice: anthropic.ToolChoiceUnionParam{OfAuto: &anthropic.ToolChoiceAutoParam{}},
		Thinking:   anthropic.ThinkingConfigParamOfEnabled(1024),
		Messages:   []anthropic.MessageParam{userText("what time is it?")}}
	msg, err := c.Messages.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, c, p); n != prompt(msg.Usage) || n <= 3+3+5+3+4 {
		t.Fatalf("count_tokens %d, prompt %d", n, prompt(msg.Usage))
	}
	// A string system prompt counts as its single block.
	n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "m",
		System:   anthropic.MessageCountTokensParamsSystemUnion{OfString: anthropic.String("You answer in one word.")},
		Messages: []anthropic.MessageParam{userText("what time is it?")}})
	if err != nil || n.InputTokens != 3+3+5+3+4 {
		t.Fatalf("count %v %v", n, err)
	}
	// max_tokens is not a count_tokens field.
	_, err = c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "m", Messages: p.Messages}, option.WithJSONSet("max_tokens", 10))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Message != "max_tokens: Extra inputs are not permitted" {
		t.Fatalf("count_tokens with max_tokens: %v", err)
	}
}

func TestSDKModels(t *testing.T) {
	c, _ := newClient(t, Config{Config: mock.Config{Models: []string{"claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-4-5-20251001"}}})
	ctx := context.Background()
	page, err := c.Models.List(ctx, anthropic.ModelListParams{Limit: anthropic.Int(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || !page.HasMore || page.FirstID != "claude-opus-5-5" || page.LastID != "claude-sonnet-5-5" ||
		page.Data[0].Type != "model" || page.Data[1].DisplayName != "Claude Sonnet 5.5" || page.Data[0].CreatedAt.IsZero() {
		t.Fatalf("page %+v", page)
	}
	var ids []string
	it := c.Models.ListAutoPaging(ctx, anthropic.ModelListParams{Limit: anthropic.Int(1)})
	for it.Next() {
		ids = append(ids, it.Current().ID)
	}
	if it.Err() != nil || strings.Join(ids, ",") != "claude-opus-5-5,claude-sonnet-5-5,claude-haiku-4-5-20251001" {
		t.Fatalf("all models %v %v", ids, it.Err())
	}
	before, err := c.Models.List(ctx, anthropic.ModelListParams{BeforeID: anthropic.String("claude-haiku-4-5-20251001"), Limit: anthropic.Int(1)})
	if err != nil || len(before.Data) != 1 || before.Data[0].ID != "claude-sonnet-5-5" || !before.HasMore {
		t.Fatalf("before_id page %+v %v", before, err)
	}
	m, err := c.Models.Get(ctx, "claude-haiku-4-5-20251001", anthropic.ModelGetParams{})
	if err != nil || m.DisplayName != "Claude Haiku 4.5" || !m.Capabilities.Thinking.Types.Adaptive.Supported {
		t.Fatalf("model %+v %v", m, err)
	}
	_, err = c.Models.Get(ctx, "claude-nope", anthropic.ModelGetParams{})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Type() != "not_found_error" {
		t.Fatalf("unknown model: %v", err)
	}
}

func TestSDKErrors(t *testing.T) {
	c, _ := newClient(t, Config{Config: mock.Config{RetryAfter: 2 * time.Second}})
	wrongKey, _ := newClient(t, Config{}, option.WithAPIKey("sk-ant-wrong"))
	hi := []anthropic.MessageParam{userText("hi")}
	params := func(model string, msgs []anthropic.MessageParam) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 10, Messages: msgs}
	}
	system := anthropic.MessageParam{OfSystem: &anthropic.SystemMessageParam{Content: []anthropic.TextBlockParam{{Text: "be brief"}}}}
	tests := []struct {
		name   string
		client anthropic.Client
		p      anthropic.MessageNewParams
		opts   []option.RequestOption
		status int
		typ    string
		msg    string
	}{
		{"extra field", c, params("m", hi), []option.RequestOption{option.WithJSONSet("frequency_penalty", 0.5)}, 400, "invalid_request_error", "frequency_penalty: Extra inputs are not permitted"},
		{"temperature in 2026-10-21", c, params("m", hi), []option.RequestOption{option.WithJSONSet("temperature", 1)}, 400, "invalid_request_error", "temperature: Extra inputs are not permitted"},
		{"system message on a legacy model", c, params("claude-sonnet-4-5", []anthropic.MessageParam{userText("hi"), system}), nil, 400, "invalid_request_error", "role 'system' is not supported on this model"},
		{"system message first", c, params("claude-opus-5-5", []anthropic.MessageParam{system, userText("hi")}), nil, 400, "invalid_request_error", "must immediately follow a user message"},
		{"wrong key", wrongKey, params("m", hi), nil, 401, "authentication_error", "invalid x-api-key"},
		{"rate limited", c, params("m", []anthropic.MessageParam{userText("hi #mock:status=429")}), nil, 429, "rate_limit_error", "rate limit"},
		{"overloaded", c, params("m", []anthropic.MessageParam{userText("hi #mock:status=529")}), nil, 529, "overloaded_error", "Overloaded"},
		{"billing", c, params("m", []anthropic.MessageParam{userText("hi #mock:quota")}), nil, 402, "billing_error", "credit balance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.Messages.New(context.Background(), tt.p, tt.opts...)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v", err)
			}
			if apiErr.StatusCode != tt.status || string(apiErr.Type()) != tt.typ || !strings.Contains(apiErr.Message, tt.msg) || !strings.HasPrefix(apiErr.RequestID, "req_") {
				t.Fatalf("got %d %s %q (request %q)", apiErr.StatusCode, apiErr.Type(), apiErr.Message, apiErr.RequestID)
			}
			if tt.status != 429 {
				return
			}
			h := apiErr.Response.Header
			if h.Get("retry-after") != "2" || h.Get("anthropic-ratelimit-requests-remaining") != "0" {
				t.Fatalf("429 headers %v", h)
			}
			for _, name := range []string{"requests", "tokens", "input-tokens", "output-tokens"} {
				reset, err := time.Parse(time.RFC3339, h.Get("anthropic-ratelimit-"+name+"-reset"))
				if err != nil || h.Get("anthropic-ratelimit-"+name+"-limit") == "" || h.Get("anthropic-ratelimit-"+name+"-remaining") == "" || reset.IsZero() {
					t.Fatalf("%s headers %v", name, h)
				}
			}
		})
	}
	// The mid-conversation system message of a current model is accepted.
	if _, err := c.Messages.New(context.Background(), params("claude-opus-5-5", []anthropic.MessageParam{userText("hi"), system})); err != nil {
		t.Fatal(err)
	}
}

func TestSDKMidStreamError(t *testing.T) {
	c, s := newClient(t, Config{})
	stream := c.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "m", MaxTokens: 50,
		Messages: []anthropic.MessageParam{userText("hi #mock:stream-error")}})
	defer stream.Close() // an unread body keeps its connection and its goroutines alive
	var types []string
	for stream.Next() {
		types = append(types, stream.Current().Type)
	}
	var apiErr *anthropic.Error
	if !errors.As(stream.Err(), &apiErr) || apiErr.Type() != "overloaded_error" || apiErr.Message != "Overloaded" {
		t.Fatalf("stream error %v", stream.Err())
	}
	if strings.Join(types, " ") != "message_start content_block_start content_block_delta" {
		t.Fatalf("events before the error: %v", types)
	}
	if st := s.Stats(); st.Streams != 1 || st.Completed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSDKBetaClaudeCode sends a request shaped like Claude Code's: betas,
// cache breakpoints on system blocks and the last message, a
// mid-conversation system message, adaptive thinking with effort, context
// management, metadata, deferred and server tools.
func TestSDKBetaClaudeCode(t *testing.T) {
	c, _ := newClient(t, Config{CacheMinTokens: -1}) // a short prompt: cache any prefix
	cc := anthropic.BetaCacheControlEphemeralParam{TTL: "1h"}
	p := anthropic.BetaMessageNewParams{Model: "claude-opus-5-5", MaxTokens: 16000,
		Betas: []anthropic.AnthropicBeta{"claude-code-20250219", anthropic.AnthropicBetaInterleavedThinking2025_05_14,
			anthropic.AnthropicBetaContextManagement2025_06_27, "advanced-tool-use-2025-11-20"},
		System: []anthropic.BetaTextBlockParam{{Text: "You are Claude Code."}, {Text: "Project instructions.", CacheControl: cc}},
		Messages: []anthropic.BetaMessageParam{
			anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("fix the bug")),
			{OfSystem: &anthropic.BetaSystemMessageParam{Content: []anthropic.BetaSystemMessageParamContentUnion{{OfText: &anthropic.BetaTextBlockParam{Text: "Reminder: run the tests."}}}}},
		},
		Metadata:          anthropic.BetaMetadataParam{UserID: anthropic.String(`{"device_id":"d","session_id":"s"}`)},
		Thinking:          anthropic.BetaThinkingConfigParamUnion{OfAdaptive: &anthropic.BetaThinkingConfigAdaptiveParam{}},
		OutputConfig:      anthropic.BetaOutputConfigParam{Effort: "medium"},
		ContextManagement: anthropic.BetaContextManagementConfigParam{Edits: []anthropic.BetaContextManagementConfigEditUnionParam{{OfClearToolUses20250919: &anthropic.BetaClearToolUses20250919EditParam{}}}},
		Tools: []anthropic.BetaToolUnionParam{
			{OfTool: &anthropic.BetaToolParam{Name: "Bash", InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"command": map[string]any{"type": "string"}}}, CacheControl: cc}},
			{OfTool: &anthropic.BetaToolParam{Name: "NotebookEdit", DeferLoading: anthropic.Bool(true), InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"cell": map[string]any{"type": "string"}}}}},
			{OfWebSearchTool20250305: &anthropic.BetaWebSearchTool20250305Param{}},
			{OfBashTool20250124: &anthropic.BetaToolBash20250124Param{}},
			{OfTextEditor20250728: &anthropic.BetaToolTextEditor20250728Param{}},
			{OfCodeExecutionTool20250825: &anthropic.BetaCodeExecutionTool20250825Param{}},
		},
	}
	msg, err := c.Beta.Messages.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, b := range msg.Content {
		types = append(types, b.Type)
	}
	// Adaptive thinking (effort medium), a preamble, then the one custom
	// tool that is not deferred.
	if strings.Join(types, ",") != "thinking,text,tool_use" || msg.Content[2].Name != "Bash" || msg.Usage.OutputTokensDetails.ThinkingTokens != 24 {
		t.Fatalf("blocks %v usage %+v", types, msg.Usage)
	}
	if !msg.ContextManagement.JSON.AppliedEdits.Valid() || msg.Usage.CacheCreationInputTokens == 0 || msg.Usage.CacheCreation.Ephemeral1hInputTokens != msg.Usage.CacheCreationInputTokens {
		t.Fatalf("context management %+v usage %+v", msg.ContextManagement, msg.Usage)
	}
	count, err := c.Beta.Messages.CountTokens(context.Background(), anthropic.BetaMessageCountTokensParams{Model: p.Model, Messages: p.Messages,
		Betas: p.Betas, ContextManagement: p.ContextManagement,
		System: anthropic.BetaMessageCountTokensParamsSystemUnion{OfBetaTextBlockArray: p.System}})
	if err != nil || count.ContextManagement.OriginalInputTokens != count.InputTokens {
		t.Fatalf("beta count %+v %v", count, err)
	}

	// The same request streamed.
	stream := c.Beta.Messages.NewStreaming(context.Background(), p)
	defer stream.Close() // an unread body keeps its connection and its goroutines alive
	var acc anthropic.BetaMessage
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 3 || acc.Content[0].Signature != msg.Content[0].Signature || acc.Usage.OutputTokens != msg.Usage.OutputTokens || acc.StopReason != "tool_use" {
		t.Fatalf("streamed %+v", acc)
	}
	// Rate-limit headers come with every answer.
	var raw *http.Response
	if _, err := c.Beta.Messages.New(context.Background(), p, option.WithResponseInto(&raw)); err != nil || raw.Header.Get("anthropic-ratelimit-input-tokens-limit") == "" {
		t.Fatalf("headers %v %v", raw, err)
	}
}
