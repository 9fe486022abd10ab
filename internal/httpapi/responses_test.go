package httpapi_test

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

	official "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
	geminimock "github.com/xroute/xroute/loadtest/mock/gemini"
)

// recorder keeps the bodies (and the last headers) an upstream received,
// by path.
type recorder struct {
	mu      sync.Mutex
	h       http.Handler
	bodies  map[string][][]byte
	headers map[string]http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	if r.bodies == nil {
		r.bodies, r.headers = map[string][][]byte{}, map[string]http.Header{}
	}
	r.bodies[req.URL.Path] = append(r.bodies[req.URL.Path], b)
	r.headers[req.URL.Path] = req.Header.Clone()
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(b))
	r.h.ServeHTTP(w, req)
}

// header is the last request's headers on a path ending in suffix.
func (r *recorder) header(t *testing.T, suffix string) http.Header {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, h := range r.headers {
		if strings.HasSuffix(p, suffix) {
			return h
		}
	}
	t.Fatalf("no request to %s", suffix)
	return nil
}

// last is the last body received on a path ending in suffix.
func (r *recorder) last(t *testing.T, suffix string) []byte {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, bs := range r.bodies {
		if strings.HasSuffix(p, suffix) && len(bs) > 0 {
			return bs[len(bs)-1]
		}
	}
	t.Fatalf("no request to %s", suffix)
	return nil
}

// respGateway is xroute in front of: the OpenAI mock speaking the
// Responses API and legacy completions natively ("primary", model
// gpt-4o-mini), the same mock as a chat-only compatible API ("compat",
// translated), the Anthropic and Gemini mocks (translated), and a model
// whose first deployment is native OpenAI and second Anthropic.
type respGateway struct {
	*gateway
	claude, primary *recorder
}

func newRespGateway(t *testing.T, extra ...config.Model) *respGateway {
	t.Helper()
	rg := &respGateway{}
	rg.claude = &recorder{h: anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: "sk-ant-test-key-0001"}})}
	am := httptest.NewServer(rg.claude)
	t.Cleanup(am.Close)
	gm := httptest.NewServer(geminimock.New(geminimock.Config{Config: mock.Config{APIKey: "AIza-test-key-0001"}}))
	t.Cleanup(gm.Close)
	cm := httptest.NewServer(mock.New(mock.Config{APIKey: providerKey}))
	t.Cleanup(cm.Close)
	rg.primary = &recorder{}
	rg.gateway = newGateway(t, gwOptions{wrapPrimary: func(h http.Handler) http.Handler { rg.primary.h = h; return rg.primary }, mutate: func(c *config.Config) {
		c.Providers[0].NativeFormats = []string{"responses", "completions"}
		c.Providers = append(c.Providers,
			config.Provider{Name: "compat", Type: "openai", BaseURL: cm.URL + "/v1", APIKey: providerKey},
			config.Provider{Name: "claude", Type: "anthropic", BaseURL: am.URL, APIKey: "sk-ant-test-key-0001"},
			config.Provider{Name: "google", Type: "gemini", BaseURL: gm.URL, APIKey: "AIza-test-key-0001"},
		)
		c.Models = append(c.Models,
			config.Model{Name: "compat-test", Deployments: []config.Deployment{{Provider: "compat", Model: "mock-small"}}},
			config.Model{Name: "claude-test", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5"}}},
			config.Model{Name: "gemini-test", Deployments: []config.Deployment{{Provider: "google", Model: "gemini-2.5-flash"}}},
			config.Model{Name: "failover-test", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small"}, {Provider: "claude", Model: "claude-sonnet-4-5"}}},
		)
		c.Models = append(c.Models, extra...)
	}})
	return rg
}

// respModels are the deployments every Responses test runs against.
var respModels = []struct{ model, provider string }{
	{"gpt-4o-mini", "primary"}, // native passthrough
	{"compat-test", "compat"},  // OpenAI chat, translated
	{"claude-test", "claude"},  // Anthropic Messages, translated
	{"gemini-test", "google"},  // Gemini, translated
}

func textInput(s string) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfString: official.String(s)}
}

