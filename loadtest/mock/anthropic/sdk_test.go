package anthropic

import (
	"context"
	"errors"
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
	t.Parallel()
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
	t.Parallel()
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

func TestSDKImagesAndDocuments(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
