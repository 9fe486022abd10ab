package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goopenai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	amock "github.com/xroute/xroute/loadtest/mock/azure"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/openai"
	"github.com/xroute/xroute/providers/providertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testKey    = "0123456789abcdef0123456789abcdef"
	deployment = "gpt-4o-prod"

	weatherTool = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}`
	timeTool    = `{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}}`
	pngDataURL  = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

// recorder keeps what the mock received.
type recorder struct {
	h    http.Handler
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	url    string
	header http.Header
	body   []byte
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{r.URL.String(), r.Header.Clone(), b})
	rc.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	rc.h.ServeHTTP(w, r)
}

func (rc *recorder) last() recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs[len(rc.reqs)-1]
}

func startMock(t *testing.T, cfg amock.Config) (*amock.Server, *recorder, *httptest.Server) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	if cfg.Models == nil {
		cfg.Models = []string{deployment}
	}
	m := amock.New(cfg)
	rec := &recorder{h: m}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return m, rec, srv
}

func newAdapter(t *testing.T, srv *httptest.Server, pc config.Provider) *openai.Adapter {
	t.Helper()
	pc.Name, pc.Type = "azure-test", "azure"
	if pc.BaseURL == "" {
		pc.BaseURL = srv.URL
	}
	if pc.APIKey == "" && pc.APIKeyEnv == "" {
		pc.APIKey = testKey
	}
	p, err := New(pc, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*openai.Adapter)
}

func mkCall(t *testing.T, body string) *providers.Call {
	t.Helper()
	req, err := providers.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &providers.Call{Request: req, Model: deployment}
}

type answer struct {
	model   string
	content *string
	calls   []goopenai.ToolCall
	finish  string
	usage   providers.Usage
	chunks  int
}

func fromResponse(t *testing.T, resp *providers.ChatResponse) answer {
	t.Helper()
	var r struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content   *string             `json:"content"`
				ToolCalls []goopenai.ToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(resp.Body, &r); err != nil || len(r.Choices) != 1 {
		t.Fatalf("bad completion (%v): %s", err, resp.Body)
	}
	c := r.Choices[0]
	return answer{model: r.Model, content: c.Message.Content, calls: c.Message.ToolCalls, finish: c.FinishReason, usage: resp.Usage}
}

func collect(t *testing.T, st providers.Stream) (answer, error) {
	t.Helper()
	defer st.Close()
	var a answer
	var text strings.Builder
	sawText := false
	for {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return a, err
		}
		a.chunks++
		var ch goopenai.ChatCompletionStreamResponse
		if err := json.Unmarshal(c.Data, &ch); err != nil {
			t.Fatalf("chunk is not JSON: %s", c.Data)
		}
		if ch.ID == "" || ch.Object != "chat.completion.chunk" {
			t.Fatalf("chunk without id/object reached the caller: %s", c.Data)
		}
		a.model = ch.Model
		if c.UsageOnly {
			a.usage = *c.Usage
			continue
		}
		d := ch.Choices[0].Delta
		if d.Content != "" {
			text.WriteString(d.Content)
			sawText = true
		}
		for _, tc := range d.ToolCalls {
			if *tc.Index == len(a.calls) {
				a.calls = append(a.calls, goopenai.ToolCall{ID: tc.ID, Type: tc.Type, Function: goopenai.FunctionCall{Name: tc.Function.Name}})
			}
			a.calls[*tc.Index].Function.Arguments += tc.Function.Arguments
		}
		if fr := ch.Choices[0].FinishReason; fr != "" {
			a.finish = string(fr)
		}
	}
	if sawText {
		s := text.String()
		a.content = &s
	}
	return a, nil
}

func TestChatAndStreamAgainstMock(t *testing.T) {
	seed := mock.Seed("Hello there")
	var want strings.Builder
	for i := 0; i < mock.DefaultCompletionTokens; i++ {
		want.WriteString(mock.Token(seed, i, mock.DefaultCompletionTokens, true))
	}
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, a answer, sent recorded)
	}{
		{"text", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello there"}]}`,
			func(t *testing.T, a answer, sent recorded) {
				if deref(a.content) != want.String() || a.finish != "stop" || a.usage.CompletionTokens != mock.DefaultCompletionTokens || a.usage.PromptTokens == 0 {
					t.Fatalf("got %q %q %+v", deref(a.content), a.finish, a.usage)
				}
				if gotModel := jsonField(sent.body, "model"); gotModel != `"gpt-4o"` {
					t.Fatalf("dated API: the body's model must stay as sent, got %s", gotModel)
				}
			}},
		{"tools", `{"model":"gpt-4o","tools":[` + weatherTool + `,` + timeTool + `],"messages":[{"role":"user","content":"Weather and time?"}]}`,
			func(t *testing.T, a answer, _ recorded) {
				if a.content != nil || a.finish != "tool_calls" || len(a.calls) != 2 || a.calls[0].Function.Name != "get_weather" || a.calls[1].Function.Name != "get_time" || !json.Valid([]byte(a.calls[0].Function.Arguments)) {
					t.Fatalf("got %q %q %+v", deref(a.content), a.finish, a.calls)
				}
			}},
		{"image", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"Hello there"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]}]}`,
			func(t *testing.T, a answer, sent recorded) {
				if deref(a.content) != want.String() || !bytes.Contains(sent.body, []byte(pngDataURL)) {
					t.Fatalf("got %q; sent %s", deref(a.content), sent.body)
				}
			}},
		{"json mode", `{"model":"gpt-4o","response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object"}}},"temperature":0,"stop":"\n","messages":[{"role":"user","content":"Hello there"}]}`,
			func(t *testing.T, a answer, sent recorded) {
				if a.finish != "stop" || jsonField(sent.body, "response_format") != `{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object"}}}` ||
					jsonField(sent.body, "temperature") != "0" || jsonField(sent.body, "stop") != `"\n"` {
					t.Fatalf("not forwarded as sent: %s", sent.body)
				}
			}},
		{"max tokens", `{"model":"gpt-4o","max_completion_tokens":3,"messages":[{"role":"user","content":"Hello there"}]}`,
			func(t *testing.T, a answer, _ recorded) {
				if a.finish != "length" || a.usage.CompletionTokens != 3 {
					t.Fatalf("got %q %+v", a.finish, a.usage)
				}
			}},
	}
	_, rec, srv := startMock(t, amock.Config{})
	for _, version := range []string{DefaultAPIVersion, APIVersionV1} {
		a := newAdapter(t, srv, config.Provider{APIVersion: version})
		v1 := version == APIVersionV1
		for _, tt := range tests {
			t.Run(tt.name+"/"+version, func(t *testing.T) {
				resp, err := a.Chat(context.Background(), mkCall(t, tt.body))
				if err != nil {
					t.Fatal(err)
				}
				plain := fromResponse(t, resp)
				sent := rec.last()
				checkAddress(t, sent, v1, false)
				if v1 {
					if m := jsonField(sent.body, "model"); m != `"`+deployment+`"` {
						t.Fatalf("v1 API: model must be the deployment, got %s", m)
					}
					sent.body, _ = sjsonSet(sent.body, "model", "gpt-4o")
				}
				tt.check(t, plain, sent)
				if plain.model != deployment {
					t.Fatalf("model %q", plain.model)
				}

				streamBody := strings.Replace(tt.body, `{"model":"gpt-4o",`, `{"model":"gpt-4o","stream":true,`, 1)
				st, err := a.ChatStream(context.Background(), mkCall(t, streamBody))
				if err != nil {
					t.Fatal(err)
				}
				streamed, err := collect(t, st)
				if err != nil {
					t.Fatal(err)
				}
				sent = rec.last()
				checkAddress(t, sent, v1, true)
				if jsonField(sent.body, "stream_options") != `{"include_usage":true}` {
					t.Fatalf("stream_options not forced: %s", sent.body)
				}
				if deref(streamed.content) != deref(plain.content) || streamed.finish != plain.finish || streamed.usage != plain.usage || len(streamed.calls) != len(plain.calls) {
					t.Fatalf("stream differs: %q %q %+v vs %q %q %+v", deref(streamed.content), streamed.finish, streamed.usage, deref(plain.content), plain.finish, plain.usage)
				}
				for i := range plain.calls {
					if streamed.calls[i].Function != plain.calls[i].Function || streamed.calls[i].ID != plain.calls[i].ID {
						t.Fatalf("call %d: %+v vs %+v", i, streamed.calls[i], plain.calls[i])
					}
				}
			})
		}
	}
}

