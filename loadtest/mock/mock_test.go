package mock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
)

// ---- helpers ----

func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + "/v1"
}

func goClient(base, key string) *goopenai.Client {
	c := goopenai.DefaultConfig(key)
	c.BaseURL = base
	return goopenai.NewClientWithConfig(c)
}

func officialClient(base, key string, opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base), option.WithAPIKey(key), option.WithMaxRetries(0),
	}, opts...)...)
	return &c
}

// post sends a raw JSON request.
func post(t *testing.T, ctx context.Context, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readSSE returns the data payloads of an SSE body, checking the framing.
func readSSE(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	var out []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return out, nil
			}
			return out, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		blank, err := br.ReadString('\n')
		if err != nil || blank != "\n" {
			t.Fatalf("event %q not followed by a blank line (%q, %v)", data, blank, err)
		}
		out = append(out, data)
	}
}

type rawChunk struct {
	ID      string                       `json:"id"`
	Object  string                       `json:"object"`
	Created int64                        `json:"created"`
	Model   string                       `json:"model"`
	Choices []map[string]json.RawMessage `json:"choices"`
	Usage   *goopenai.Usage              `json:"usage"`
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---- chat, non-stream ----

func TestChatNonStream(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{APIKey: "sk-test", CompletionTokens: 12})
	gc := goClient(base, "sk-test")
	oc := officialClient(base, "sk-test")
	msgs := []goopenai.ChatCompletionMessage{
		{Role: "system", Content: "be brief"},
		{Role: "user", Content: "hello there mock"},
	}
	// prompt tokens: words (2+3) + 3 per message (6) + 3
	const wantPrompt = 14
	cases := []struct {
		name       string
		maxTokens  int // max_completion_tokens
		legacyMax  int // max_tokens
		directive  string
		wantTokens int
		wantFinish string
	}{
		{"default length", 0, 0, "", 12, "stop"},
		{"max_completion_tokens cuts", 5, 0, "", 5, "length"},
		{"max_tokens cuts", 0, 3, "", 3, "length"},
		{"max above length", 100, 0, "", 12, "stop"},
		{"directive tokens", 0, 0, " #mock:tokens=4", 4, "stop"},
		{"directive tokens capped", 2, 0, " #mock:tokens=4", 2, "length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := append([]goopenai.ChatCompletionMessage(nil), msgs...)
			m[1].Content += tc.directive
			prompt := wantPrompt
			if tc.directive != "" {
				prompt++
			}
			resp, err := gc.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
				Model: "gpt-test", Messages: m, MaxCompletionTokens: tc.maxTokens, MaxTokens: tc.legacyMax,
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "chat.completion" || !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Model != "gpt-test" || resp.SystemFingerprint != "fp_mock" {
				t.Fatalf("bad envelope: %+v", resp)
			}
			if len(resp.Choices) != 1 || resp.Choices[0].Message.Role != "assistant" || string(resp.Choices[0].FinishReason) != tc.wantFinish {
				t.Fatalf("bad choices: %+v", resp.Choices)
			}
			content := resp.Choices[0].Message.Content
			if got := len(strings.Fields(content)); got != tc.wantTokens {
				t.Fatalf("content %q has %d words, want %d", content, got, tc.wantTokens)
			}
			u := resp.Usage
			if u.PromptTokens != prompt || u.CompletionTokens != tc.wantTokens || u.TotalTokens != prompt+tc.wantTokens {
				t.Fatalf("usage %+v, want prompt %d completion %d", u, prompt, tc.wantTokens)
			}
			rl := resp.GetRateLimitHeaders()
			if rl.LimitRequests <= 0 || rl.LimitTokens <= 0 || rl.RemainingRequests <= 0 || rl.ResetRequests.String() == "" {
				t.Fatalf("rate-limit headers: %+v", rl)
			}
			if _, err := time.ParseDuration(rl.ResetTokens.String()); err != nil {
				t.Fatalf("reset-tokens %q: %v", rl.ResetTokens, err)
			}
			if !strings.HasPrefix(resp.Header().Get("x-request-id"), "req_") || resp.Header().Get("openai-processing-ms") == "" {
				t.Fatalf("headers: %v", resp.Header())
			}

			// The official SDK gets the same (deterministic) answer.
			params := openai.ChatCompletionNewParams{
				Model: "gpt-test",
				Messages: []openai.ChatCompletionMessageParamUnion{
					openai.SystemMessage("be brief"), openai.UserMessage("hello there mock" + tc.directive),
				},
			}
			if tc.maxTokens > 0 {
				params.MaxCompletionTokens = openai.Int(int64(tc.maxTokens))
			}
			if tc.legacyMax > 0 {
				params.MaxTokens = openai.Int(int64(tc.legacyMax))
			}
			oresp, err := oc.Chat.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			if oresp.Choices[0].Message.Content != content || oresp.Usage.TotalTokens != int64(prompt+tc.wantTokens) ||
				string(oresp.Choices[0].FinishReason) != tc.wantFinish {
				t.Fatalf("official SDK got %+v, want content %q", oresp.Choices[0], content)
			}
		})
	}
}

