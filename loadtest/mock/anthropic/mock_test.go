package anthropic

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

	"go.uber.org/goleak"

	"github.com/xroute/xroute/loadtest/mock"
	"github.com/xroute/xroute/providers/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// post sends body to /v1/messages with the usual headers plus hdr ("" value
// deletes a header).
func post(t *testing.T, base, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", "sk-ant-test")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

type errBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

type msgBody struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Role    string `json:"role"`
	Model   string `json:"model"`
	Content []struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        usage   `json:"usage"`
}

const hello = `{"model":"claude-test","max_tokens":100,"messages":[{"role":"user","content":"hello there"}]}`

func TestValidation(t *testing.T) {
	_, base := start(t, Config{Config: mock.Config{APIKey: "sk-ant-test"}})
	tests := []struct {
		name   string
		body   string
		hdr    map[string]string
		status int
		typ    string
		msg    string
	}{
		{"no api key", hello, map[string]string{"x-api-key": ""}, 401, "authentication_error", "x-api-key header is required"},
		{"wrong api key", hello, map[string]string{"x-api-key": "nope"}, 401, "authentication_error", "invalid x-api-key"},
		{"bearer is not enough", hello, map[string]string{"x-api-key": "", "Authorization": "Bearer sk-ant-test"}, 401, "authentication_error", ""},
		{"no version", hello, map[string]string{"anthropic-version": ""}, 400, "invalid_request_error", "anthropic-version"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "max_tokens: Field required"},
		{"no model", `{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "model"},
		{"empty messages", `{"model":"m","max_tokens":5,"messages":[]}`, nil, 400, "invalid_request_error", "at least one message"},
		{"system role", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "messages.0.role"},
		{"roles must alternate", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, nil, 400, "invalid_request_error", "roles must alternate"},
		{"empty text block", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}`, nil, 400, "invalid_request_error", "non-empty"},
		{"empty content", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[]}]}`, nil, 400, "invalid_request_error", "non-empty content"},
		{"orphan tool_result", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_x","content":"1"}]}]}`, nil, 400, "invalid_request_error", "unexpected `tool_use_id`"},
		{"unanswered tool_use", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},{"role":"user","content":"b"}]}`, nil, 400, "invalid_request_error", "without `tool_result`"},
		{"tool_result after text", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},{"role":"user","content":[{"type":"text","text":"b"},{"type":"tool_result","tool_use_id":"toolu_1"}]}]}`, nil, 400, "invalid_request_error", "must come before"},
		{"bad image media type", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AAAA"}}]}]}`, nil, 400, "invalid_request_error", "media_type"},
		{"tool without schema", `{"model":"m","max_tokens":5,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"a"}]}`, nil, 400, "invalid_request_error", "input_schema"},
		{"tool_choice without tools", `{"model":"m","max_tokens":5,"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"a"}]}`, nil, 400, "invalid_request_error", "tool_choice"},
		{"unknown named tool", `{"model":"m","max_tokens":5,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"g"},"messages":[{"role":"user","content":"a"}]}`, nil, 400, "invalid_request_error", "not found"},
		{"temperature above 1", `{"model":"m","max_tokens":5,"temperature":1.5,"messages":[{"role":"user","content":"a"}]}`, nil, 400, "invalid_request_error", "temperature"},
		{"bad directive", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"#mock:bogus"}]}`, nil, 400, "invalid_request_error", "directive"},
		{"not json", `{`, nil, 400, "invalid_request_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, base, tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if resp.Header.Get("request-id") == "" {
				t.Error("no request-id header")
			}
			var e errBody
			readJSON(t, resp, &e)
			if e.Type != "error" || e.Error.Type != tt.typ || !strings.Contains(e.Error.Message, tt.msg) || e.RequestID == "" {
				t.Fatalf("error body %+v, want type %s and message containing %q", e, tt.typ, tt.msg)
			}
		})
	}
}

func TestTextMatchesOpenAIMock(t *testing.T) {
	_, base := start(t, Config{})
	oa := httptest.NewServer(mock.New(mock.Config{}))
	t.Cleanup(oa.Close)

	resp := post(t, base, `{"model":"claude-test","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hello there"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "application/json" {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("content-type"))
	}
	var m msgBody
	readJSON(t, resp, &m)
	if !strings.HasPrefix(m.ID, "msg_01") || m.Type != "message" || m.Role != "assistant" || m.Model != "claude-test" || m.StopReason != "end_turn" || m.StopSequence != nil {
		t.Fatalf("message %+v", m)
	}
	if len(m.Content) != 1 || m.Content[0].Type != "text" {
		t.Fatalf("content %+v", m.Content)
	}
	if m.Usage.OutputTokens != mock.DefaultCompletionTokens || m.Usage.InputTokens == 0 {
		t.Fatalf("usage %+v", m.Usage)
	}

	req, _ := http.NewRequest(http.MethodPost, oa.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}`))
	oresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer oresp.Body.Close()
	var oc struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	readJSON(t, oresp, &oc)
	if oc.Choices[0].Message.Content != m.Content[0].Text {
		t.Fatalf("text differs from the OpenAI mock:\n%q\n%q", m.Content[0].Text, oc.Choices[0].Message.Content)
	}
	if oc.Usage.PromptTokens != m.Usage.InputTokens {
		t.Fatalf("prompt tokens %d, OpenAI mock %d", m.Usage.InputTokens, oc.Usage.PromptTokens)
	}
}

func TestLengthStopSequenceAndCache(t *testing.T) {
	_, base := start(t, Config{CacheReadTokens: 4, CacheCreationTokens: 100})
	resp := post(t, base, `{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hello there"}]}`, nil)
	var m msgBody
	readJSON(t, resp, &m)
	if m.StopReason != "max_tokens" || m.Usage.OutputTokens != 3 || strings.Count(m.Content[0].Text, " ") != 2 {
		t.Fatalf("max_tokens answer %+v", m)
	}
	prompt := 3 + 3 + 2
	if m.Usage.CacheReadInputTokens != 4 || m.Usage.CacheCreationInputTokens != prompt-4 || m.Usage.InputTokens != 0 {
		t.Fatalf("cache usage %+v (prompt %d)", m.Usage, prompt)
	}

	// The third word of the full answer as a stop sequence.
	full := post(t, base, hello, nil)
	readJSON(t, full, &m)
	words := strings.Fields(m.Content[0].Text)
	body := `{"model":"m","max_tokens":100,"stop_sequences":["zzz"," ` + words[2] + `"],"messages":[{"role":"user","content":"hello there"}]}`
	var cut msgBody
	readJSON(t, post(t, base, body, nil), &cut)
	if cut.StopReason != "stop_sequence" || cut.StopSequence == nil || *cut.StopSequence != " "+words[2] {
		t.Fatalf("stop: %+v", cut)
	}
	if cut.Content[0].Text != words[0]+" "+words[1] {
		t.Fatalf("text before the stop sequence %q (full %q)", cut.Content[0].Text, m.Content[0].Text)
	}
}

const weatherTools = `"tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}},{"name":"get_time","input_schema":{"type":"object","properties":{"tz":{"type":"string","enum":["UTC","CET"]}}}}]`

func TestToolUse(t *testing.T) {
	_, base := start(t, Config{})
	tests := []struct {
		name      string
		choice    string
		wantTypes []string
		wantStop  string
	}{
		{"auto: text then two calls", ``, []string{"text", "tool_use", "tool_use"}, "tool_use"},
		{"any: calls only", `,"tool_choice":{"type":"any"}`, []string{"tool_use", "tool_use"}, "tool_use"},
		{"no parallel", `,"tool_choice":{"type":"any","disable_parallel_tool_use":true}`, []string{"tool_use"}, "tool_use"},
		{"named", `,"tool_choice":{"type":"tool","name":"get_time"}`, []string{"tool_use"}, "tool_use"},
		{"none", `,"tool_choice":{"type":"none"}`, []string{"text"}, "end_turn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"m","max_tokens":100,` + weatherTools + tt.choice + `,"messages":[{"role":"user","content":"weather?"}]}`
			var m msgBody
			readJSON(t, post(t, base, body, nil), &m)
			var types []string
			for _, c := range m.Content {
				types = append(types, c.Type)
				if c.Type == "tool_use" {
					var args map[string]any
					if !strings.HasPrefix(c.ID, "toolu_01") || json.Unmarshal(c.Input, &args) != nil {
						t.Fatalf("tool_use %+v", c)
					}
				}
			}
			if strings.Join(types, ",") != strings.Join(tt.wantTypes, ",") || m.StopReason != tt.wantStop {
				t.Fatalf("blocks %v stop %s", types, m.StopReason)
			}
			if tt.name == "named" && m.Content[0].Name != "get_time" {
				t.Fatalf("called %s", m.Content[0].Name)
			}
		})
	}

	// The answer to a tool result is text.
	body := `{"model":"m","max_tokens":100,` + weatherTools + `,"messages":[{"role":"user","content":"weather?"},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}`
	var m msgBody
	readJSON(t, post(t, base, body, nil), &m)
	if len(m.Content) != 1 || m.Content[0].Type != "text" || m.StopReason != "end_turn" {
		t.Fatalf("answer to a tool result: %+v", m)
	}
}