// checkAddress checks the URL and the key header of a request.
func checkAddress(t *testing.T, sent recorded, v1, stream bool) {
	t.Helper()
	want := "/openai/deployments/" + deployment + "/chat/completions?api-version=" + DefaultAPIVersion
	if v1 {
		want = "/openai/v1/chat/completions"
	}
	if sent.url != want {
		t.Fatalf("URL %s, want %s", sent.url, want)
	}
	if sent.header.Get("api-key") != testKey || sent.header.Get("Authorization") != "" {
		t.Fatalf("auth headers: api-key %q Authorization %q", sent.header.Get("api-key"), sent.header.Get("Authorization"))
	}
	if accept := sent.header.Get("Accept"); stream != (accept == "text/event-stream") {
		t.Fatalf("Accept %q", accept)
	}
}

func jsonField(body []byte, field string) string {
	var m map[string]json.RawMessage
	json.Unmarshal(body, &m)
	return string(m[field])
}

func sjsonSet(body []byte, field, value string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	m[field], _ = json.Marshal(value)
	return json.Marshal(m)
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// suite is the shared adapter suite (providertest) against the mock.
func suite(a *openai.Adapter) providertest.Suite {
	return providertest.Suite{Adapter: a, NewCall: mkCall, Model: "gpt-4o", Provider: "azure-test", Secret: testKey}
}

func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	_, _, srv := startMock(t, amock.Config{APIVersions: []string{DefaultAPIVersion, "2025-04-01-preview"}})
	suite(newAdapter(t, srv, config.Provider{})).Errors(t, []providertest.Failure{
		{Name: "wrong key", Adapter: newAdapter(t, srv, config.Provider{APIKey: "wrong"}), Content: "hi", Status: 401, Type: "authentication_error", Code: "invalid_api_key"},
		{Name: "unknown deployment", Edit: func(c *providers.Call) { c.Model = "nope" }, Content: "hi", Status: 404, Type: "invalid_request_error", Code: "model_not_found"},
		{Name: "content filter", Content: "hi #azure:content_filter", Status: 400, Type: "invalid_request_error", Code: "content_filter", Param: "prompt"},
		{Name: "rate limited", Content: "hi #mock:status=429;retry-after=3", Status: 429, Type: "rate_limit_error", Code: "rate_limit_exceeded", Retryable: true, RetryAfter: 3 * time.Second},
		{Name: "bad request", Content: "hi #mock:status=400", Status: 400, Type: "invalid_request_error"},
		{Name: "server error", Content: "hi #mock:status=500", Status: 500, Type: "server_error", Retryable: true},
		{Name: "unavailable", Content: "hi #mock:status=503", Status: 503, Type: "server_error", Retryable: true},
		{Name: "bad api version", Adapter: newAdapter(t, srv, config.Provider{APIVersion: "1999-01-01"}), Content: "hi", Status: 404, Type: "invalid_request_error", Code: "not_found"},
	})
}

