package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	official "github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
	azuremock "github.com/xroute/xroute/loadtest/mock/azure"
	bedrockmock "github.com/xroute/xroute/loadtest/mock/bedrock"
	geminimock "github.com/xroute/xroute/loadtest/mock/gemini"
)

// nativeGateway is xroute in front of the OpenAI mock ("primary"), the
// Anthropic mock ("claude") and the Gemini mock ("google"), each exposed
// under its own public model name.
func nativeGateway(t *testing.T) *gateway {
	t.Helper()
	am := httptest.NewServer(anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: "sk-ant-test-key-0001"}, CacheReadTokens: 2}))
	t.Cleanup(am.Close)
	gm := httptest.NewServer(geminimock.New(geminimock.Config{Config: mock.Config{APIKey: "AIza-test-key-0001"}}))
	t.Cleanup(gm.Close)
	az := httptest.NewServer(azuremock.New(azuremock.Config{Config: mock.Config{APIKey: "azure-test-key-0001"}}))
	t.Cleanup(az.Close)
	br := httptest.NewServer(bedrockmock.New(bedrockmock.Config{AccessKeyID: "AKIDTEST0001", SecretAccessKey: "secret-test-0001", Region: "us-east-1"}))
	t.Cleanup(br.Close)
	return newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers,
			// Free: the mocks' provider/model addresses are served too.
			config.Provider{Name: "claude", Type: "anthropic", BaseURL: am.URL, APIKey: "sk-ant-test-key-0001", Free: true},
			config.Provider{Name: "google", Type: "gemini", BaseURL: gm.URL, APIKey: "AIza-test-key-0001"},
			config.Provider{Name: "azure", Type: "azure", BaseURL: az.URL, APIKey: "azure-test-key-0001", Free: true},
			config.Provider{Name: "aws", Type: "bedrock", BaseURL: br.URL, Region: "us-east-1", APIKey: "AKIDTEST0001:secret-test-0001"},
		)
		c.Models = append(c.Models,
			config.Model{Name: "claude-test", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5"}}},
			config.Model{Name: "gemini-test", Deployments: []config.Deployment{{Provider: "google", Model: "gemini-2.5-flash"}}},
			config.Model{Name: "azure-test", Deployments: []config.Deployment{{Provider: "azure", Model: "my-gpt-4o"}}},
			config.Model{Name: "bedrock-test", Deployments: []config.Deployment{{Provider: "aws", Model: "anthropic.claude-3-5-haiku-20241022-v1:0"}}},
			config.Model{Name: "embed-openai", Deployments: []config.Deployment{{Provider: "primary", Model: "text-embedding-3-small"}}},
			config.Model{Name: "embed-gemini", Deployments: []config.Deployment{{Provider: "google", Model: "gemini-embedding-001"}}},
		)
	}})
}

