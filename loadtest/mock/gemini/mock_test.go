package gemini

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/loadtest/mock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const key = "AIzaSyMockKey"

func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func post(t *testing.T, ctx context.Context, url, body string, hdr map[string]string) (*http.Response, []byte) {
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
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	return resp, b
}

type errEnvelope struct {
	Error struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Status  string           `json:"status"`
		Details []map[string]any `json:"details"`
	} `json:"error"`
}

func decodeError(t *testing.T, b []byte) errEnvelope {
	t.Helper()
	var e errEnvelope
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == 0 || e.Error.Status == "" {
		t.Fatalf("not a Gemini error: %s", b)
	}
	return e
}

var authHdr = map[string]string{"x-goog-api-key": key}

const hello = `{"contents":[{"role":"user","parts":[{"text":"hello there"}]}]}`

func TestAuth(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{APIKey: key}})
	tests := []struct {
		name   string
		url    string
		hdr    map[string]string
		status int
		gstat  string
		reason string
	}{
		{"header", "/v1beta/models/m:generateContent", authHdr, 200, "", ""},
		{"query key", "/v1beta/models/m:generateContent?key=" + key, nil, 200, "", ""},
		{"missing", "/v1beta/models/m:generateContent", nil, 403, "PERMISSION_DENIED", ""},
		{"wrong", "/v1beta/models/m:generateContent", map[string]string{"x-goog-api-key": "nope"}, 400, "INVALID_ARGUMENT", "API_KEY_INVALID"},
		{"bearer is not Gemini's", "/v1beta/models/m:generateContent", map[string]string{"Authorization": "Bearer " + key}, 403, "PERMISSION_DENIED", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), base+tt.url, hello, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if tt.status == 200 {
				return
			}
			e := decodeError(t, b)
			if e.Error.Status != tt.gstat || e.Error.Code != tt.status {
				t.Fatalf("%+v", e)
			}
			if tt.reason != "" && (len(e.Error.Details) == 0 || e.Error.Details[0]["reason"] != tt.reason) {
				t.Fatalf("details %+v", e.Error.Details)
			}
		})
	}
}

