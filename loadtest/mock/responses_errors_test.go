package mock

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

func TestResponsesErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		cfg        Config
		params     func(p *responses.ResponseNewParams)
		wantStatus int
		wantCode   string
		wantParam  string
		check      func(t *testing.T, e *openai.Error)
	}{
		{"429 with retry-after", Config{FailRate429: 1, RetryAfter: 1500 * time.Millisecond}, nil, 429, "rate_limit_exceeded", "", func(t *testing.T, e *openai.Error) {
			h := e.Response.Header
			if h.Get("Retry-After") != "2" || h.Get("retry-after-ms") != "1500" || h.Get("x-ratelimit-remaining-requests") != "0" || e.Type != "requests" {
				t.Fatalf("headers %v type %q", h, e.Type)
			}
		}},
		{"directive 429 retry-after", Config{}, func(p *responses.ResponseNewParams) { p.Input = userInput("x #mock:status=429;retry-after=3") }, 429, "rate_limit_exceeded", "", func(t *testing.T, e *openai.Error) {
			if e.Response.Header.Get("Retry-After") != "3" {
				t.Fatalf("headers %v", e.Response.Header)
			}
		}},
		{"quota", Config{}, func(p *responses.ResponseNewParams) { p.Input = userInput("x #mock:quota") }, 429, "insufficient_quota", "", func(t *testing.T, e *openai.Error) {
			if e.Response.Header.Get("x-should-retry") != "false" {
				t.Fatalf("headers %v", e.Response.Header)
			}
		}},
		{"503 by header", Config{}, func(p *responses.ResponseNewParams) {}, 503, "", "", nil},
		{"unknown model", Config{Models: []string{"gpt-a"}}, nil, 404, "model_not_found", "", nil},
		{"previous_response_id", Config{}, func(p *responses.ResponseNewParams) { p.PreviousResponseID = openai.String("resp_gone") }, 400, "previous_response_not_found", "previous_response_id", func(t *testing.T, e *openai.Error) {
			if e.Message != "Previous response with id 'resp_gone' not found." || e.Type != "invalid_request_error" {
				t.Fatalf("%q %q", e.Message, e.Type)
			}
		}},
		{"max_output_tokens below 16", Config{}, func(p *responses.ResponseNewParams) { p.MaxOutputTokens = openai.Int(15) }, 400, "integer_below_min_value", "max_output_tokens", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, tc.cfg)
			params := responses.ResponseNewParams{Model: "m", Input: userInput("hi")}
			if tc.params != nil {
				tc.params(&params)
			}
			var opts []option.RequestOption
			if tc.name == "503 by header" {
				opts = append(opts, option.WithHeader(DirectiveHeader, "status=503"))
			}
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					st := officialClient(base, "").Responses.NewStreaming(context.Background(), params, opts...)
					for st.Next() {
						t.Fatal("an HTTP error must not yield events")
					}
					err = st.Err()
				} else {
					_, err = officialClient(base, "").Responses.New(context.Background(), params, opts...)
				}
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("stream=%v: want *openai.Error, got %T %v", stream, err, err)
				}
				if apiErr.StatusCode != tc.wantStatus || apiErr.Code != tc.wantCode || apiErr.Param != tc.wantParam || apiErr.Message == "" {
					t.Fatalf("stream=%v: got %d code=%q param=%q msg=%q", stream, apiErr.StatusCode, apiErr.Code, apiErr.Param, apiErr.Message)
				}
				if !strings.HasPrefix(apiErr.Response.Header.Get("x-request-id"), "req_") {
					t.Fatalf("no x-request-id: %v", apiErr.Response.Header)
				}
				if tc.check != nil {
					tc.check(t, apiErr)
				}
			}
			if s := srv.Stats(); s.Failures[tc.wantStatus] != 2 || s.Streams != 0 || s.Chat != 2 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestResponsesValidation(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	fn := `{"type":"function","name":"f","parameters":{"type":"object"}}`
	cases := []struct {
		name, body string
		wantStatus int
		wantParam  string // "" = null
		wantCode   string
	}{
		{"missing model", `{"input":"x"}`, 400, "model", "missing_required_parameter"},
		{"missing input", `{"model":"m"}`, 400, "input", "missing_required_parameter"},
		{"stored prompt without input", `{"model":"m","prompt":{"id":"pmpt_1"}}`, 200, "", ""},
		{"input of a bad type", `{"model":"m","input":5}`, 400, "input", "invalid_type"},
		{"empty input", `{"model":"m","input":[]}`, 400, "input", "empty_array"},
		{"bad role", `{"model":"m","input":[{"role":"bot","content":"x"}]}`, 400, "input[0].role", "invalid_value"},
		{"missing role", `{"model":"m","input":[{"content":"x"}]}`, 400, "input[0].role", "missing_required_parameter"},
		{"bad content", `{"model":"m","input":[{"role":"user","content":5}]}`, 400, "input[0].content", "invalid_type"},
		{"output without call_id", `{"model":"m","input":[{"role":"user","content":"x"},{"type":"function_call_output","output":"y"}]}`, 400, "input[1].call_id", "missing_required_parameter"},
		{"unknown item types are accepted", `{"model":"m","input":[{"type":"computer_call_output","call_id":"c","output":{"type":"computer_screenshot","image_url":"u"}},{"role":"user","content":"x"}]}`, 200, "", ""},
		{"chat-style tool", `{"model":"m","input":"x","tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "tools[0].name", "missing_required_parameter"},
		{"tool without type", `{"model":"m","input":"x","tools":[{"name":"f"}]}`, 400, "tools[0].type", "missing_required_parameter"},
		{"unknown named tool", `{"model":"m","input":"x","tools":[` + fn + `],"tool_choice":{"type":"function","name":"g"}}`, 400, "tool_choice", "invalid_value"},
		{"bad tool_choice", `{"model":"m","input":"x","tools":[` + fn + `],"tool_choice":"always"}`, 400, "tool_choice", "invalid_value"},
		{"json_schema without name", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`, 400, "text.format.name", "missing_required_parameter"},
		{"json_schema without schema", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"s"}}}`, 400, "text.format.schema", "missing_required_parameter"},
		{"bad format type", `{"model":"m","input":"x","text":{"format":{"type":"xml"}}}`, 400, "text.format.type", "invalid_value"},
		{"json_object without the word", `{"model":"m","input":"x","text":{"format":{"type":"json_object"}}}`, 400, "input", ""},
		{"bad effort", `{"model":"m","input":"x","reasoning":{"effort":"huge"}}`, 400, "reasoning.effort", "invalid_value"},
		{"bad summary", `{"model":"m","input":"x","reasoning":{"summary":"long"}}`, 400, "reasoning.summary", "invalid_value"},
		{"temperature above 2", `{"model":"m","input":"x","temperature":2.5}`, 400, "temperature", "decimal_above_max_value"},
		{"top_p below 0", `{"model":"m","input":"x","top_p":-1}`, 400, "top_p", "decimal_below_min_value"},
		{"bad truncation", `{"model":"m","input":"x","truncation":"sometimes"}`, 400, "truncation", "invalid_value"},
		{"bad metadata", `{"model":"m","input":"x","metadata":"k"}`, 400, "metadata", "invalid_type"},
		{"bad directive", `{"model":"m","input":"x #mock:status=abc"}`, 400, "input", ""},
		{"unknown fields are accepted", `{"model":"m","input":"x","store":false,"prompt_cache_key":"k","service_tier":"flex","safety_identifier":"s","stream_options":{"include_obfuscation":false},"future_field":{"a":1}}`, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, context.Background(), base+"/responses", tc.body, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tc.wantStatus == 200 {
				var r responses.Response
				if err := json.Unmarshal(body, &r); err != nil || r.Status != "completed" {
					t.Fatalf("%s", body)
				}
				return
			}
			var e struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			want := func(v string) string {
				if v == "" {
					return "null"
				}
				return strconv.Quote(v)
			}
			if string(e.Error["param"]) != want(tc.wantParam) || string(e.Error["code"]) != want(tc.wantCode) ||
				string(e.Error["type"]) != `"invalid_request_error"` || len(e.Error["message"]) < 3 {
				t.Fatalf("body %s", body)
			}
		})
	}
}

func TestResponsesMidStream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		input     string
		wantLast  string // the last event; "" = the connection is cut
		sdkErrors bool   // openai-go reports an error
	}{
		{"error event", "hi #mock:stream-error", "error", true},
		{"response.failed", "hi #mock:stream-error=failed", "response.failed", false},
		{"reset", "hi #mock:reset", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{CompletionTokens: 30})
			resp := post(t, context.Background(), base+"/responses", `{"model":"m","stream":true,"input":"`+tc.input+`"}`, nil)
			events, err := readEvents(t, resp.Body)
			resp.Body.Close()
			if tc.wantLast == "" {
				if err == nil || len(events) != respEventsBeforeFault {
					t.Fatalf("a cut stream: %d events, err %v", len(events), err)
				}
			} else {
				if err != nil || len(events) != respEventsBeforeFault+1 {
					t.Fatalf("%d events, err %v", len(events), err)
				}
				last := events[len(events)-1]
				if last.name != tc.wantLast || events[len(events)-2].name != "response.output_text.delta" {
					t.Fatalf("events end with %s: %s", last.name, last.data)
				}
				u := checkEvent(t, last)
				if u.SequenceNumber != respEventsBeforeFault {
					t.Fatalf("sequence_number %d", u.SequenceNumber)
				}
				switch last.name {
				case "error":
					e := u.AsError()
					var nested struct {
						Error struct{ Type, Code, Message string }
					}
					_ = json.Unmarshal([]byte(last.data), &nested)
					if e.Code != "server_error" || e.Message == "" || e.JSON.Param.Raw() != "null" ||
						nested.Error.Type != "server_error" || nested.Error.Message != e.Message {
						t.Fatalf("error event %s", last.data)
					}
				case "response.failed":
					r := u.AsResponseFailed().Response
					if r.Status != "failed" || r.Error.Code != "server_error" || r.Error.Message == "" {
						t.Fatalf("failed event %s", last.data)
					}
				}
			}

			// The official SDK.
			st := officialClient(base, "").Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "m", Input: userInput(tc.input)})
			var types []string
			for st.Next() {
				types = append(types, st.Current().Type)
			}
			st.Close()
			if tc.sdkErrors != (st.Err() != nil) {
				t.Fatalf("openai-go: err %v after %v", st.Err(), types)
			}
			if tc.wantLast == "response.failed" && types[len(types)-1] != "response.failed" {
				t.Fatalf("openai-go: %v", types)
			}
			testutil.Eventually(t, "handlers done", func() bool { return srv.Stats().Active == 0 })
			s := srv.Stats()
			if s.Completed != 0 || s.Streams != 2 || s.CompletionTokens != 2 {
				t.Fatalf("stats %+v", s)
			}
			if (tc.wantLast == "") != (s.Resets == 2) {
				t.Fatalf("resets: %+v", s)
			}
		})
	}

	t.Run("non-stream reset", func(t *testing.T) {
		_, base := startServer(t, Config{})
		_, err := officialClient(base, "").Responses.New(context.Background(), responses.ResponseNewParams{Model: "m", Input: userInput("#mock:reset")})
		if err == nil {
			t.Fatal("want a connection error")
		}
	})
}

func TestResponsesClientCancel(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{TokensPerSec: 50})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := officialClient(base, "").Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "m", Input: userInput("#mock:tokens=100000")})
	for st.Next() {
		if st.Current().Type == "response.output_text.delta" {
			cancel()
		}
	}
	st.Close()
	testutil.Eventually(t, "Canceled", func() bool { return srv.Stats().Canceled == 1 })
	testutil.Eventually(t, "handler exit", func() bool { return srv.Stats().Active == 0 })
	if s := srv.Stats(); s.Completed != 0 || s.CompletionTokens == 0 || s.CompletionTokens > 1000 {
		t.Fatalf("stats %+v", s)
	}
}
