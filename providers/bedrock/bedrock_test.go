package bedrock

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

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	bmock "github.com/xroute/xroute/loadtest/mock/bedrock"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

const (
	testAKID   = "AKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	testModel  = "anthropic.claude-3-5-sonnet-20240620-v1:0"

	weatherTool = `{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}`
	timeTool    = `{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}}`
	pngDataURL  = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

// recorder keeps the bodies the mock received.
type recorder struct {
	h      http.Handler
	mu     sync.Mutex
	bodies [][]byte
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.bodies = append(rc.bodies, b)
	rc.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	rc.h.ServeHTTP(w, r)
}

func (rc *recorder) last() []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies[len(rc.bodies)-1]
}

// startMock serves a Bedrock mock that requires SigV4 with the test
// credentials unless cfg sets other credentials.
func startMock(t *testing.T, cfg bmock.Config) (*bmock.Server, *recorder, *httptest.Server) {
	t.Helper()
	if cfg.AccessKeyID == "" && cfg.APIKey == "" {
		cfg.AccessKeyID, cfg.SecretAccessKey = testAKID, testSecret
	}
	m := bmock.New(cfg)
	rec := &recorder{h: m}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return m, rec, srv
}

func newAdapter(t *testing.T, srv *httptest.Server, pc config.Provider, env map[string]string) *Adapter {
	t.Helper()
	pc.Name, pc.Type, pc.BaseURL = "bedrock-test", "bedrock", srv.URL
	if pc.Region == "" && env["AWS_REGION"] == "" {
		pc.Region = "us-east-1"
	}
	if pc.APIKey == "" && pc.APIKeyEnv == "" && env == nil {
		pc.APIKey = testAKID + ":" + testSecret
	}
	p, err := New(pc, providers.Deps{Client: srv.Client(), Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Adapter)
}

func mkCall(t *testing.T, body string) *providers.Call {
	t.Helper()
	req, err := providers.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &providers.Call{Request: req, Model: testModel}
}

// answer is what a caller sees, from a completion or a reassembled stream.
type answer struct {
	content  *string
	calls    []goopenai.ToolCall
	finish   string
	usage    providers.Usage
	chunks   int
	rawUsage *goopenai.Usage
}

func fromResponse(t *testing.T, resp *providers.ChatResponse) answer {
	t.Helper()
	var r struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Role      string              `json:"role"`
				Content   *string             `json:"content"`
				ToolCalls []goopenai.ToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage *goopenai.Usage `json:"usage"`
	}
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, resp.Body)
	}
	if r.Object != "chat.completion" || len(r.Choices) != 1 || r.Choices[0].Message.Role != "assistant" {
		t.Fatalf("not a chat.completion: %s", resp.Body)
	}
	c := r.Choices[0]
	return answer{content: c.Message.Content, calls: c.Message.ToolCalls, finish: c.FinishReason, usage: resp.Usage, rawUsage: r.Usage}
}