type response struct {
	Candidates []struct {
		Content struct {
			Role  string `json:"role"`
			Parts []struct {
				Text             *string `json:"text"`
				Thought          bool    `json:"thought"`
				ThoughtSignature string  `json:"thoughtSignature"`
				FunctionCall     *struct {
					Name string          `json:"name"`
					Args json.RawMessage `json:"args"`
				} `json:"functionCall"`
			} `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	UsageMetadata map[string]any `json:"usageMetadata"`
	ModelVersion  string         `json:"modelVersion"`
	ResponseID    string         `json:"responseId"`
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	s, base := start(t, Config{ThoughtsTokens: 5})
	resp, b := post(t, context.Background(), base+"/v1beta/models/gemini-2.5-flash:generateContent", hello, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	c := r.Candidates[0]
	var want strings.Builder
	for i := 0; i < 16; i++ {
		want.WriteString(mock.Token(mock.Seed("hello there"), i, 16, true))
	}
	if c.Content.Role != "model" || *c.Content.Parts[0].Text != want.String() || c.FinishReason != "STOP" || r.ModelVersion != "gemini-2.5-flash" || r.ResponseID == "" {
		t.Fatalf("%s", b)
	}
	u := r.UsageMetadata
	if u["promptTokenCount"] != float64(8) || u["candidatesTokenCount"] != float64(16) || u["thoughtsTokenCount"] != float64(5) || u["totalTokenCount"] != float64(29) {
		t.Fatalf("usage %v", u)
	}
	st := s.Stats()
	if st.Chat != 1 || st.Completed != 1 || st.PromptTokens != 8 || st.CompletionTokens != 16 {
		t.Fatalf("stats %+v", st)
	}
}

// sseEvents reads an SSE body checking Gemini's framing (CRLF, no [DONE]).
func sseEvents(t *testing.T, body []byte) []response {
	t.Helper()
	var out []response
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\r\n\r\n"), "\r\n\r\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("bad event %q", ev)
		}
		var r response
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		out = append(out, r)
	}
	return out
}

func TestStream(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{ChunkTokens: 4}})
	resp, b := post(t, context.Background(), base+"/v1beta/models/m:streamGenerateContent?alt=sse", hello, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	evs := sseEvents(t, b)
	if len(evs) != 4 {
		t.Fatalf("%d events: %s", len(evs), b)
	}
	for i, ev := range evs {
		last := i == len(evs)-1
		if (ev.Candidates[0].FinishReason == "STOP") != last || (ev.UsageMetadata["candidatesTokenCount"] != nil) != last {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if evs[3].UsageMetadata["candidatesTokenCount"] != float64(16) {
		t.Fatalf("%v", evs[3].UsageMetadata)
	}

	// Without alt=sse the stream is one JSON array.
	_, b = post(t, context.Background(), base+"/v1beta/models/m:streamGenerateContent", hello, nil)
	var arr []response
	if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 4 {
		t.Fatalf("%v %s", err, b)
	}
}

func TestJSONMode(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{})
	type item struct {
		Name   string  `json:"name"`
		Rating int     `json:"rating"`
		Genre  *string `json:"genre"`
	}
	tests := []struct {
		name  string
		gc    string
		check func(t *testing.T, text string)
	}{
		{"no schema", `{"responseMimeType":"application/json"}`, func(t *testing.T, text string) {
			var v struct{ Text string }
			if err := json.Unmarshal([]byte(text), &v); err != nil || v.Text == "" {
				t.Fatalf("%q: %v", text, err)
			}
		}},
		{"responseSchema, top-level ARRAY", `{"responseMimeType":"application/json","responseSchema":{"type":"ARRAY","minItems":"2","items":{"type":"OBJECT","properties":{"name":{"type":"STRING"},"rating":{"type":"INTEGER","minimum":1,"maximum":5},"genre":{"type":"STRING","enum":["rock","jazz"],"nullable":true}},"required":["name","rating"]}}}`, func(t *testing.T, text string) {
			var v []item
			if err := json.Unmarshal([]byte(text), &v); err != nil || len(v) != 2 {
				t.Fatalf("%q: %v", text, err)
			}
			for _, it := range v {
				if it.Name == "" || it.Rating < 1 || it.Rating > 5 || it.Genre == nil || (*it.Genre != "rock" && *it.Genre != "jazz") {
					t.Fatalf("%q", text)
				}
			}
		}},
		{"responseJsonSchema with $defs", `{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","properties":{"items":{"type":"array","items":{"$ref":"#/$defs/item"}}},"required":["items"],"$defs":{"item":{"type":"object","properties":{"name":{"type":"string"},"rating":{"type":"integer","minimum":1,"maximum":5}},"required":["name","rating"]}}}}`, func(t *testing.T, text string) {
			var v struct{ Items []item }
			if err := json.Unmarshal([]byte(text), &v); err != nil || len(v.Items) != 1 || v.Items[0].Name == "" || v.Items[0].Rating < 1 || v.Items[0].Rating > 5 {
				t.Fatalf("%q: %v", text, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"contents":[{"role":"user","parts":[{"text":"list some albums"}]}],"generationConfig":` + tt.gc + `}`
			resp, b := post(t, context.Background(), base+"/v1beta/models/m:generateContent", body, nil)
			var r response
			if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || len(r.Candidates) != 1 || r.Candidates[0].Content.Parts[0].Text == nil {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			text := *r.Candidates[0].Content.Parts[0].Text
			tt.check(t, text)

			// Streamed, the pieces join to the same document.
			_, b = post(t, context.Background(), base+"/v1beta/models/m:streamGenerateContent?alt=sse", body, nil)
			var joined strings.Builder
			for _, ev := range sseEvents(t, b) {
				for _, p := range ev.Candidates[0].Content.Parts {
					if p.Text != nil {
						joined.WriteString(*p.Text)
					}
				}
			}
			if joined.String() != text {
				t.Fatalf("stream %q != %q", joined.String(), text)
			}
		})
	}
}

func TestStreamFaults(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{})
	t.Run("stream-error", func(t *testing.T) {
		_, b := post(t, context.Background(), base+"/v1beta/models/m:streamGenerateContent?alt=sse", `{"contents":[{"parts":[{"text":"x #mock:stream-error"}]}]}`, nil)
		events := strings.Split(strings.TrimSpace(string(b)), "\r\n\r\n")
		if len(events) != 3 || !strings.HasPrefix(events[2], `data: {"error":{"code":500`) {
			t.Fatalf("%q", events)
		}
	})
	t.Run("reset", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1beta/models/m:streamGenerateContent?alt=sse", strings.NewReader(`{"contents":[{"parts":[{"text":"x #mock:reset"}]}]}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		if err == nil {
			t.Fatal("a cut stream must not end cleanly")
		}
	})
}

func TestFunctionCalls(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{})
	decls := `"tools":[{"functionDeclarations":[{"name":"a","parametersJsonSchema":{"type":"object","properties":{"x":{"type":"integer"}}}},{"name":"b","parameters":{"type":"OBJECT","properties":{"y":{"type":"STRING"}}}}]}]`
	tests := []struct {
		name  string
		extra string
		want  []string
	}{
		{"auto: two in parallel", "", []string{"a", "b"}},
		{"allowed names", `,"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["b"]}}`, []string{"b"}},
		{"none", `,"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, b := post(t, context.Background(), base+"/v1beta/models/m:generateContent", `{"contents":[{"role":"user","parts":[{"text":"go"}]}],`+decls+tt.extra+`}`, nil)
			var r response
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			c := r.Candidates[0]
			if c.FinishReason != "STOP" {
				t.Fatalf("%s", b)
			}
			var names []string
			for i, p := range c.Content.Parts {
				if p.FunctionCall == nil {
					continue
				}
				names = append(names, p.FunctionCall.Name)
				var args map[string]any
				if json.Unmarshal(p.FunctionCall.Args, &args) != nil || len(args) != 1 {
					t.Fatalf("args %s", p.FunctionCall.Args)
				}
				if (p.ThoughtSignature != "") != (i == 0) || (i == 0 && p.ThoughtSignature != signatureFor(p.FunctionCall.Name)) {
					t.Fatalf("part %d signature %q", i, p.ThoughtSignature)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("calls %v, want %v: %s", names, tt.want, b)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{})
	sigA := signatureFor("a")
	call := func(sig string) string {
		s := `{"functionCall":{"name":"a","args":{}}`
		if sig != "" {
			s += `,"thoughtSignature":"` + sig + `"`
		}
		return s + `}`
	}
	turn := func(sig string) string {
		return `{"role":"user","parts":[{"text":"go"}]},{"role":"model","parts":[` + call(sig) + `]},{"role":"user","parts":[{"functionResponse":{"name":"a","response":{"ok":true}}}]}`
	}
	tests := []struct {
		name, body string
		wantMsg    string // "" = accepted
	}{
		{"valid signature", `{"contents":[` + turn(sigA) + `]}`, ""},
		{"dummy signature", `{"contents":[` + turn("skip_thought_signature_validator") + `]}`, ""},
		{"url-safe signature", `{"contents":[` + turn(strings.NewReplacer("+", "-", "/", "_").Replace(strings.TrimRight(sigA, "="))) + `]}`, ""},
		{"missing signature in the current turn", `{"contents":[` + turn("") + `]}`, "Function call is missing a thought_signature"},
		{"missing signature in an earlier turn", `{"contents":[` + turn("") + `,{"role":"model","parts":[{"text":"done"}]},{"role":"user","parts":[{"text":"next"}]}]}`, ""},
		{"corrupted signature", `{"contents":[` + turn("QUJD") + `]}`, "Corrupted thought signature"},
		{"unknown field", `{"contents":[{"parts":[{"text":"x"}]}],"generation_config":{}}`, `Unknown name "generation_config"`},
		{"no contents", `{"contents":[]}`, "contents is not specified"},
		{"bad role", `{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}`, "valid role"},
		{"empty parts", `{"contents":[{"role":"user","parts":[]}]}`, "must not be empty"},
		{"two data fields", `{"contents":[{"parts":[{"text":"x","inlineData":{"mimeType":"image/png","data":"AAAA"}}]}]}`, "oneof"},
		{"bad base64", `{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"!!"}}]}]}`, "Base64 decoding failed"},
		{"fileData needs a MIME type", `{"contents":[{"parts":[{"fileData":{"fileUri":"https://x/y"}}]}]}`, "mime_type is required"},
		{"response count", `{"contents":[{"role":"user","parts":[{"text":"go"}]},{"role":"model","parts":[` + call(sigA) + `,` + call("") + `]},{"role":"user","parts":[{"functionResponse":{"name":"a","response":{}}}]}]}`, "number of function response parts"},
		{"response must be an object", `{"contents":[{"role":"user","parts":[{"text":"go"}]},{"role":"model","parts":[` + call(sigA) + `]},{"role":"user","parts":[{"functionResponse":{"name":"a","response":"x"}}]}]}`, "expected an object"},
		{"parameters are exclusive", `{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":{},"parametersJsonSchema":{}}]}]}`, "mutually exclusive"},
		{"candidateCount", `{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"candidateCount":2}}`, "Multiple candidates"},
		{"schema needs JSON", `{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseJsonSchema":{"type":"object"}}}`, "response_mime_type"},
		{"bad directive", `{"contents":[{"parts":[{"text":"x #mock:status=abc"}]}]}`, "bad #mock: directive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), base+"/v1beta/models/m:generateContent", tt.body, nil)
			if tt.wantMsg == "" {
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				return
			}
			e := decodeError(t, b)
			if resp.StatusCode != 400 || e.Error.Status != "INVALID_ARGUMENT" || !strings.Contains(e.Error.Message, tt.wantMsg) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}

func TestErrorDirectives(t *testing.T) {
	t.Parallel()
	s, base := start(t, Config{Config: mock.Config{RetryAfter: 2 * time.Second}})
	tests := []struct {
		spec   string
		status int
		name   string
		retry  string
	}{
		{"status=400", 400, "INVALID_ARGUMENT", ""},
		{"status=403", 403, "PERMISSION_DENIED", ""},
		{"status=404", 404, "NOT_FOUND", ""},
		{"status=429", 429, "RESOURCE_EXHAUSTED", "2s"},
		{"status=429;retry-after=250ms", 429, "RESOURCE_EXHAUSTED", "0.25s"},
		{"quota", 429, "RESOURCE_EXHAUSTED", ""},
		{"status=500", 500, "INTERNAL", ""},
		{"status=503", 503, "UNAVAILABLE", ""},
		{"status=504", 504, "DEADLINE_EXCEEDED", ""},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			resp, b := post(t, context.Background(), base+"/v1beta/models/m:generateContent", hello, map[string]string{mock.DirectiveHeader: tt.spec})
			e := decodeError(t, b)
			if resp.StatusCode != tt.status || e.Error.Code != tt.status || e.Error.Status != tt.name {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			retry := ""
			for _, d := range e.Error.Details {
				if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo" {
					retry, _ = d["retryDelay"].(string)
				}
			}
			if retry != tt.retry {
				t.Fatalf("retryDelay %q, want %q", retry, tt.retry)
			}
		})
	}
	if s.Stats().Failures[429] != 3 {
		t.Fatalf("%+v", s.Stats().Failures)
	}
}