// event is one decoded stream event.
type event struct {
	name string
	data map[string]any
}

func readEvents(t *testing.T, r io.Reader) ([]event, error) {
	t.Helper()
	var out []event
	sr := sse.NewReader(r)
	for {
		ev, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		var d map[string]any
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("event %s: %v: %s", ev.Name, err, ev.Data)
		}
		if d["type"] != ev.Name {
			t.Fatalf("event name %q, data type %v", ev.Name, d["type"])
		}
		out = append(out, event{ev.Name, d})
	}
}

func names(evs []event) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.name)
	}
	return strings.Join(n, " ")
}

func TestStreamOrder(t *testing.T) {
	_, base := start(t, Config{Config: mock.Config{ChunkTokens: 8, CompletionTokens: 16}})
	resp := post(t, base, `{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}`, nil)
	if ct := resp.Header.Get("content-type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content-type %s", ct)
	}
	evs, err := readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := "message_start content_block_start ping content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if got := names(evs); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	var text string
	for _, e := range evs[3:5] {
		text += e.data["delta"].(map[string]any)["text"].(string)
	}
	var m msgBody
	readJSON(t, post(t, base, hello, nil), &m)
	if text != m.Content[0].Text {
		t.Fatalf("streamed %q, plain %q", text, m.Content[0].Text)
	}
	md := evs[6].data
	if md["delta"].(map[string]any)["stop_reason"] != "end_turn" || md["usage"].(map[string]any)["output_tokens"] != float64(16) {
		t.Fatalf("message_delta %v", md)
	}

	// Tools: an empty first fragment, then the arguments.
	resp = post(t, base, `{"model":"m","max_tokens":100,"stream":true,`+weatherTools+`,"messages":[{"role":"user","content":"weather?"}]}`, nil)
	evs, err = readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var args [3]string
	for i, e := range evs {
		switch e.name {
		case "content_block_start":
			if i > 1 && evs[i-1].name != "content_block_stop" {
				t.Fatalf("block started before the previous one stopped: %s", names(evs))
			}
		case "content_block_delta":
			d := e.data["delta"].(map[string]any)
			idx := int(e.data["index"].(float64))
			if d["type"] == "input_json_delta" {
				if args[idx] == "" && evs[i-1].name == "content_block_start" && d["partial_json"] != "" {
					t.Fatal("the first input_json_delta should be empty")
				}
				args[idx] += d["partial_json"].(string)
			}
		}
	}
	for i := 1; i < 3; i++ {
		if !json.Valid([]byte(args[i])) {
			t.Fatalf("arguments of block %d: %q", i, args[i])
		}
	}
}

