package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	brdoc "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/goleak"

	"github.com/xroute/xroute/loadtest/mock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	akid   = "AKIDEXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	model  = "anthropic.claude-3-5-haiku-20241022-v1:0"
)

func serve(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// sdkClient is AWS's own Bedrock runtime client pointed at the mock: it
// checks the mock's wire format (JSON, event stream, errors) and the mock
// checks the SDK's SigV4 signatures.
func sdkClient(srv *httptest.Server, key, sec string) *bedrockruntime.Client {
	// A fresh connection per call: the SDK's event-stream reader may still
	// be finishing on a kept-alive connection when the next call reuses it,
	// and connection reuse is not what these tests check.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	return bedrockruntime.New(bedrockruntime.Options{
		Region:       DefaultRegion,
		BaseEndpoint: aws.String(srv.URL),
		HTTPClient:   &http.Client{Transport: tr},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: sec}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func userMsg(text string) types.Message {
	return types.Message{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}
}

func expected(text string, n int) string {
	var sb strings.Builder
	seed := mock.Seed(text)
	for i := 0; i < n; i++ {
		sb.WriteString(mock.Token(seed, i, n, true))
	}
	return sb.String()
}

func TestSDKConverse(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{AccessKeyID: akid, SecretAccessKey: secret, CacheReadTokens: 2})
	c := sdkClient(srv, akid, secret)
	out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId:  aws.String(model),
		Messages: []types.Message{userMsg("Hello there")},
		System:   []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "Be brief."}},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := out.Output.(*types.ConverseOutputMemberMessage).Value
	text := msg.Content[0].(*types.ContentBlockMemberText).Value
	if want := expected("Hello there", mock.DefaultCompletionTokens); text != want || out.StopReason != types.StopReasonEndTurn {
		t.Fatalf("got %q %s, want %q", text, out.StopReason, want)
	}
	u := out.Usage
	// prompt: 3 + (3 + 2 words of system) + (3 + 2 words) = 13
	if *u.InputTokens != 11 || *u.CacheReadInputTokens != 2 || *u.OutputTokens != 16 || *u.TotalTokens != 29 {
		t.Fatalf("usage %+v", *u)
	}
}

func TestSDKConverseTools(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{AccessKeyID: akid, SecretAccessKey: secret})
	c := sdkClient(srv, akid, secret)
	schema := brdoc.NewLazyDocument(map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}})
	out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId:  aws.String(model),
		Messages: []types.Message{userMsg("Weather in Paris?")},
		ToolConfig: &types.ToolConfiguration{
			Tools:      []types.Tool{&types.ToolMemberToolSpec{Value: types.ToolSpecification{Name: aws.String("get_weather"), InputSchema: &types.ToolInputSchemaMemberJson{Value: schema}}}},
			ToolChoice: &types.ToolChoiceMemberAny{},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	blocks := out.Output.(*types.ConverseOutputMemberMessage).Value.Content
	tu, ok := blocks[0].(*types.ContentBlockMemberToolUse)
	if !ok || len(blocks) != 1 || out.StopReason != types.StopReasonToolUse || *tu.Value.Name != "get_weather" || !strings.HasPrefix(*tu.Value.ToolUseId, "tooluse_") {
		t.Fatalf("blocks %#v stop %s", blocks, out.StopReason)
	}
	var in map[string]any
	if err := tu.Value.Input.UnmarshalSmithyDocument(&in); err != nil || in["city"] == nil {
		t.Fatalf("input %v: %v", in, err)
	}
}