func TestMidStreamFailures(t *testing.T) {
	t.Parallel()
	_, _, srv := startMock(t, amock.Config{})
	suite(newAdapter(t, srv, config.Provider{})).Breaks(t, []providertest.Break{
		{Name: "stream-error", Content: "hi #mock:stream-error", Status: 0, Retryable: true},
		{Name: "reset", Content: "hi #mock:reset", Status: 0, Retryable: true},
	})
}

func TestUsageIsAlwaysAskedFor(t *testing.T) {
	_, _, srv := startMock(t, amock.Config{})
	a := newAdapter(t, srv, config.Provider{})
	for _, opts := range []string{``, `"stream_options":{"include_usage":false},`, `"stream_options":{"include_usage":true},`} {
		st, err := a.ChatStream(context.Background(), mkCall(t, `{"model":"gpt-4o","stream":true,`+opts+`"messages":[{"role":"user","content":"one two three"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		got, err := collect(t, st)
		// prompt: 3 + (3 + 3 words)
		if err != nil || got.usage != (providers.Usage{PromptTokens: 9, CompletionTokens: 16, TotalTokens: 25}) {
			t.Fatalf("%s: usage %+v (%v)", opts, got.usage, err)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		pc      config.Provider
		env     map[string]string
		wantURL string
		wantErr bool
	}{
		{"defaults", config.Provider{BaseURL: "https://res.openai.azure.com/", APIKey: "k"}, nil,
			"https://res.openai.azure.com/openai/deployments/my%20dep/chat/completions?api-version=" + DefaultAPIVersion, false},
		{"base with /openai", config.Provider{BaseURL: "https://res.openai.azure.com/openai", APIKey: "k", APIVersion: "2025-04-01-preview"}, nil,
			"https://res.openai.azure.com/openai/deployments/my%20dep/chat/completions?api-version=2025-04-01-preview", false},
		{"base with /openai/v1", config.Provider{BaseURL: "https://res.openai.azure.com/openai/v1/", APIKeyEnv: "AZ"}, map[string]string{"AZ": "k"},
			"https://res.openai.azure.com/openai/v1/chat/completions", false},
		{"v1 version", config.Provider{BaseURL: "https://res.cognitiveservices.azure.com", APIKey: "k", APIVersion: "v1"}, nil,
			"https://res.cognitiveservices.azure.com/openai/v1/chat/completions", false},
		{"no base url", config.Provider{APIKey: "k"}, nil, "", true},
		{"no key", config.Provider{BaseURL: "https://res.openai.azure.com", APIKeyEnv: "MISSING"}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.pc, providers.Deps{Getenv: func(k string) string { return tt.env[k] }})
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			call := &providers.Call{Request: &providers.ChatRequest{Model: "m", Body: []byte(`{"model":"m"}`)}, Model: "my dep"}
			r, _ := p.(*openai.Adapter).NewRequest(context.Background(), call)
			if got := r.URL.String(); got != tt.wantURL {
				t.Fatalf("endpoint %s, want %s", got, tt.wantURL)
			}
		})
	}
}

func TestTimeoutBeforeHeaders(t *testing.T) {
	t.Parallel()
	_, _, srv := startMock(t, amock.Config{Config: mock.Config{Latency: 2 * time.Second}})
	a := newAdapter(t, srv, config.Provider{Timeout: 50 * time.Millisecond})
	suite(a).TimeoutBeforeHeaders(t, a, "hi")
}

func TestResponsesAPIIsNativeWhereAzureServesIt(t *testing.T) {
	for _, tc := range []struct {
		version string
		formats []string
		want    bool
	}{{"v1", nil, true}, {"", nil, false}, {"2025-04-01-preview", nil, true}, {"2024-10-21", nil, false}, {"v1", []string{"none"}, false}} {
		a, err := New(config.Provider{Name: "az", Type: "azure", BaseURL: "https://r.openai.azure.com", APIKey: "k", APIVersion: tc.version, NativeFormats: tc.formats}, providers.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if got := providers.Speaks(a, providers.FormatResponses, "my-gpt"); got != tc.want {
			t.Errorf("api_version %q %v: native responses %v, want %v", tc.version, tc.formats, got, tc.want)
		}
		if providers.Speaks(a, providers.FormatCompletions, "my-gpt") {
			t.Errorf("api_version %q: Azure's completions are not served natively", tc.version)
		}
	}
}

func TestCloseMidStream(t *testing.T) {
	t.Parallel()
	m, _, srv := startMock(t, amock.Config{Config: mock.Config{TokensPerSec: 200, CompletionTokens: 400}})
	suite(newAdapter(t, srv, config.Provider{})).CloseMidStream(t, func() int64 { return m.Stats().Canceled })
}