// collect reads a stream to its end, checking the chunk rules of
// WIRE-NOTES (role first, tool-call fragments, one finish, usage last).
func collect(t *testing.T, st providers.Stream) (answer, error) {
	t.Helper()
	defer st.Close()
	var a answer
	var text strings.Builder
	sawText, sawRole := false, false
	var id string
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
			t.Fatalf("chunk is not JSON: %v\n%s", err, c.Data)
		}
		if ch.Object != "chat.completion.chunk" || (id != "" && ch.ID != id) {
			t.Fatalf("bad chunk header: %s", c.Data)
		}
		id = ch.ID
		if c.UsageOnly {
			if len(ch.Choices) != 0 || c.Usage == nil {
				t.Fatalf("usage chunk must have empty choices: %s", c.Data)
			}
			a.usage = *c.Usage
			continue
		}
		if a.finish != "" {
			t.Fatalf("chunk after the finish chunk: %s", c.Data)
		}
		d := ch.Choices[0].Delta
		if !sawRole {
			if d.Role != "assistant" {
				t.Fatalf("first chunk must carry role assistant: %s", c.Data)
			}
			sawRole = true
		}
		if d.Content != "" {
			text.WriteString(d.Content)
			sawText = true
		}
		for _, tc := range d.ToolCalls {
			idx := *tc.Index
			switch {
			case idx == len(a.calls):
				if tc.ID == "" || tc.Type != "function" || tc.Function.Name == "" || tc.Function.Arguments != "" {
					t.Fatalf("first fragment of call %d must have id, type, name and empty arguments: %s", idx, c.Data)
				}
				a.calls = append(a.calls, goopenai.ToolCall{Index: tc.Index, ID: tc.ID, Type: tc.Type, Function: goopenai.FunctionCall{Name: tc.Function.Name}})
			case idx < len(a.calls):
				if tc.ID != "" || tc.Function.Name != "" {
					t.Fatalf("later fragment of call %d must carry only arguments: %s", idx, c.Data)
				}
				a.calls[idx].Function.Arguments += tc.Function.Arguments
			default:
				t.Fatalf("tool call index %d skips positions: %s", idx, c.Data)
			}
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

// expectedText is the mock's deterministic answer to userText.
func expectedText(userText string, n int, finished bool) string {
	var sb strings.Builder
	seed := mock.Seed(userText)
	for i := 0; i < n; i++ {
		sb.WriteString(mock.Token(seed, i, n, finished))
	}
	return sb.String()
}

func TestChatAndStreamAgainstMock(t *testing.T) {
	full := expectedText("Hello there", mock.DefaultCompletionTokens, true)
	// a stop sequence in the middle of the answer
	words := strings.SplitAfter(full, " ")
	stop := " " + strings.TrimSpace(words[4])
	cutAt := strings.Index(full, stop)

	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, a answer, sent []byte)
	}{
		{"text", `{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"}]}`,
			func(t *testing.T, a answer, sent []byte) {
				if a.content == nil || *a.content != full || a.finish != "stop" || len(a.calls) != 0 {
					t.Fatalf("got content %v finish %q calls %v, want %q", deref(a.content), a.finish, a.calls, full)
				}
				if a.usage.CompletionTokens != mock.DefaultCompletionTokens || a.usage.PromptTokens == 0 || a.usage.TotalTokens != a.usage.PromptTokens+a.usage.CompletionTokens {
					t.Fatalf("usage %+v", a.usage)
				}
				if !bytes.Contains(sent, []byte(`"system":[{"text":"Be brief."}]`)) {
					t.Fatalf("system not sent as system blocks: %s", sent)
				}
			}},
		{"max tokens", `{"model":"m","max_completion_tokens":5,"temperature":0,"messages":[{"role":"user","content":"Hello there"}]}`,
			func(t *testing.T, a answer, sent []byte) {
				if want := expectedText("Hello there", 5, false); deref(a.content) != want || a.finish != "length" || a.usage.CompletionTokens != 5 {
					t.Fatalf("got %q %q %+v, want %q length", deref(a.content), a.finish, a.usage, want)
				}
				if !bytes.Contains(sent, []byte(`"inferenceConfig":{"maxTokens":5,"temperature":0}`)) {
					t.Fatalf("inferenceConfig: %s", sent)
				}
			}},
		{"stop sequence", `{"model":"m","stop":` + jsonString(stop) + `,"messages":[{"role":"user","content":"Hello there"}]}`,
			func(t *testing.T, a answer, _ []byte) {
				if deref(a.content) != full[:cutAt] || a.finish != "stop" {
					t.Fatalf("got %q %q, want %q stop", deref(a.content), a.finish, full[:cutAt])
				}
			}},
		{"tools auto", `{"model":"m","tools":[` + weatherTool + `,` + timeTool + `],"messages":[{"role":"user","content":"Weather and time in Paris?"}]}`,
			func(t *testing.T, a answer, _ []byte) {
				if a.content == nil || *a.content == "" || a.finish != "tool_calls" || len(a.calls) != 2 {
					t.Fatalf("want a preamble and two calls: content %q finish %q calls %+v", deref(a.content), a.finish, a.calls)
				}
				checkCall(t, a.calls[0], 0, "get_weather")
				checkCall(t, a.calls[1], 1, "get_time")
				var args struct {
					City string `json:"city"`
					Unit string `json:"unit"`
				}
				if err := json.Unmarshal([]byte(a.calls[0].Function.Arguments), &args); err != nil || args.City == "" || (args.Unit != "c" && args.Unit != "f") {
					t.Fatalf("arguments %q", a.calls[0].Function.Arguments)
				}
			}},
		{"tool forced", `{"model":"m","tools":[` + weatherTool + `,` + timeTool + `],"tool_choice":{"type":"function","function":{"name":"get_time"}},"messages":[{"role":"user","content":"What time is it?"}]}`,
			func(t *testing.T, a answer, sent []byte) {
				if a.content != nil || a.finish != "tool_calls" || len(a.calls) != 1 {
					t.Fatalf("want one call and no content: content %q finish %q calls %+v", deref(a.content), a.finish, a.calls)
				}
				checkCall(t, a.calls[0], 0, "get_time")
				if !bytes.Contains(sent, []byte(`"toolChoice":{"tool":{"name":"get_time"}}`)) {
					t.Fatalf("toolChoice: %s", sent)
				}
			}},
		{"tool required", `{"model":"m","tools":[` + weatherTool + `],"tool_choice":"required","messages":[{"role":"user","content":"Weather?"}]}`,
			func(t *testing.T, a answer, sent []byte) {
				if a.content != nil || a.finish != "tool_calls" || len(a.calls) != 1 {
					t.Fatalf("content %q finish %q calls %+v", deref(a.content), a.finish, a.calls)
				}
				if !bytes.Contains(sent, []byte(`"toolChoice":{"any":{}}`)) {
					t.Fatalf("toolChoice: %s", sent)
				}
			}},
		{"tool results", `{"model":"m","tools":[` + weatherTool + `,` + timeTool + `],"messages":[{"role":"user","content":"Weather and time in Paris?"},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]},` +
			`{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"},{"role":"tool","tool_call_id":"call_2","content":"{\"time\":\"12:00\"}"}]}`,
			func(t *testing.T, a answer, sent []byte) {
				if a.content == nil || *a.content == "" || a.finish != "stop" || len(a.calls) != 0 {
					t.Fatalf("want a text answer: %q %q %+v", deref(a.content), a.finish, a.calls)
				}
				if !bytes.Contains(sent, []byte(`{"toolResult":{"toolUseId":"call_1","content":[{"text":"18C and sunny"}]}},{"toolResult":{"toolUseId":"call_2"`)) {
					t.Fatalf("tool results not merged into one user turn: %s", sent)
				}
			}},
		{"image", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `","detail":"low"}}]}]}`,
			func(t *testing.T, a answer, sent []byte) {
				if deref(a.content) != expectedText("What is in this image?", mock.DefaultCompletionTokens, true) || a.finish != "stop" {
					t.Fatalf("got %q %q", deref(a.content), a.finish)
				}
				if !bytes.Contains(sent, []byte(`{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo`)) {
					t.Fatalf("image block not sent: %s", sent)
				}
			}},
		{"json schema", `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}}},"messages":[{"role":"user","content":"Invent a person."}]}`,
			func(t *testing.T, a answer, sent []byte) {
				var p struct {
					Name *string `json:"name"`
					Age  *int    `json:"age"`
				}
				if err := json.Unmarshal([]byte(deref(a.content)), &p); err != nil || p.Name == nil || p.Age == nil || a.finish != "stop" {
					t.Fatalf("content %q finish %q: %v", deref(a.content), a.finish, err)
				}
				if !bytes.Contains(sent, []byte(`"outputConfig":{"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":"{\"type\":\"object\"`)) {
					t.Fatalf("outputConfig: %s", sent)
				}
			}},
		{"json object", `{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Answer in JSON."}]}`,
			func(t *testing.T, a answer, _ []byte) {
				var obj map[string]any
				if err := json.Unmarshal([]byte(deref(a.content)), &obj); err != nil || a.finish != "stop" || len(a.calls) != 0 {
					t.Fatalf("content %q finish %q calls %v: %v", deref(a.content), a.finish, a.calls, err)
				}
			}},
	}
	_, rec, srv := startMock(t, bmock.Config{})
	a := newAdapter(t, srv, config.Provider{}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.Chat(context.Background(), mkCall(t, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			plain := fromResponse(t, resp)
			if plain.rawUsage == nil || plain.rawUsage.PromptTokens != plain.usage.PromptTokens {
				t.Fatalf("usage in body %+v, extracted %+v", plain.rawUsage, plain.usage)
			}
			tt.check(t, plain, rec.last())

			streamBody := strings.Replace(tt.body, `{"model":"m",`, `{"model":"m","stream":true,`, 1)
			st, err := a.ChatStream(context.Background(), mkCall(t, streamBody))
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := collect(t, st)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, streamed, rec.last())
			if deref(streamed.content) != deref(plain.content) || streamed.finish != plain.finish || streamed.usage != plain.usage || len(streamed.calls) != len(plain.calls) {
				t.Fatalf("stream differs from completion:\nstream %q %q %+v\nplain  %q %q %+v", deref(streamed.content), streamed.finish, streamed.usage, deref(plain.content), plain.finish, plain.usage)
			}
			for i := range plain.calls {
				p, s := plain.calls[i], streamed.calls[i]
				if p.ID != s.ID || p.Function.Name != s.Function.Name || p.Function.Arguments != s.Function.Arguments {
					t.Fatalf("call %d differs: stream %+v plain %+v", i, s, p)
				}
			}
		})
	}
}