func TestResponsesCreate(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			var raw *http.Response
			resp, err := officialClient(g.gateway, g.key).Responses.New(ctx, responses.ResponseNewParams{
				Model: m.model, Input: textInput("Say hello"), Instructions: official.String("Be brief."), MaxOutputTokens: official.Int(64),
			}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.ID, "resp_") || resp.Object != "response" || resp.Status != "completed" || resp.OutputText() == "" {
				t.Fatalf("response: %s", resp.RawJSON())
			}
			if resp.Usage.InputTokens == 0 || resp.Usage.OutputTokens == 0 || resp.Usage.TotalTokens != resp.Usage.InputTokens+resp.Usage.OutputTokens {
				t.Fatalf("usage: %s", resp.RawJSON())
			}
			msg := resp.Output[len(resp.Output)-1]
			if msg.Type != "message" || !strings.HasPrefix(msg.ID, "msg_") || msg.Role != "assistant" || msg.Status != "completed" {
				t.Fatalf("output item: %s", msg.RawJSON())
			}
			if raw.Header.Get("x-xroute-provider") != m.provider {
				t.Fatalf("served by %q, want %q", raw.Header.Get("x-xroute-provider"), m.provider)
			}
			rec := g.usageFor(raw.Header.Get("x-request-id"))
			if rec.PromptTokens != int(resp.Usage.InputTokens) || rec.CompletionTokens != int(resp.Usage.OutputTokens) || rec.Status != 200 || rec.Model != m.model {
				t.Fatalf("usage record %+v, response usage %+v", rec, resp.Usage)
			}
		})
	}
}

// streamed collects a Responses stream's events.
type streamed struct {
	types  []string
	events []responses.ResponseStreamEventUnion
	err    error
}

func streamResponse(ctx context.Context, c *official.Client, p responses.ResponseNewParams, opts ...option.RequestOption) streamed {
	var out streamed
	st := c.Responses.NewStreaming(ctx, p, opts...)
	for st.Next() {
		ev := st.Current()
		out.types = append(out.types, ev.Type)
		out.events = append(out.events, ev)
	}
	out.err = st.Err()
	return out
}

// checkOrder asserts the events follow the reference's sequence: created,
// in_progress, then per item added … done, then completed; sequence
// numbers strictly increase from 0.
func (s streamed) checkOrder(t *testing.T) {
	t.Helper()
	if s.err != nil {
		t.Fatalf("stream: %v (events %v)", s.err, s.types)
	}
	if len(s.types) < 4 || s.types[0] != "response.created" || s.types[1] != "response.in_progress" || s.types[len(s.types)-1] != "response.completed" {
		t.Fatalf("events %v", s.types)
	}
	for i, ev := range s.events {
		if ev.SequenceNumber != int64(i) {
			t.Fatalf("event %d (%s) has sequence_number %d", i, ev.Type, ev.SequenceNumber)
		}
	}
	open := map[string]bool{}
	for _, ev := range s.events {
		switch ev.Type {
		case "response.output_item.added":
			open[ev.Item.ID] = true
		case "response.output_item.done":
			if !open[ev.Item.ID] {
				t.Fatalf("item %s done before added: %v", ev.Item.ID, s.types)
			}
			delete(open, ev.Item.ID)
		case "response.output_text.delta", "response.output_text.done", "response.content_part.added", "response.content_part.done",
			"response.function_call_arguments.delta", "response.function_call_arguments.done":
			if !open[ev.ItemID] {
				t.Fatalf("%s for item %s outside added…done: %v", ev.Type, ev.ItemID, s.types)
			}
		}
	}
	if len(open) > 0 {
		t.Fatalf("items never done: %v", open)
	}
}

func (s streamed) final() responses.Response { return s.events[len(s.events)-1].Response }

func TestResponsesStream(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			s := streamResponse(ctx, officialClient(g.gateway, g.key), responses.ResponseNewParams{Model: m.model, Input: textInput("Count to five"), MaxOutputTokens: official.Int(64)})
			s.checkOrder(t)
			want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added", "response.output_text.delta"}
			for i, w := range want {
				if s.types[i] != w {
					t.Fatalf("event %d is %s, want %s: %v", i, s.types[i], w, s.types)
				}
			}
			tail := []string{"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
			for i, w := range tail {
				if got := s.types[len(s.types)-len(tail)+i]; got != w {
					t.Fatalf("tail event %s, want %s: %v", got, w, s.types)
				}
			}
			var deltas, done string
			for _, ev := range s.events {
				switch ev.Type {
				case "response.output_text.delta":
					deltas += ev.Delta
				case "response.output_text.done":
					done = ev.Text
				}
			}
			fin := s.final()
			if deltas == "" || deltas != done || fin.OutputText() != done || fin.Status != "completed" || fin.Usage.OutputTokens == 0 {
				t.Fatalf("deltas %q, done %q, final %s", deltas, done, fin.RawJSON())
			}
			if s.events[0].Response.ID != fin.ID {
				t.Fatalf("created %s, completed %s", s.events[0].Response.ID, fin.ID)
			}
		})
	}
}