func TestSDKConverseStream(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{AccessKeyID: akid, SecretAccessKey: secret, Config: mock.Config{ChunkTokens: 3}})
	c := sdkClient(srv, akid, secret)
	schema := brdoc.NewLazyDocument(map[string]any{"type": "object", "properties": map[string]any{"tz": map[string]any{"type": "string"}}})
	tests := []struct {
		name       string
		tools      *types.ToolConfiguration
		wantStop   types.StopReason
		wantText   string
		wantTools  int
		wantBlocks int
	}{
		{"text", nil, types.StopReasonEndTurn, expected("Tell me", mock.DefaultCompletionTokens), 0, 1},
		{"tools", &types.ToolConfiguration{Tools: []types.Tool{
			&types.ToolMemberToolSpec{Value: types.ToolSpecification{Name: aws.String("a"), InputSchema: &types.ToolInputSchemaMemberJson{Value: schema}}},
			&types.ToolMemberToolSpec{Value: types.ToolSpecification{Name: aws.String("b"), InputSchema: &types.ToolInputSchemaMemberJson{Value: schema}}},
		}}, types.StopReasonToolUse, "", 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
				ModelId: aws.String(model), Messages: []types.Message{userMsg("Tell me")}, ToolConfig: tt.tools,
			})
			if err != nil {
				t.Fatal(err)
			}
			st := out.GetStream()
			defer st.Close()
			var text strings.Builder
			args := map[int32]string{}
			var stop types.StopReason
			var usage *types.TokenUsage
			started, stopped := 0, map[int32]bool{}
			for ev := range st.Events() {
				switch v := ev.(type) {
				case *types.ConverseStreamOutputMemberContentBlockDelta:
					switch d := v.Value.Delta.(type) {
					case *types.ContentBlockDeltaMemberText:
						text.WriteString(d.Value)
					case *types.ContentBlockDeltaMemberToolUse:
						args[*v.Value.ContentBlockIndex] += *d.Value.Input
					}
				case *types.ConverseStreamOutputMemberContentBlockStart:
					started++
				case *types.ConverseStreamOutputMemberContentBlockStop:
					stopped[*v.Value.ContentBlockIndex] = true
				case *types.ConverseStreamOutputMemberMessageStop:
					stop = v.Value.StopReason
				case *types.ConverseStreamOutputMemberMetadata:
					usage = v.Value.Usage
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if stop != tt.wantStop || started != tt.wantTools || len(args) != tt.wantTools || len(stopped) != tt.wantBlocks || usage == nil || *usage.OutputTokens == 0 {
				t.Fatalf("stop %s starts %d args %v blocks %d usage %+v", stop, started, args, len(stopped), usage)
			}
			if tt.wantText != "" && text.String() != tt.wantText {
				t.Fatalf("text %q, want %q", text.String(), tt.wantText)
			}
			for i, a := range args {
				if !json.Valid([]byte(a)) {
					t.Fatalf("block %d arguments %q", i, a)
				}
			}
		})
	}
}

func TestSDKErrors(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{AccessKeyID: akid, SecretAccessKey: secret})
	c := sdkClient(srv, akid, secret)
	tests := []struct {
		directive string
		check     func(error) bool
	}{
		{"status=400", func(err error) bool { var e *types.ValidationException; return errors.As(err, &e) }},
		{"status=403", func(err error) bool { var e *types.AccessDeniedException; return errors.As(err, &e) }},
		{"status=404", func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{"status=408", func(err error) bool { var e *types.ModelTimeoutException; return errors.As(err, &e) }},
		{"status=424", func(err error) bool { var e *types.ModelErrorException; return errors.As(err, &e) }},
		{"status=429", func(err error) bool { var e *types.ThrottlingException; return errors.As(err, &e) }},
		{"quota", func(err error) bool { var e *types.ServiceQuotaExceededException; return errors.As(err, &e) }},
		{"status=500", func(err error) bool { var e *types.InternalServerException; return errors.As(err, &e) }},
		{"status=503", func(err error) bool { var e *types.ServiceUnavailableException; return errors.As(err, &e) }},
	}
	for _, tt := range tests {
		t.Run(tt.directive, func(t *testing.T) {
			_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: []types.Message{userMsg("hi #mock:" + tt.directive)}})
			if !tt.check(err) {
				t.Fatalf("got %T %v", err, err)
			}
		})
	}
	t.Run("mid-stream exception", func(t *testing.T) {
		out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: []types.Message{userMsg("hi #mock:stream-error")}})
		if err != nil {
			t.Fatal(err)
		}
		st := out.GetStream()
		defer st.Close()
		n := 0
		for range st.Events() {
			n++
		}
		var e *types.ModelStreamErrorException
		if !errors.As(st.Err(), &e) || n != eventsBeforeFault || *e.OriginalStatusCode != 500 {
			t.Fatalf("after %d events got %T %v", n, st.Err(), st.Err())
		}
	})
}