// TestEveryAdapterThroughTheGateway drives each native adapter with the
// same OpenAI SDK calls over real HTTP: text, stream with usage, tools.
func TestEveryAdapterThroughTheGateway(t *testing.T) {
	t.Parallel()
	g := nativeGateway(t)
	ctx := context.Background()
	for _, model := range []string{"gpt-4o-mini", "claude-test", "gemini-test", "azure-test", "bedrock-test"} {
		t.Run(model+"/text", func(t *testing.T) {
			resp, err := goClient(g).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{
				Model: model, Messages: []goopenai.ChatCompletionMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Say hello"}}, MaxTokens: 32,
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content == "" || resp.Choices[0].FinishReason == "" || resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 {
				t.Fatalf("%+v", resp)
			}
		})
		t.Run(model+"/stream", func(t *testing.T) {
			st, err := goClient(g).CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{
				Model: model, Stream: true, StreamOptions: &goopenai.StreamOptions{IncludeUsage: true},
				Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Count please"}}, MaxTokens: 32,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var text string
			var usage *goopenai.Usage
			var finish goopenai.FinishReason
			for {
				c, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.Usage != nil {
					usage = c.Usage
				}
				for _, ch := range c.Choices {
					text += ch.Delta.Content
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			if text == "" || finish == "" || usage == nil || usage.CompletionTokens == 0 {
				t.Fatalf("text %q finish %q usage %+v", text, finish, usage)
			}
			rec := g.usageFor(st.Header().Get("x-request-id"))
			if rec.CompletionTokens != usage.CompletionTokens || rec.PromptTokens != usage.PromptTokens {
				t.Fatalf("metered %+v, streamed usage %+v", rec, usage)
			}
		})
		t.Run(model+"/tools streamed", func(t *testing.T) {
			params := official.ChatCompletionNewParams{
				Model:    model,
				Messages: []official.ChatCompletionMessageParamUnion{official.UserMessage("Weather in Paris?")},
				Tools: []official.ChatCompletionToolUnionParam{official.ChatCompletionFunctionTool(official.FunctionDefinitionParam{
					Name:       "get_weather",
					Parameters: official.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
				})},
			}
			st := officialClient(g, g.key).Chat.Completions.NewStreaming(ctx, params)
			acc := official.ChatCompletionAccumulator{}
			for st.Next() {
				acc.AddChunk(st.Current())
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Choices) == 0 || len(acc.Choices[0].Message.ToolCalls) == 0 {
				t.Fatalf("no tool call: %+v", acc.ChatCompletion)
			}
			tc := acc.Choices[0].Message.ToolCalls[0]
			if tc.Function.Name != "get_weather" || tc.ID == "" || !json.Valid([]byte(tc.Function.Arguments)) || acc.Choices[0].FinishReason != "tool_calls" {
				t.Fatalf("tool call %+v finish %q", tc, acc.Choices[0].FinishReason)
			}
		})
	}
}

func TestEmbeddingsOpenAIAndGemini(t *testing.T) {
	t.Parallel()
	g := nativeGateway(t)
	ctx := context.Background()
	for _, model := range []string{"embed-openai", "embed-gemini"} {
		t.Run(model+"/float via go-openai", func(t *testing.T) {
			resp, err := goClient(g).CreateEmbeddings(ctx, goopenai.EmbeddingRequestStrings{Model: goopenai.EmbeddingModel(model), Input: []string{"hello", "world"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Data) != 2 || len(resp.Data[0].Embedding) == 0 || resp.Data[1].Index != 1 || resp.Usage.PromptTokens == 0 {
				t.Fatalf("%+v", resp)
			}
		})
		t.Run(model+"/base64 via openai-go (its default)", func(t *testing.T) {
			resp, err := officialClient(g, g.key).Embeddings.New(ctx, official.EmbeddingNewParams{
				Model: official.EmbeddingModel(model), Input: official.EmbeddingNewParamsInputUnion{OfString: official.String("hello")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Data) != 1 || len(resp.Data[0].Embedding) == 0 {
				t.Fatalf("%+v", resp)
			}
		})
	}
	// The same vector whatever the encoding.
	st, f, _ := call(t, "POST", g.base+"/embeddings", g.key, `{"model":"embed-openai","input":"same"}`)
	_, b, _ := call(t, "POST", g.base+"/embeddings", g.key, `{"model":"embed-openai","input":"same","encoding_format":"base64"}`)
	floats := f["data"].([]any)[0].(map[string]any)["embedding"].([]any)
	raw, err := base64.StdEncoding.DecodeString(b["data"].([]any)[0].(map[string]any)["embedding"].(string))
	if st != 200 || err != nil || len(raw) != 4*len(floats) {
		t.Fatalf("float %d values, base64 %d bytes, %v", len(floats), len(raw), err)
	}
	for _, tc := range []struct{ body, param string }{
		{`{"model":"embed-openai"}`, "input"},
		{`{"model":"embed-openai","input":[]}`, "input"},
		{`{"model":"embed-openai","input":[1,2,3]}`, "input"},
		{`{"model":"embed-openai","input":"x","encoding_format":"hex"}`, "encoding_format"},
		{`{"input":"x"}`, "model"},
	} {
		st, body, _ := call(t, "POST", g.base+"/embeddings", g.key, tc.body)
		if e, _ := body["error"].(map[string]any); st != 400 || e["param"] != tc.param {
			t.Errorf("%s: %d %v", tc.body, st, body)
		}
	}
	if st, body, _ := call(t, "POST", g.base+"/embeddings", g.key, `{"model":"claude-test","input":"x"}`); st != 400 || errCode(body) != "unsupported_by_model" {
		t.Errorf("embeddings on a chat-only provider: %d %v", st, body)
	}
}

func TestProviderSlashModelAddressing(t *testing.T) {
	t.Parallel()
	g := nativeGateway(t)
	resp, err := goClient(g).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
		Model: "claude/claude-haiku-4-5", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}, MaxTokens: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := resp.Header(); h.Get("x-xroute-provider") != "claude" || h.Get("x-xroute-model") != "claude-haiku-4-5" {
		t.Fatalf("headers %v", h)
	}
	if st, body, _ := call(t, "POST", g.base+"/chat/completions", g.key, `{"model":"nobody/x","messages":[{"role":"user","content":"x"}]}`); st != 404 || !strings.Contains(errCode(body), "model_not_found") {
		t.Fatalf("unknown provider prefix: %d %v", st, body)
	}
}