func TestFailures(t *testing.T) {
	_, base := start(t, Config{Config: mock.Config{RetryAfter: 1500 * time.Millisecond}})
	tests := []struct {
		directive string
		status    int
		typ       string
	}{
		{"status=400", 400, "invalid_request_error"},
		{"status=401", 401, "authentication_error"},
		{"quota", 402, "billing_error"},
		{"status=403", 403, "permission_error"},
		{"status=404", 404, "not_found_error"},
		{"status=413", 413, "request_too_large"},
		{"status=429", 429, "rate_limit_error"},
		{"status=500", 500, "api_error"},
		{"status=504", 504, "timeout_error"},
		{"status=529", 529, "overloaded_error"},
	}
	for _, tt := range tests {
		t.Run(tt.directive, func(t *testing.T) {
			body := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi #mock:` + tt.directive + `"}]}`
			resp := post(t, base, body, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var e errBody
			readJSON(t, resp, &e)
			if e.Error.Type != tt.typ {
				t.Fatalf("type %s", e.Error.Type)
			}
			if tt.status == 429 && resp.Header.Get("retry-after") != "2" {
				t.Fatalf("retry-after %q", resp.Header.Get("retry-after"))
			}
		})
	}

	t.Run("header directive and fail rate", func(t *testing.T) {
		resp := post(t, base, hello, map[string]string{mock.DirectiveHeader: "status=529"})
		if resp.StatusCode != 529 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		s, b2 := start(t, Config{Config: mock.Config{FailRate503: 1}})
		if resp := post(t, b2, hello, nil); resp.StatusCode != 529 {
			t.Fatalf("FailRate503 answered %d", resp.StatusCode)
		}
		if s.Stats().Failures[529] != 1 {
			t.Fatalf("stats %+v", s.Stats())
		}
	})

	t.Run("stream error event", func(t *testing.T) {
		resp := post(t, base, `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi #mock:stream-error"}]}`, nil)
		evs, err := readEvents(t, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		want := "message_start content_block_start ping content_block_delta error"
		if names(evs) != want {
			t.Fatalf("events %s", names(evs))
		}
		if evs[4].data["error"].(map[string]any)["type"] != "overloaded_error" {
			t.Fatalf("error event %v", evs[4].data)
		}
	})

	t.Run("stream reset", func(t *testing.T) {
		s, b := start(t, Config{})
		resp := post(t, b, `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi #mock:reset"}]}`, nil)
		evs, err := readEvents(t, resp.Body)
		if err == nil {
			t.Fatalf("stream not cut: %s", names(evs))
		}
		if len(evs) != 4 || s.Stats().Resets != 1 {
			t.Fatalf("events %s, stats %+v", names(evs), s.Stats())
		}
	})
}

func TestLatencyAndCancel(t *testing.T) {
	s, base := start(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/messages", strings.NewReader(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi #mock:latency=5s"}]}`))
	req.Header.Set("anthropic-version", "2023-06-01")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("expected a timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Canceled != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTokensDirectiveAndPacing(t *testing.T) {
	_, base := start(t, Config{Config: mock.Config{TokensPerSec: 200}})
	begin := time.Now()
	resp := post(t, base, `{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi #mock:tokens=10"}]}`, nil)
	evs, err := readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(begin); el < 40*time.Millisecond {
		t.Fatalf("10 tokens at 200/s took %v", el)
	}
	md := evs[len(evs)-2].data
	if md["usage"].(map[string]any)["output_tokens"] != float64(10) {
		t.Fatalf("message_delta %v", md)
	}
}

func TestNotFound(t *testing.T) {
	_, base := start(t, Config{Config: mock.Config{Models: []string{"claude-a"}}})
	resp := post(t, base, hello, nil)
	var e errBody
	readJSON(t, resp, &e)
	if resp.StatusCode != 404 || e.Error.Type != "not_found_error" {
		t.Fatalf("%d %+v", resp.StatusCode, e)
	}
	r2, err := http.Get(base + "/v1/other")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 404 {
		t.Fatalf("status %d", r2.StatusCode)
	}
}

func TestMainServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- Main(ctx, []string{"-addr", "127.0.0.1:0", "-api-key", "sk-ant-test", "-cache-read-tokens", "2"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "mock anthropic listening on ")
	if !ok {
		t.Fatalf("line %q", line)
	}
	go io.Copy(io.Discard, pr)
	var m msgBody
	readJSON(t, post(t, base, hello, nil), &m)
	if m.Usage.CacheReadInputTokens != 2 {
		t.Fatalf("usage %+v", m.Usage)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