// signed builds a request signed with the given credentials and time.
func signed(t *testing.T, url, key, sec, region string, when time.Time, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/model/"+strings.ReplaceAll(model, ":", "%3A")+"/converse", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: sec}, req, hex.EncodeToString(sum[:]), "bedrock", region, when); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSigV4Verification(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, Config{AccessKeyID: akid, SecretAccessKey: secret, Config: mock.Config{APIKey: "ABSKkey"}})
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	now := time.Now()
	tests := []struct {
		name     string
		req      func() *http.Request
		wantType string // "" = accepted
	}{
		{"valid", func() *http.Request { return signed(t, srv.URL, akid, secret, DefaultRegion, now, body) }, ""},
		{"bearer api key", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/m/converse", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer ABSKkey")
			return r
		}, ""},
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/m/converse", strings.NewReader(body))
			return r
		}, "MissingAuthenticationTokenException"},
		{"wrong secret", func() *http.Request { return signed(t, srv.URL, akid, "other", DefaultRegion, now, body) }, "InvalidSignatureException"},
		{"wrong key id", func() *http.Request { return signed(t, srv.URL, "AKIDOTHER", secret, DefaultRegion, now, body) }, "UnrecognizedClientException"},
		{"wrong region", func() *http.Request { return signed(t, srv.URL, akid, secret, "eu-west-1", now, body) }, "InvalidSignatureException"},
		{"expired", func() *http.Request {
			return signed(t, srv.URL, akid, secret, DefaultRegion, now.Add(-time.Hour), body)
		}, "InvalidSignatureException"},
		{"body changed after signing", func() *http.Request {
			r := signed(t, srv.URL, akid, secret, DefaultRegion, now, body)
			tampered := strings.Replace(body, "hi", "ho", 1)
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(tampered)), int64(len(tampered))
			return r
		}, "InvalidSignatureException"},
		{"signed header changed", func() *http.Request {
			r := signed(t, srv.URL, akid, secret, DefaultRegion, now, body)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, "InvalidSignatureException"},
		{"malformed header", func() *http.Request {
			r := signed(t, srv.URL, akid, secret, DefaultRegion, now, body)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
			return r
		}, "IncompleteSignatureException"},
		{"wrong bearer", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/m/converse", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer nope")
			return r
		}, "UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().Do(tt.req())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			typ, _, _ := strings.Cut(resp.Header.Get("X-Amzn-ErrorType"), ":")
			if tt.wantType == "" {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d %s: %s", resp.StatusCode, typ, b)
				}
				return
			}
			if resp.StatusCode != 403 || typ != tt.wantType || !bytes.Contains(b, []byte(`"message":`)) {
				t.Fatalf("status %d type %q body %s, want 403 %s", resp.StatusCode, typ, b, tt.wantType)
			}
		})
	}
	if s.Stats().Failures[403] != int64(len(tests)-2) {
		t.Fatalf("failures %v", s.Stats().Failures)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{})
	tests := []struct{ name, body, want string }{
		{"unknown field", `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"temperature":1}`, "Malformed input request"},
		{"starts with assistant", `{"messages":[{"role":"assistant","content":[{"text":"hi"}]}]}`, "must start with a user message"},
		{"not alternating", `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"user","content":[{"text":"b"}]}]}`, "must alternate"},
		{"blank text", `{"messages":[{"role":"user","content":[{"text":" "}]}]}`, "is blank"},
		{"empty content", `{"messages":[{"role":"user","content":[]}]}`, "is empty"},
		{"two members", `{"messages":[{"role":"user","content":[{"text":"a","image":{"format":"png","source":{"bytes":"AA=="}}}]}]}`, "exactly one member"},
		{"image format", `{"messages":[{"role":"user","content":[{"image":{"format":"bmp","source":{"bytes":"AA=="}}}]}]}`, "enum value set"},
		{"image bytes", `{"messages":[{"role":"user","content":[{"image":{"format":"png","source":{"bytes":"%%%"}}}]}]}`, "not valid base64"},
		{"tool blocks without toolConfig", `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"f","input":{}}}]},{"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"r"}]}}]}]}`, "toolConfig field must be defined"},
		{"orphan tool result", `{"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]},"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"t9","content":[{"text":"r"}]}}]}]}`, "not a toolUse of the previous"},
		{"bad tool name", `{"toolConfig":{"tools":[{"toolSpec":{"name":"a b","inputSchema":{"json":{"type":"object"}}}}]},"messages":[{"role":"user","content":[{"text":"a"}]}]}`, "regular expression"},
		{"tool choice unknown", `{"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"g"}}},"messages":[{"role":"user","content":[{"text":"a"}]}]}`, "not in toolConfig.tools"},
		{"max tokens", `{"inferenceConfig":{"maxTokens":0},"messages":[{"role":"user","content":[{"text":"a"}]}]}`, "greater than or equal to 1"},
		{"schema not a string", `{"outputConfig":{"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":{"type":"object"}}}}},"messages":[{"role":"user","content":[{"text":"a"}]}]}`, "Malformed input request"},
		{"bad directive", `{"messages":[{"role":"user","content":[{"text":"#mock:status=abc"}]}]}`, "bad directive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().Post(srv.URL+"/model/m/converse", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "ValidationException") || !bytes.Contains(b, []byte(tt.want)) {
				t.Fatalf("status %d type %q body %s, want 400 ValidationException ~ %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), b, tt.want)
			}
		})
	}
}