var weatherTool = responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
	Name: "get_weather", Description: official.String("Current weather in a city."), Strict: official.Bool(false),
	Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
}}

func TestResponsesFunctionToolRoundTrip(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			c := officialClient(g.gateway, g.key)
			first, err := c.Responses.New(ctx, responses.ResponseNewParams{
				Model: m.model, Input: textInput("What is the weather in Paris?"), Tools: []responses.ToolUnionParam{weatherTool},
				ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: official.Opt(responses.ToolChoiceOptionsRequired)},
				Store:      official.Bool(false),
			})
			if err != nil {
				t.Fatal(err)
			}
			var call responses.ResponseFunctionToolCall
			for _, it := range first.Output {
				if it.Type == "function_call" {
					call = it.AsFunctionCall()
				}
			}
			if call.Name != "get_weather" || call.CallID == "" || !strings.HasPrefix(call.ID, "fc_") || !json.Valid([]byte(call.Arguments)) {
				t.Fatalf("no function call: %s", first.RawJSON())
			}
			// The caller runs the tool and sends the whole turn back (store
			// false: nothing to continue from).
			second, err := c.Responses.New(ctx, responses.ResponseNewParams{
				Model: m.model, Tools: []responses.ToolUnionParam{weatherTool}, Store: official.Bool(false),
				Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
					responses.ResponseInputItemParamOfMessage("What is the weather in Paris?", responses.EasyInputMessageRoleUser),
					{OfFunctionCall: ptr(call.ToParam())},
					{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{CallID: official.String(call.CallID),
						Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: official.String(`{"temperature_c": 21, "sky": "clear"}`)}}},
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if second.OutputText() == "" || second.Status != "completed" {
				t.Fatalf("answer after the tool: %s", second.RawJSON())
			}
			// Streamed, the call's arguments arrive as deltas.
			s := streamResponse(ctx, c, responses.ResponseNewParams{
				Model: m.model, Input: textInput("Weather in Oslo?"), Tools: []responses.ToolUnionParam{weatherTool}, Store: official.Bool(false),
				ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: official.Opt(responses.ToolChoiceOptionsRequired)},
			})
			s.checkOrder(t)
			var args, done string
			for _, ev := range s.events {
				switch ev.Type {
				case "response.function_call_arguments.delta":
					args += ev.Delta
				case "response.function_call_arguments.done":
					done = ev.Arguments
				}
			}
			if done == "" || (args != "" && args != done) || !json.Valid([]byte(done)) {
				t.Fatalf("arguments deltas %q done %q (%v)", args, done, s.types)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// otherAccountKey is a caller key of a second account.
func (g *gateway) otherAccountKey(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	acct, err := g.app.Keys.CreateAccount(ctx, "other-"+strings.ReplaceAll(t.Name(), "/", "-"), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := g.app.Keys.Create(ctx, keys.CreateParams{Name: "other", AccountID: acct.ID})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestResponsesJSONSchema(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	schema := map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}, "population": map[string]any{"type": "integer"}},
		"required": []string{"city", "population"}, "additionalProperties": false}
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			resp, err := officialClient(g.gateway, g.key).Responses.New(ctx, responses.ResponseNewParams{
				Model: m.model, Input: textInput("The largest city of France, as JSON."), Store: official.Bool(false),
				Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{
					Name: "city", Schema: schema, Strict: official.Bool(true)}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				City       *string `json:"city"`
				Population *int    `json:"population"`
			}
			dec := json.NewDecoder(strings.NewReader(resp.OutputText()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&out); err != nil || out.City == nil || out.Population == nil {
				t.Fatalf("output %q does not follow the schema: %v", resp.OutputText(), err)
			}
			if resp.Text.Format.Type != "json_schema" {
				t.Fatalf("text.format echo: %s", resp.RawJSON())
			}
		})
	}
}