func TestFailRates(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{FailRate503: 1}})
	resp, _ := post(t, context.Background(), base+"/v1beta/models/m:generateContent", hello, nil)
	if resp.StatusCode != 503 {
		t.Fatalf("%d", resp.StatusCode)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{Models: []string{"gemini-2.5-flash"}}})
	resp, b := post(t, context.Background(), base+"/v1beta/models/other:generateContent", hello, nil)
	if e := decodeError(t, b); resp.StatusCode != 404 || !strings.Contains(e.Error.Message, "models/other is not found") {
		t.Fatalf("%s", b)
	}
	r, err := http.Get(base + "/v1beta/models")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ = io.ReadAll(r.Body)
	if !strings.Contains(string(b), `"name":"models/gemini-2.5-flash"`) {
		t.Fatalf("%s", b)
	}
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{})
	resp, b := post(t, context.Background(), base+"/v1beta/models/e:batchEmbedContents",
		`{"requests":[{"model":"models/e","content":{"parts":[{"text":"hello"}]}},{"model":"models/e","content":{"parts":[{"text":"world"}]},"outputDimensionality":4}]}`, nil)
	var out struct {
		Embeddings []struct {
			Values []float32 `json:"values"`
		} `json:"embeddings"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Embeddings) != 2 || len(out.Embeddings[0].Values) != 8 || len(out.Embeddings[1].Values) != 4 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	want := make([]float32, 8)
	mock.UnitVector(want, mock.Seed("hello"))
	if out.Embeddings[0].Values[3] != want[3] {
		t.Fatalf("%v vs %v", out.Embeddings[0].Values, want)
	}
	_, b = post(t, context.Background(), base+"/v1beta/models/e:embedContent", `{"content":{"parts":[{"text":"hello"}]}}`, nil)
	if !strings.HasPrefix(string(b), `{"embedding":{"values":[`) {
		t.Fatalf("%s", b)
	}
	resp, b = post(t, context.Background(), base+"/v1beta/models/e:batchEmbedContents", `{"requests":[{"model":"models/other","content":{"parts":[{"text":"x"}]}}]}`, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestClientGoneMidStream(t *testing.T) {
	t.Parallel()
	s, base := start(t, Config{Config: mock.Config{TokensPerSec: 50, CompletionTokens: 100}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1beta/models/m:streamGenerateContent?alt=sse", strings.NewReader(hello))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	testutil.Eventually(t, "the cancel counted", func() bool { return s.Stats().Canceled != 0 })
	if st := s.Stats(); st.Canceled != 1 || st.Completed != 0 || st.Streams != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestMainServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"-addr", "127.0.0.1:0", "-thoughts-tokens", "3", "-api-key", key}, pw)
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, "gemini mock listening on "))
	resp, b := post(t, context.Background(), base+"/v1beta/models/m:generateContent", hello, authHdr)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"thoughtsTokenCount":3`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pw.Close()
}