// The same conversation gets the same answer from the OpenAI mock.
func TestSameAnswerAsOpenAIMock(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, Config{})
	oai := httptest.NewServer(mock.New(mock.Config{}))
	defer oai.Close()
	for _, maxTok := range []string{"", `,"max_tokens":5`} {
		resp, err := oai.Client().Post(oai.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"Same here"}]`+maxTok+`}`))
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				Prompt     int `json:"prompt_tokens"`
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		json.NewDecoder(resp.Body).Decode(&o)
		resp.Body.Close()

		ic := ""
		if maxTok != "" {
			ic = `,"inferenceConfig":{"maxTokens":5}`
		}
		resp, err = srv.Client().Post(srv.URL+"/model/m/converse", "application/json",
			strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"Same here"}]}]`+ic+`}`))
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Output struct {
				Message struct {
					Content []struct{ Text string } `json:"content"`
				} `json:"message"`
			} `json:"output"`
			Usage struct {
				Input  int `json:"inputTokens"`
				Output int `json:"outputTokens"`
			} `json:"usage"`
		}
		json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if b.Output.Message.Content[0].Text != o.Choices[0].Message.Content || b.Usage.Input != o.Usage.Prompt || b.Usage.Output != o.Usage.Completion {
			t.Fatalf("bedrock %+v, openai %+v", b, o)
		}
	}
}

func TestKnobs(t *testing.T) {
	t.Run("fail rate", func(t *testing.T) {
		s, srv := serve(t, Config{Config: mock.Config{FailRate503: 1}})
		resp, err := srv.Client().Post(srv.URL+"/model/m/converse", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"a"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "ServiceUnavailableException") || s.Stats().Failures[503] != 1 {
			t.Fatalf("status %d %v", resp.StatusCode, s.Stats())
		}
	})
	t.Run("latency and pacing", func(t *testing.T) {
		_, srv := serve(t, Config{Config: mock.Config{Latency: 30 * time.Millisecond, TokensPerSec: 500, CompletionTokens: 20}})
		start := time.Now()
		resp, err := srv.Client().Post(srv.URL+"/model/m/converse-stream", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"a"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// 30ms latency + 20 tokens at 500/s = 40ms
		if d := time.Since(start); d < 65*time.Millisecond || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
			t.Fatalf("took %v, content type %q", d, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("reset", func(t *testing.T) {
		s, srv := serve(t, Config{Config: mock.Config{ResetRate: 1}})
		resp, err := srv.Client().Post(srv.URL+"/model/m/converse-stream", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"a"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil || s.Stats().Resets != 1 {
			t.Fatalf("want a cut stream: %v %+v", err, s.Stats())
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		_, srv := serve(t, Config{Config: mock.Config{Models: []string{"x"}}})
		resp, err := srv.Client().Post(srv.URL+"/model/y/converse", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"a"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}