func TestResponsesErrors(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := officialClient(g.gateway, g.key)
	var apiErr *official.Error
	cases := []struct {
		name   string
		params responses.ResponseNewParams
		key    string
		status int
		code   string
		param  string
	}{
		{name: "unknown model", params: responses.ResponseNewParams{Model: "no-such-model", Input: textInput("hi")}, status: 404, code: "model_not_found"},
		{name: "bad key", params: responses.ResponseNewParams{Model: "gpt-4o-mini", Input: textInput("hi")}, key: "xr-not-a-real-key", status: 401},
		{name: "max_output_tokens below 16", params: responses.ResponseNewParams{Model: "claude-test", Input: textInput("hi"), MaxOutputTokens: official.Int(3)}, status: 400, param: "max_output_tokens"},
		{name: "unknown previous response", params: responses.ResponseNewParams{Model: "claude-test", Input: textInput("hi"), PreviousResponseID: official.String("resp_nope")}, status: 400, code: "previous_response_not_found", param: "previous_response_id"},
		{name: "required built-in tool on a translated deployment", params: responses.ResponseNewParams{Model: "claude-test", Input: textInput("search"),
			Tools:      []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: responses.WebSearchToolTypeWebSearch}}},
			ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: official.Opt(responses.ToolChoiceOptionsRequired)}}, status: 400, code: "unsupported_by_model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := g.key
			if tc.key != "" {
				key = tc.key
			}
			_, err := officialClient(g.gateway, key).Responses.New(ctx, tc.params)
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || (tc.code != "" && apiErr.Code != tc.code) || (tc.param != "" && apiErr.Param != tc.param) {
				t.Fatalf("got %v, want %d %s %s", err, tc.status, tc.code, tc.param)
			}
			if apiErr.Message == "" || apiErr.Type == "" {
				t.Fatalf("error without message or type: %s", apiErr.RawJSON())
			}
		})
	}
	// Malformed bodies, sent raw.
	for _, body := range []string{`{"model":"claude-test"}`, `{"model":"claude-test","input":42}`, `{"model":"claude-test","input":[{"type":"function_call_output"}]}`, `not json`} {
		resp := postRaw(t, g.gateway, "/v1/responses", body)
		if resp.StatusCode != 400 || !strings.Contains(resp.body, `"type":"invalid_request_error"`) {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, resp.body)
		}
	}
	// An optional built-in tool is left out on a translated deployment
	// (Codex always offers web_search), and the answer says so.
	var raw *http.Response
	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "claude-test", Input: textInput("hi"), Store: official.Bool(false),
		Tools: []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: responses.WebSearchToolTypeWebSearch}}}}, option.WithResponseInto(&raw))
	if err != nil || resp.OutputText() == "" || raw.Header.Get("x-xroute-dropped-tools") != "web_search" {
		t.Fatalf("optional built-in tool: %v %v", err, raw.Header)
	}
	// A key scoped to chat may not use the Responses API.
	ck, _, err := g.app.Keys.Create(ctx, keys.CreateParams{Name: "chat-only", AllowedEndpoints: []string{keys.EndpointChat}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := officialClient(g.gateway, ck).Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: textInput("hi")}); !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "endpoint_not_allowed" {
		t.Fatalf("chat-only key: %v", err)
	}
}

type rawResponse struct {
	*http.Response
	body string
}

func postRaw(t *testing.T, g *gateway, path, body string) rawResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp, string(b)}
}

func TestResponsesInputTokens(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	res, err := officialClient(g.gateway, g.key).Responses.InputTokens.Count(context.Background(), responses.InputTokenCountParams{
		Model: official.String("gpt-4o-mini"), Input: responses.InputTokenCountParamsInputUnion{OfString: official.String("Hello there, how are you today?")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.InputTokens < 7 || res.InputTokens > 20 || res.Object != "response.input_tokens" {
		t.Fatalf("input tokens: %s", res.RawJSON())
	}
}

// TestSeedBaseURLs: the seed's URL (/openai/v1/...) and trailing slashes
// are answered where they are asked, never redirected.
func TestSeedBaseURLs(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	for _, path := range []string{"/openai/v1/chat/completions", "/v1/chat/completions/", "/openai/v1/chat/completions/"} {
		r := postRaw(t, g.gateway, path, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}`)
		if r.StatusCode != 200 || !strings.Contains(r.body, `"chat.completion"`) {
			t.Fatalf("%s: %d %s", path, r.StatusCode, r.body)
		}
	}
	r := postRaw(t, g.gateway, "/openai/v1/responses/", `{"model":"claude-test","input":"Hello!","store":false}`)
	if r.StatusCode != 200 || !strings.Contains(r.body, `"object":"response"`) {
		t.Fatalf("responses under /openai/v1: %d %s", r.StatusCode, r.body)
	}
	// The official SDK with the seed's base URL.
	c := official.NewClient(option.WithBaseURL(g.srv.URL+"/openai/v1/"), option.WithAPIKey(g.key), option.WithMaxRetries(0))
	if _, err := c.Models.List(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type rawStream struct {
	streamed
	header http.Header
}