func checkCall(t *testing.T, c goopenai.ToolCall, _ int, name string) {
	t.Helper()
	if c.Type != "function" || c.Function.Name != name || !strings.HasPrefix(c.ID, "tooluse_") || !json.Valid([]byte(c.Function.Arguments)) {
		t.Fatalf("call %+v, want %s with JSON arguments", c, name)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestUsageWithCacheReads(t *testing.T) {
	_, _, srv := startMock(t, bmock.Config{CacheReadTokens: 4})
	a := newAdapter(t, srv, config.Provider{}, nil)
	body := `{"model":"m","messages":[{"role":"user","content":"one two three four five six"}]}`
	resp, err := a.Chat(context.Background(), mkCall(t, body))
	if err != nil {
		t.Fatal(err)
	}
	// prompt = 3 + (3 + 6 words) = 12, of which 4 read from the cache
	want := providers.Usage{PromptTokens: 12, CompletionTokens: 16, TotalTokens: 28, CachedTokens: 4}
	if resp.Usage != want {
		t.Fatalf("usage %+v, want %+v", resp.Usage, want)
	}
	var r struct {
		Usage struct {
			Details struct {
				Cached int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	if json.Unmarshal(resp.Body, &r); r.Usage.Details.Cached != 4 {
		t.Fatalf("cached_tokens not in the body: %s", resp.Body)
	}
	st, err := a.ChatStream(context.Background(), mkCall(t, strings.Replace(body, `"m",`, `"m","stream":true,`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, st)
	if err != nil || got.usage != want {
		t.Fatalf("stream usage %+v (%v), want %+v", got.usage, err, want)
	}
}

// suite is the shared adapter suite (providertest) against the mock.
func suite(a *Adapter) providertest.Suite {
	return providertest.Suite{Adapter: a, NewCall: mkCall, Model: "m", Provider: "bedrock-test", Secret: testSecret}
}

func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	_, _, srv := startMock(t, bmock.Config{})
	suite(newAdapter(t, srv, config.Provider{}, nil)).Errors(t, []providertest.Failure{
		{Name: "status=400", Content: "hi #mock:status=400", Status: 400, Type: "invalid_request_error"},
		{Name: "status=403", Content: "hi #mock:status=403", Status: 403, Type: "permission_error", Code: "access_denied"},
		{Name: "status=404", Content: "hi #mock:status=404", Status: 404, Type: "invalid_request_error", Code: "model_not_found"},
		{Name: "status=408", Content: "hi #mock:status=408", Status: 408, Type: "timeout", Code: "model_timeout", Retryable: true, Timeout: true},
		{Name: "status=424", Content: "hi #mock:status=424", Status: 424, Type: "server_error", Code: "model_error"},
		{Name: "status=429", Content: "hi #mock:status=429", Status: 429, Type: "rate_limit_error", Code: "rate_limit_exceeded", Retryable: true},
		{Name: "quota", Content: "hi #mock:quota", Status: 400, Type: "insufficient_quota", Code: "insufficient_quota"},
		{Name: "status=500", Content: "hi #mock:status=500", Status: 500, Type: "server_error", Retryable: true},
		{Name: "status=503", Content: "hi #mock:status=503", Status: 503, Type: "server_error", Code: "service_unavailable", Retryable: true},
	})
}

func TestMidStreamFailures(t *testing.T) {
	t.Parallel()
	_, _, srv := startMock(t, bmock.Config{})
	suite(newAdapter(t, srv, config.Provider{}, nil)).Breaks(t, []providertest.Break{
		{Name: "stream-error", Content: "hi #mock:stream-error", Status: 424},  // modelStreamErrorException
		{Name: "reset", Content: "hi #mock:reset", Status: 0, Retryable: true}, // connection cut
	})
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		name    string
		mock    bmock.Config
		pc      config.Provider
		env     map[string]string
		wantErr string // Code of the upstream error, "" for success
	}{
		{"sigv4 from config", bmock.Config{}, config.Provider{APIKey: testAKID + ":" + testSecret}, nil, ""},
		{"sigv4 from env with session token", bmock.Config{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "FQoGZXIvYXdzEXAMPLE"},
			config.Provider{}, map[string]string{"AWS_ACCESS_KEY_ID": testAKID, "AWS_SECRET_ACCESS_KEY": testSecret, "AWS_SESSION_TOKEN": "FQoGZXIvYXdzEXAMPLE", "AWS_REGION": "us-east-1"}, ""},
		{"wrong secret", bmock.Config{}, config.Provider{APIKey: testAKID + ":not-the-secret"}, nil, "invalid_api_key"},
		{"wrong region", bmock.Config{}, config.Provider{APIKey: testAKID + ":" + testSecret, Region: "eu-west-1"}, nil, "invalid_api_key"},
		{"bedrock api key from env", bmock.Config{Config: mock.Config{APIKey: "ABSKbedrockapikey"}}, config.Provider{Region: "us-west-2"},
			map[string]string{"AWS_BEARER_TOKEN_BEDROCK": "ABSKbedrockapikey"}, ""},
		{"bedrock api key from api_key_env", bmock.Config{Config: mock.Config{APIKey: "ABSKbedrockapikey"}}, config.Provider{APIKeyEnv: "MY_KEY"},
			map[string]string{"MY_KEY": "ABSKbedrockapikey"}, ""},
		{"wrong bedrock api key", bmock.Config{Config: mock.Config{APIKey: "ABSKbedrockapikey"}}, config.Provider{APIKey: "ABSKother"}, nil, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, srv := startMock(t, tt.mock)
			a := newAdapter(t, srv, tt.pc, tt.env)
			_, err := a.Chat(context.Background(), mkCall(t, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != 403 || pe.Code != tt.wantErr || pe.Type != "authentication_error" || pe.Retryable() {
				t.Fatalf("got %T %+v", err, err)
			}
			if strings.Contains(pe.Error(), testSecret) {
				t.Fatal("the error names the secret")
			}
		})
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	tests := []struct {
		name string
		pc   config.Provider
		env  map[string]string
	}{
		{"no region", config.Provider{APIKey: "a:b"}, nil},
		{"no credentials", config.Provider{Region: "us-east-1"}, nil},
		{"half a key pair", config.Provider{Region: "us-east-1", APIKey: "AKID:"}, nil},
		{"secret without key id in env", config.Provider{Region: "us-east-1"}, map[string]string{"AWS_SECRET_ACCESS_KEY": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.pc, providers.Deps{Getenv: func(k string) string { return tt.env[k] }})
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), "a:b") {
				t.Fatal("error echoes the key")
			}
		})
	}
	p, err := New(config.Provider{Name: "b", APIKey: "k"}, providers.Deps{Getenv: func(k string) string {
		return map[string]string{"AWS_DEFAULT_REGION": "ap-northeast-1"}[k]
	}})
	if err != nil || p.(*Adapter).baseURL != "https://bedrock-runtime.ap-northeast-1.amazonaws.com" {
		t.Fatalf("default endpoint: %v %+v", err, p)
	}
}

func TestModelIDsAreEscaped(t *testing.T) {
	ids := []string{
		"anthropic.claude-3-5-sonnet-20240620-v1:0",
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
	}
	_, _, srv := startMock(t, bmock.Config{Config: mock.Config{Models: ids}})
	a := newAdapter(t, srv, config.Provider{}, nil)
	for _, id := range ids {
		for _, stream := range []bool{false, true} {
			c := mkCall(t, `{"model":"m","stream":`+map[bool]string{true: "true", false: "false"}[stream]+`,"messages":[{"role":"user","content":"hi"}]}`)
			c.Model = id
			var err error
			if stream {
				var st providers.Stream
				if st, err = a.ChatStream(context.Background(), c); err == nil {
					_, err = collect(t, st)
				}
			} else {
				_, err = a.Chat(context.Background(), c)
			}
			if err != nil {
				t.Fatalf("%s (stream=%v): %v", id, stream, err)
			}
		}
	}
	if u, _ := a.endpoint(ids[1], "converse"); !strings.Contains(u.String(), "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic") {
		t.Fatalf("ARN not escaped: %s", u)
	}
}

func TestRequestErrors(t *testing.T) {
	tests := []struct{ name, body, param string }{
		{"image by URL", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"unsupported image type", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AAAA"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"n above 1", `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{"bad arguments", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"unknown tool choice", `{"model":"m","tools":[` + weatherTool + `],"tool_choice":{"type":"function","function":{"name":"nope"}},"messages":[{"role":"user","content":"hi"}]}`, "tool_choice"},
		{"empty user message", `{"model":"m","messages":[{"role":"user","content":"  "}]}`, "messages[0].content"},
	}
	_, rec, srv := startMock(t, bmock.Config{})
	a := newAdapter(t, srv, config.Provider{}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Chat(context.Background(), mkCall(t, tt.body))
			var re *providers.RequestError
			if !errors.As(err, &re) || re.Param != tt.param {
				t.Fatalf("want a RequestError on %s, got %T %v", tt.param, err, err)
			}
		})
	}
	if len(rec.bodies) != 0 {
		t.Fatalf("untranslatable requests reached the upstream: %d", len(rec.bodies))
	}
}

func TestTimeoutBeforeHeaders(t *testing.T) {
	t.Parallel()
	_, _, srv := startMock(t, bmock.Config{Config: mock.Config{Latency: 2 * time.Second}})
	a := newAdapter(t, srv, config.Provider{Timeout: 50 * time.Millisecond}, nil)
	suite(a).TimeoutBeforeHeaders(t, a, "hi")
}

func TestCloseMidStream(t *testing.T) {
	t.Parallel()
	m, _, srv := startMock(t, bmock.Config{Config: mock.Config{TokensPerSec: 200, CompletionTokens: 400}})
	suite(newAdapter(t, srv, config.Provider{}, nil)).CloseMidStream(t, func() int64 { return m.Stats().Canceled })
}
