package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	official "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestLegacyCompletions drives POST /v1/completions with the official SDK:
// natively on the OpenAI mock, translated to chat on the others.
func TestLegacyCompletions(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := officialClient(g.gateway, g.key)
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			var raw *http.Response
			resp, err := c.Completions.New(ctx, official.CompletionNewParams{
				Model: official.CompletionNewParamsModel(m.model), Prompt: official.CompletionNewParamsPromptUnion{OfString: official.String("Once upon a time")},
				MaxTokens: official.Int(24),
			}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "text_completion" || !strings.HasPrefix(resp.ID, "cmpl-") || len(resp.Choices) != 1 || resp.Choices[0].Text == "" || resp.Usage.CompletionTokens == 0 {
				t.Fatalf("completion: %s", resp.RawJSON())
			}
			if raw.Header.Get("x-xroute-provider") != m.provider {
				t.Fatalf("served by %s", raw.Header.Get("x-xroute-provider"))
			}
			rec := g.usageFor(raw.Header.Get("x-request-id"))
			if rec.CompletionTokens != int(resp.Usage.CompletionTokens) || rec.PromptTokens != int(resp.Usage.PromptTokens) || rec.CostNano < 0 {
				t.Fatalf("usage record %+v vs %+v", rec, resp.Usage)
			}
			// Streamed, with the usage chunk asked for.
			st := c.Completions.NewStreaming(ctx, official.CompletionNewParams{
				Model: official.CompletionNewParamsModel(m.model), Prompt: official.CompletionNewParamsPromptUnion{OfString: official.String("Count")},
				MaxTokens: official.Int(24), StreamOptions: official.ChatCompletionStreamOptionsParam{IncludeUsage: official.Bool(true)},
			})
			var text, finish string
			var usage int64
			for st.Next() {
				ch := st.Current()
				if ch.Object != "text_completion" {
					t.Fatalf("chunk: %s", ch.RawJSON())
				}
				for _, cc := range ch.Choices {
					text += cc.Text
					if cc.FinishReason != "" {
						finish = string(cc.FinishReason)
					}
				}
				if ch.Usage.TotalTokens > 0 {
					usage = ch.Usage.CompletionTokens
				}
			}
			if err := st.Err(); err != nil || text == "" || finish == "" || usage == 0 {
				t.Fatalf("stream: err %v text %q finish %q usage %d", err, text, finish, usage)
			}
		})
	}
	// What only a real completions endpoint can do is refused on a chat
	// model, and works natively.
	var apiErr *official.Error
	_, err := c.Completions.New(ctx, official.CompletionNewParams{Model: "claude-test", Prompt: official.CompletionNewParamsPromptUnion{OfString: official.String("def f(")},
		Suffix: official.String("return x")})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "unsupported_by_model" || !strings.Contains(apiErr.Message, "suffix") {
		t.Fatalf("suffix on a chat model: %v", err)
	}
	resp, err := c.Completions.New(ctx, official.CompletionNewParams{Model: "gpt-4o-mini", N: official.Int(2), MaxTokens: official.Int(8),
		Prompt: official.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"a", "b"}}})
	if err != nil || len(resp.Choices) != 4 {
		t.Fatalf("n=2 over two prompts natively: %v %d", err, len(resp.Choices))
	}
}