func TestChatRawShape(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":2}`, nil)
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var m struct {
		Choices []struct {
			Message  map[string]json.RawMessage `json:"message"`
			Logprobs json.RawMessage            `json:"logprobs"`
		} `json:"choices"`
		Usage map[string]json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	msg := m.Choices[0].Message
	if string(msg["refusal"]) != "null" || string(m.Choices[0].Logprobs) != "null" {
		t.Fatalf("message %s", body)
	}
	if string(m.Usage["prompt_tokens_details"]) != `{"cached_tokens":0,"audio_tokens":0}` ||
		!strings.Contains(string(m.Usage["completion_tokens_details"]), `"reasoning_tokens":0`) {
		t.Fatalf("usage %s", body)
	}
}

// ---- chat, stream ----

func TestChatStreamWire(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		includeUsage bool
		chunkTokens  int
		tps          float64
	}{
		{"no usage", false, 1, 0},
		{"include usage", true, 1, 0},
		{"chunks of 3 with usage", true, 3, 0},
		{"paced", false, 2, 2000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startServer(t, Config{ChunkTokens: tc.chunkTokens, TokensPerSec: tc.tps, CompletionTokens: 7})
			reqBody := `{"model":"m","messages":[{"role":"user","content":"tell me a story"}],"stream":true`
			if tc.includeUsage {
				reqBody += `,"stream_options":{"include_usage":true}`
			}
			reqBody += "}"
			resp := post(t, context.Background(), base+"/chat/completions", reqBody, map[string]string{"Accept": "application/json"})
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
				resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("x-ratelimit-limit-requests") == "" {
				t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
			}
			events, err := readSSE(t, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) < 4 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events %q", events)
			}
			events = events[:len(events)-1]
			var content strings.Builder
			var first rawChunk
			finishes := 0
			for i, ev := range events {
				var raw map[string]json.RawMessage
				var c rawChunk
				if err := json.Unmarshal([]byte(ev), &raw); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = c
				}
				if c.ID != first.ID || c.Created != first.Created || c.Object != "chat.completion.chunk" || c.Model != "m" {
					t.Fatalf("chunk %d envelope differs: %s", i, ev)
				}
				u, hasUsage := raw["usage"]
				isUsageChunk := tc.includeUsage && i == len(events)-1
				switch {
				case isUsageChunk:
					if len(c.Choices) != 0 || string(raw["choices"]) != "[]" || c.Usage == nil {
						t.Fatalf("usage chunk: %s", ev)
					}
					if c.Usage.CompletionTokens != 7 || c.Usage.PromptTokens != 3+3+4 || c.Usage.TotalTokens != 17 {
						t.Fatalf("usage %+v", c.Usage)
					}
					continue
				case tc.includeUsage:
					if !hasUsage || string(u) != "null" {
						t.Fatalf("chunk %d lacks usage:null: %s", i, ev)
					}
				default:
					if hasUsage {
						t.Fatalf("chunk %d has usage: %s", i, ev)
					}
				}
				if len(c.Choices) != 1 {
					t.Fatalf("chunk %d choices: %s", i, ev)
				}
				ch := c.Choices[0]
				var delta map[string]json.RawMessage
				_ = json.Unmarshal(ch["delta"], &delta)
				if i == 0 && (string(delta["role"]) != `"assistant"` || string(delta["content"]) != `""`) {
					t.Fatalf("first chunk: %s", ev)
				}
				if string(ch["finish_reason"]) != "null" {
					finishes++
					if string(ch["finish_reason"]) != `"stop"` || len(delta) != 0 {
						t.Fatalf("finish chunk: %s", ev)
					}
				}
				var s string
				if raw, ok := delta["content"]; ok {
					_ = json.Unmarshal(raw, &s)
					content.WriteString(s)
				}
			}
			if finishes != 1 {
				t.Fatalf("%d finish chunks", finishes)
			}
			// Same text as the non-stream answer.
			resp2 := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"tell me a story"}]}`, nil)
			var full goopenai.ChatCompletionResponse
			if err := json.Unmarshal(readAll(t, resp2), &full); err != nil {
				t.Fatal(err)
			}
			if full.Choices[0].Message.Content != content.String() {
				t.Fatalf("stream %q != non-stream %q", content.String(), full.Choices[0].Message.Content)
			}
		})
	}
}

func TestChatStreamSDKs(t *testing.T) {
	t.Parallel()
	for _, includeUsage := range []bool{false, true} {
		t.Run("include_usage="+strconv.FormatBool(includeUsage), func(t *testing.T) {
			srv, base := startServer(t, Config{ChunkTokens: 2})
			// go-openai
			req := goopenai.ChatCompletionRequest{
				Model: "m", Stream: true, MaxCompletionTokens: 5,
				Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "stream please"}},
			}
			if includeUsage {
				req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
			}
			st, err := goClient(base, "").CreateChatCompletionStream(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			var usage *goopenai.Usage
			finish := ""
			for {
				r, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.Usage != nil {
					usage = r.Usage
				}
				for _, c := range r.Choices {
					text.WriteString(c.Delta.Content)
					if c.FinishReason != "" {
						finish = string(c.FinishReason)
					}
				}
			}
			st.Close()
			if len(strings.Fields(text.String())) != 5 || finish != "length" {
				t.Fatalf("go-openai: %q finish %q", text.String(), finish)
			}
			if includeUsage != (usage != nil) || (usage != nil && usage.CompletionTokens != 5) {
				t.Fatalf("go-openai usage %+v", usage)
			}

			// openai-go with the accumulator
			params := openai.ChatCompletionNewParams{
				Model: "m", MaxCompletionTokens: openai.Int(5),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
			}
			if includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := officialClient(base, "").Chat.Completions.NewStreaming(context.Background(), params)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatal("accumulator rejected a chunk")
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.Choices[0].Message.Content != text.String() || acc.Choices[0].FinishReason != "length" {
				t.Fatalf("openai-go: %+v", acc.Choices[0])
			}
			if includeUsage && acc.Usage.TotalTokens != acc.Usage.PromptTokens+5 {
				t.Fatalf("openai-go usage %+v", acc.Usage)
			}
			testutil.Eventually(t, "streams completed", func() bool { return srv.Stats().Completed == 2 })
			if s := srv.Stats(); s.Streams != 2 || s.Canceled != 0 || s.CompletionTokens != 10 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}
