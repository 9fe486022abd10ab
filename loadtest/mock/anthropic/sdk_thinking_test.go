package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/xroute/xroute/loadtest/mock"
)

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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
