package azure

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goopenai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/xroute/xroute/loadtest/mock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const key = "azure-test-key"

func serve(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// goOpenAI is go-openai in its Azure mode: deployment URLs, api-version,
// api-key header.
func goOpenAI(srv *httptest.Server, apiKey string) *goopenai.Client {
	cfg := goopenai.DefaultAzureConfig(apiKey, srv.URL)
	cfg.APIVersion = "2024-10-21"
	cfg.HTTPClient = srv.Client()
	return goopenai.NewClientWithConfig(cfg)
}

func TestGoOpenAIAzureClient(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, Config{Config: mock.Config{APIKey: key, Models: []string{"gpt-4o"}}})
	c := goOpenAI(srv, key)
	ctx := context.Background()
	req := goopenai.ChatCompletionRequest{Model: "gpt-4o", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hello there"}}}

	resp, err := c.CreateChatCompletion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "gpt-4o" || resp.Choices[0].Message.Content == "" || resp.Usage.CompletionTokens != mock.DefaultCompletionTokens {
		t.Fatalf("%+v", resp)
	}

	req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
	st, err := c.CreateChatCompletionStream(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	var usage *goopenai.Usage
	for {
		ch, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.PromptFilterResults) > 0 && len(ch.Choices) != 0 {
			t.Fatalf("the prompt-filter chunk has choices: %+v", ch)
		}
		for _, c := range ch.Choices {
			text += c.Delta.Content
		}
		if ch.Usage != nil {
			usage = ch.Usage
		}
	}
	st.Close()
	if text != resp.Choices[0].Message.Content || usage == nil || usage.CompletionTokens != mock.DefaultCompletionTokens {
		t.Fatalf("stream %q usage %+v", text, usage)
	}

	_, err = goOpenAI(srv, "wrong").CreateChatCompletion(ctx, req)
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 || apiErr.Code != "401" {
		t.Fatalf("wrong key: %T %v", err, err)
	}
	req.Model = "gpt-5"
	_, err = c.CreateChatCompletion(ctx, req)
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 || apiErr.Code != "DeploymentNotFound" {
		t.Fatalf("unknown deployment: %T %v", err, err)
	}
	if st := s.Stats(); st.Requests != 4 || st.Failures[401] != 1 || st.Failures[404] != 1 || st.Chat != 2 || st.Streams != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func post(t *testing.T, srv *httptest.Server, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestAzureBehaviour(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{Config: mock.Config{APIKey: key, RetryAfter: 2 * time.Second}, APIVersions: []string{"2024-10-21"}})
	const dated = "/openai/deployments/dep/chat/completions?api-version=2024-10-21"
	const chat = `{"messages":[{"role":"user","content":"%s"}]}`
	body := func(text string) string { return strings.Replace(chat, "%s", text, 1) }
	withKey := map[string]string{"api-key": key}
	tests := []struct {
		name, path, body string
		hdr              map[string]string
		status           int
		want             string // substring of the body
	}{
		{"dated", dated, body("hi"), withKey, 200, `"model":"dep"`},
		{"v1 with bearer key", "/openai/v1/chat/completions", `{"model":"dep2","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"Authorization": "Bearer " + key}, 200, `"model":"dep2"`},
		{"dated rejects bearer", dated, body("hi"), map[string]string{"Authorization": "Bearer " + key}, 401, `"code":"401"`},
		{"no api-version", "/openai/deployments/dep/chat/completions", body("hi"), withKey, 404, "Resource not found"},
		{"unknown api-version", "/openai/deployments/dep/chat/completions?api-version=2020-01-01", body("hi"), withKey, 404, "Resource not found"},
		{"content filter", dated, body("hi #azure:content_filter"), withKey, 400, `"code":"content_filter"`},
		{"content filter header", dated, body("hi"), map[string]string{"api-key": key, DirectiveHeader: "content_filter"}, 400, `"ResponsibleAIPolicyViolation"`},
		{"rate limit", dated, body("hi #mock:status=429"), withKey, 429, `"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21`},
		{"server error", dated, body("hi #mock:status=500"), withKey, 500, `"server_error"`},
		{"embeddings", "/openai/deployments/emb/embeddings?api-version=2024-10-21", `{"input":"hello"}`, withKey, 200, `"embedding"`},
		{"unknown route", "/openai/deployments/dep/images/generations?api-version=2024-10-21", `{}`, withKey, 404, "Resource not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, srv, tt.path, tt.body, tt.hdr)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) || resp.Header.Get("apim-request-id") == "" {
				t.Fatalf("status %d body %s", resp.StatusCode, b)
			}
			if resp.StatusCode == 429 && (resp.Header.Get("Retry-After") != "2" || resp.Header.Get("Retry-After-Ms") != "2000" || !json.Valid(b)) {
				t.Fatalf("429 headers %v body %s", resp.Header, b)
			}
		})
	}
}

func TestStreamStartsWithPromptFilterResults(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openai/deployments/dep/chat/completions?api-version=2024-10-21",
		strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, line)
		}
	}
	if len(events) < 4 || !strings.Contains(events[0], `"prompt_filter_results"`) || !strings.Contains(events[0], `"choices":[]`) ||
		!strings.Contains(events[1], `"role":"assistant"`) || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q", events)
	}
}

func TestResetThroughTheWrapper(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, Config{})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openai/v1/chat/completions",
		strings.NewReader(`{"model":"d","stream":true,"messages":[{"role":"user","content":"hi #mock:reset"}]}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || s.Stats().Resets != 1 {
		t.Fatalf("want a cut stream: %v %+v", err, s.Stats())
	}
}
