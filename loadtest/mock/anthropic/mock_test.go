package anthropic

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/xroute/xroute/loadtest/mock"
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
	return postURL(t, base+"/v1/messages", body, hdr)
}

// postURL sends body to url with the usual headers plus hdr.
func postURL(t *testing.T, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
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

// body is a request for model m with max_tokens 100 and fields.
func body(fields string) string {
	return `{"model":"m","max_tokens":100,` + fields + `}`
}

const (
	v2026   = "2026-10-21"
	pngB64  = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
	jpegB64 = "/9j/4AAQSkZJRgABAQ=="
	pdfB64  = "JVBERi0xLjQKMSAwIG9iajw8Pj5lbmRvYmoKdHJhaWxlcjw8Pj4KJSVFT0YK" // "%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
)

func TestValidation(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{APIKey: "sk-ant-test"}})
	user := `"messages":[{"role":"user","content":"hi"}]`
	sig := thinkingSignature("some thinking")
	toolTurn := func(assistant string) string {
		return `"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[` + assistant + `]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]`
	}
	const use = `{"type":"tool_use","id":"toolu_1","name":"f","input":{}}`
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
		{"x-api-key wins over bearer", hello, map[string]string{"x-api-key": "nope", "Authorization": "Bearer sk-ant-test"}, 401, "authentication_error", "invalid x-api-key"},
		{"wrong bearer", hello, map[string]string{"x-api-key": "", "Authorization": "Bearer nope"}, 401, "authentication_error", "invalid x-api-key"},
		{"no version", hello, map[string]string{"anthropic-version": ""}, 400, "invalid_request_error", "anthropic-version"},
		{"unknown version", hello, map[string]string{"anthropic-version": "2099-01-01"}, 400, "invalid_request_error", "anthropic-version"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "max_tokens: Field required"},
		{"negative max_tokens", `{"model":"m","max_tokens":-1,` + user + `}`, nil, 400, "invalid_request_error", "max_tokens"},
		{"max_tokens not an integer", `{"model":"m","max_tokens":"5",` + user + `}`, nil, 400, "invalid_request_error", "max_tokens: Input should be a valid integer"},
		{"no model", `{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "model"},
		{"empty messages", `{"model":"m","max_tokens":5,"messages":[]}`, nil, 400, "invalid_request_error", "at least one message"},
		{"unknown field", body(user + `,"bogus":1`), nil, 400, "invalid_request_error", "bogus: Extra inputs are not permitted"},
		{"sampling removed in 2026-10-21", body(user + `,"temperature":1`), map[string]string{"anthropic-version": v2026}, 400, "invalid_request_error", "temperature: Extra inputs are not permitted"},
		{"top_k removed in 2026-10-21", body(user + `,"top_k":5`), map[string]string{"anthropic-version": v2026}, 400, "invalid_request_error", "top_k: Extra inputs are not permitted"},
		{"temperature above 1", body(user + `,"temperature":1.5`), nil, 400, "invalid_request_error", "temperature"},
		{"metadata extra field", body(user + `,"metadata":{"user_id":"u","x":1}`), nil, 400, "invalid_request_error", "metadata.x: Extra inputs are not permitted"},
		{"bad service_tier", body(user + `,"service_tier":"priority"`), nil, 400, "invalid_request_error", "service_tier"},
		{"system message first", body(`"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]`), nil, 400, "invalid_request_error", "must immediately follow a user message"},
		{"system message after assistant", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"system","content":"x"}]`), nil, 400, "invalid_request_error", "messages.2: a system message must immediately follow"},
		{"system message on a legacy model", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"system","content":"x"}]}`, nil, 400, "invalid_request_error", "messages.1.role: role 'system' is not supported on this model"},
		{"unknown role", body(`"messages":[{"role":"tool","content":"x"}]`), nil, 400, "invalid_request_error", "messages.0.role"},
		{"empty text block", body(`"messages":[{"role":"user","content":[{"type":"text","text":""}]}]`), nil, 400, "invalid_request_error", "non-empty"},
		{"empty content", body(`"messages":[{"role":"user","content":[]}]`), nil, 400, "invalid_request_error", "non-empty content"},
		{"unknown block type", body(`"messages":[{"role":"user","content":[{"type":"video","url":"x"}]}]`), nil, 400, "invalid_request_error", "messages.0.content.0.type"},
		{"trailing whitespace in prefill", body(`"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Sure "}]`), nil, 400, "invalid_request_error", "trailing whitespace"},
		{"orphan tool_result", body(`"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_x","content":"1"}]}]`), nil, 400, "invalid_request_error", "unexpected `tool_use_id`"},
		{"unanswered tool_use", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[` + use + `]},{"role":"user","content":"b"}]`), nil, 400, "invalid_request_error", "without `tool_result`"},
		{"tool_result after text", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[` + use + `]},{"role":"user","content":[{"type":"text","text":"b"},{"type":"tool_result","tool_use_id":"toolu_1"}]}]`), nil, 400, "invalid_request_error", "must come before"},
		{"bad image media type", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AAAA"}}]}]`), nil, 400, "invalid_request_error", "media_type"},
		{"image bytes of another type", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"` + pngB64 + `"}}]}]`), nil, 400, "invalid_request_error", "appears to be a image/png image"},
		{"not an image", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]`), nil, 400, "invalid_request_error", "Could not process image"},
		{"not a PDF", body(`"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"AAAA"}}]}]`), nil, 400, "invalid_request_error", "PDF specified was not valid"},
		{"document in an assistant message (2026-10-21)", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]},{"role":"user","content":"b"}]`), map[string]string{"anthropic-version": v2026}, 400, "invalid_request_error", "document blocks are not accepted in assistant messages"},
		{"citations in a user message (2026-10-21)", body(`"messages":[{"role":"user","content":[{"type":"text","text":"a","citations":[{"type":"char_location","cited_text":"a","document_index":0,"start_char_index":0,"end_char_index":1}]}]}]`), map[string]string{"anthropic-version": v2026}, 400, "invalid_request_error", "citations"},
		{"tool without schema", body(`"tools":[{"name":"f"}],` + user), nil, 400, "invalid_request_error", "input_schema"},
		{"unknown tool type", body(`"tools":[{"type":"teleport","name":"f"}],` + user), nil, 400, "invalid_request_error", "tools.0.type"},
		{"tool_choice without tools", body(`"tool_choice":{"type":"any"},` + user), nil, 400, "invalid_request_error", "tool_choice"},
		{"unknown named tool", body(`"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"g"},` + user), nil, 400, "invalid_request_error", "not found"},
		{"thinking budget below 1024", body(`"thinking":{"type":"enabled","budget_tokens":1000},` + user), nil, 400, "invalid_request_error", "budget_tokens: Input should be greater than or equal to 1024"},
		{"thinking budget not below max_tokens", `{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":2000},` + user + `}`, nil, 400, "invalid_request_error", "`max_tokens` must be greater than `thinking.budget_tokens`"},
		{"thinking with forced tool use", `{"model":"m","max_tokens":4000,"thinking":{"type":"enabled","budget_tokens":2000},"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},` + user + `}`, nil, 400, "invalid_request_error", "tool_choice forces tool use"},
		{"unknown thinking type", body(`"thinking":{"type":"deep"},` + user), nil, 400, "invalid_request_error", "thinking.type"},
		{"unknown effort", body(`"thinking":{"type":"adaptive"},"output_config":{"effort":"extreme"},` + user), nil, 400, "invalid_request_error", "output_config.effort"},
		{"thinking block without signature", `{"model":"m","max_tokens":4000,"tools":[{"name":"f","input_schema":{"type":"object"}}],` + toolTurn(`{"type":"thinking","thinking":"x"},`+use) + `}`, nil, 400, "invalid_request_error", "signature: Field required"},
		{"forged signature", `{"model":"m","max_tokens":4000,"tools":[{"name":"f","input_schema":{"type":"object"}}],` + toolTurn(`{"type":"thinking","thinking":"x","signature":"RXF1b3Rl"},`+use) + `}`, nil, 400, "invalid_request_error", "Invalid `signature`"},
		{"modified thinking", `{"model":"m","max_tokens":4000,"tools":[{"name":"f","input_schema":{"type":"object"}}],` + toolTurn(`{"type":"thinking","thinking":"other thinking","signature":"`+sig+`"},`+use) + `}`, nil, 400, "invalid_request_error", "cannot be modified"},
		{"thinking dropped from the tool turn", `{"model":"m","max_tokens":4000,"thinking":{"type":"enabled","budget_tokens":2000},"tools":[{"name":"f","input_schema":{"type":"object"}}],` + toolTurn(use) + `}`, nil, 400, "invalid_request_error", "Expected `thinking` or `redacted_thinking`, but found `tool_use`"},
		{"bad cache ttl", body(`"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","ttl":"10m"}}],` + user), nil, 400, "invalid_request_error", "system.0.cache_control.ephemeral.ttl"},
		{"bad cache type", body(`"system":[{"type":"text","text":"s","cache_control":{"type":"persistent"}}],` + user), nil, 400, "invalid_request_error", "cache_control.type"},
		{"five breakpoints", body(`"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}},{"type":"text","text":"c","cache_control":{"type":"ephemeral"}},{"type":"text","text":"d","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]`), nil, 400, "invalid_request_error", "A maximum of 4 blocks with cache_control may be provided. Found 5."},
		{"1h breakpoint after a 5m one", body(`"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]`), nil, 400, "invalid_request_error", "ttl='1h'"},
		{"bad directive", body(`"messages":[{"role":"user","content":"#mock:bogus"}]`), nil, 400, "invalid_request_error", "directive"},
		{"not json", `{`, nil, 400, "invalid_request_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, base, tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
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

// TestAccepts sends what real clients (the SDKs, Claude Code) send: every
// request must be answered 200.
func TestAccepts(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{APIKey: "sk-ant-test"}})
	user := `"messages":[{"role":"user","content":"hi"}]`
	const use = `{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}`
	tests := []struct {
		name string
		body string
		hdr  map[string]string // ":query" is appended to the URL
	}{
		{"bearer key (2026-10-21 SDKs)", hello, map[string]string{"x-api-key": "", "Authorization": "Bearer sk-ant-test", "anthropic-version": v2026}},
		{"sampling parameters (2023-06-01)", body(user + `,"temperature":0.2,"top_p":0.9,"top_k":5`), nil},
		{"consecutive user turns are combined", body(`"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]`), nil},
		{"system string and blocks", body(`"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"really"}],` + user), nil},
		{"mid-conversation system message", `{"model":"claude-opus-4-8","max_tokens":50,"messages":[{"role":"user","content":"hi"},{"role":"system","content":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":"ok"},{"role":"user","content":"go"}]}`, map[string]string{"anthropic-version": v2026}},
		{"system message with output_config only", body(`"messages":[{"role":"user","content":"hi"},{"role":"system","output_config":{"effort":"low"}}]`), map[string]string{"anthropic-beta": "mid-conversation-output-config-2026-07-01"}},
		{"metadata, service tier, speed, geo", body(user + `,"metadata":{"user_id":"user_abc_account_x_session_y"},"service_tier":"auto","speed":"fast","inference_geo":"us"`), nil},
		{"context management and betas", body(user + `,"context_management":{"edits":[{"type":"clear_tool_uses_20250919"}]}`), map[string]string{"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,advanced-tool-use-2025-11-20"}},
		{"?beta=true", body(user), map[string]string{":query": "?beta=true"}},
		{"thinking disabled", body(`"thinking":{"type":"disabled"},` + user), nil},
		{"adaptive thinking with effort", body(`"thinking":{"type":"adaptive","display":"omitted"},"output_config":{"effort":"max"},` + user), nil},
		{"between_tools thinking", body(`"thinking":{"type":"between_tools"},` + user), nil},
		{"thinking display updates (beta)", body(`"thinking":{"type":"adaptive","display":"updates"},` + user), map[string]string{"anthropic-beta": "thinking-display-updates-2026-08-18"}},
		{"structured output", body(`"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},` + user), nil},
		{"server tools, deferred and cached tools", body(`"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3},{"type":"bash_20250124","name":"bash"},{"type":"text_editor_20250728","name":"str_replace_based_edit_tool"},{"type":"code_execution_20250825","name":"code_execution"},{"type":"tool_search_tool_regex_20251119","name":"tool_search_tool_regex"},{"name":"f","input_schema":{"type":"object"},"defer_loading":true},{"name":"g","description":"d","input_schema":{"type":"object"},"strict":true,"cache_control":{"type":"ephemeral"}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true},` + user), nil},
		{"tool_choice none", body(`"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"},` + user), nil},
		{"tool_result with blocks and is_error", body(`"tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[` + use + `]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true,"content":[{"type":"text","text":"boom"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + pngB64 + `"}},{"type":"tool_reference","tool_name":"f"}],"cache_control":{"type":"ephemeral"}}]}]`), nil},
		{"images and documents", body(`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"` + jpegB64 + `"}},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"` + pdfB64 + `"},"title":"t","citations":{"enabled":true}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain words"}},{"type":"document","source":{"type":"content","content":[{"type":"text","text":"c"}]}},{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}},{"type":"search_result","source":"s","title":"t","content":[{"type":"text","text":"r"}]},{"type":"text","text":"summarize"}]}]`), nil},
		{"thinking of earlier turns with any signature", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"old","signature":"c2lnbmF0dXJl"},{"type":"redacted_thinking","data":"ZGF0YQ=="},{"type":"text","text":"b"}]},{"role":"user","content":"c"}]`), nil},
		{"server tool blocks in history", body(`"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},{"type":"text","text":"b"}]},{"role":"user","content":"c"}]`), nil},
		{"top-level cache_control", body(user + `,"cache_control":{"type":"ephemeral"}`), nil},
		{"prefill", body(`"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Sure,"}]`), nil},
		{"max_tokens 0 warms the cache", `{"model":"m","max_tokens":0,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],` + user + `}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range tt.hdr {
				if k != ":query" {
					hdr[k] = v
				}
			}
			resp := postURL(t, base+"/v1/messages"+tt.hdr[":query"], tt.body, hdr)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if resp.Header.Get("anthropic-ratelimit-requests-limit") == "" {
				t.Error("no rate-limit headers")
			}
		})
	}
}

func TestTextMatchesOpenAIMock(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// After the server is gone: the client returns a connection to its
	// idle pool after the body's EOF, asynchronously, so closing idle
	// connections before could miss it (goleak then saw its loops).
	http.DefaultClient.CloseIdleConnections()
}
