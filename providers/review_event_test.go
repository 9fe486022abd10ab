package providers_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/openai"
)

// recordingTransport answers every request with a small chat completion
// and remembers the paths asked for.
type recordingTransport struct {
	mu    sync.Mutex
	paths []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.paths = append(rt.paths, r.URL.Path)
	rt.mu.Unlock()
	body := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	if strings.HasSuffix(r.URL.Path, "/completions") && !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		// What api.openai.com answers a chat model on the legacy endpoint.
		return &http.Response{StatusCode: 404, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"error":{"message":"This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?","type":"invalid_request_error","param":"model","code":null}}`))}, nil
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r, Body: io.NopCloser(strings.NewReader(body))}, nil
}

// On api.openai.com the adapter serves every legacy completions request
// natively (native_formats defaults to responses and completions there),
// but OpenAI's /v1/completions serves only the instruct and base models
// (gpt-3.5-turbo-instruct, davinci-002, babbage-002): a chat model such as
// gpt-4o gets a 404 "This is a chat model and not supported in the
// v1/completions endpoint". A plain completion for gpt-4o must go through
// the chat pivot.
func TestReviewOpenAILegacyCompletionsOfChatModel(t *testing.T) {
	rt := &recordingTransport{}
	p, err := openai.New(config.Provider{Name: "openai", Type: "openai", BaseURL: "https://api.openai.com/v1", APIKey: "sk-test"},
		providers.Deps{Client: &http.Client{Transport: rt}})
	if err != nil {
		t.Fatal(err)
	}
	native := []byte(`{"model":"gpt-4o","prompt":"Say hi","max_tokens":16}`)
	pivot := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}`)
	req := &providers.ChatRequest{Model: "gpt-4o", MaxTokens: 16, Body: pivot, Format: providers.FormatCompletions, Native: native}
	_, err = p.Chat(context.Background(), &providers.Call{Request: req, Model: "gpt-4o"})
	if err != nil {
		t.Errorf("a plain completion for gpt-4o failed: %v (paths %v)", err, rt.paths)
	}
	if len(rt.paths) == 0 || rt.paths[0] != "/v1/chat/completions" {
		t.Errorf("gpt-4o's completion went to %v, want /v1/chat/completions", rt.paths)
	}
}
