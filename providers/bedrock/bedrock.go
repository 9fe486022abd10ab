// Package bedrock is the adapter for Amazon Bedrock's Converse API
// (POST /model/{modelId}/converse and /converse-stream on
// bedrock-runtime.{region}.amazonaws.com). It translates OpenAI chat
// requests to Converse, signs them with SigV4 (or sends a Bedrock API key
// as a bearer token), and translates answers, event streams and errors
// back to OpenAI's shapes.
package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// signingService is SigV4's service name for Bedrock (the runtime
// endpoint signs as "bedrock").
const signingService = "bedrock"

// Adapter talks to one Bedrock runtime endpoint with one set of
// credentials. It is safe for concurrent use.
type Adapter struct {
	name    string
	baseURL string // no trailing slash
	region  string
	timeout time.Duration
	client  *http.Client
	headers map[string]string
	now     func() time.Time

	// Exactly one of bearer and creds is set.
	bearer string // Bedrock API key
	creds  aws.Credentials
	signer *v4.Signer
}

// New builds an adapter from its config entry; it is the registry Factory.
//
// Credentials, first found wins: the entry's api_key / api_key_env, either
// "ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]" (SigV4) or a Bedrock API
// key (bearer); then AWS_BEARER_TOKEN_BEDROCK; then AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. The region is the entry's
// region, else AWS_REGION, else AWS_DEFAULT_REGION.
func New(cfg config.Provider, deps providers.Deps) (providers.Provider, error) {
	deps = deps.WithDefaults()
	getenv, client := deps.Getenv, deps.Client
	region := cfg.Region
	if region == "" {
		region = getenv("AWS_REGION")
	}
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		return nil, errors.New("bedrock: region is required (set region, or AWS_REGION)")
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = "https://bedrock-runtime." + region + ".amazonaws.com"
	}
	a := &Adapter{
		name:    cfg.Name,
		baseURL: base,
		region:  region,
		timeout: cfg.Timeout,
		client:  client,
		headers: cfg.Headers,
		now:     time.Now,
	}
	if err := a.setCredentials(cfg.ProviderKey(getenv), getenv); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Adapter) setCredentials(key string, getenv func(string) string) error {
	switch {
	case key != "" && strings.Contains(key, ":"):
		// Bedrock API keys are base64-like and hold no colon.
		parts := strings.SplitN(key, ":", 3)
		if parts[0] == "" || parts[1] == "" {
			return errors.New("bedrock: api_key must be ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN] or a Bedrock API key")
		}
		a.creds = aws.Credentials{AccessKeyID: parts[0], SecretAccessKey: parts[1], Source: "xroute config"}
		if len(parts) == 3 {
			a.creds.SessionToken = parts[2]
		}
	case key != "":
		a.bearer = key
	case getenv("AWS_BEARER_TOKEN_BEDROCK") != "":
		a.bearer = getenv("AWS_BEARER_TOKEN_BEDROCK")
	case getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != "":
		a.creds = aws.Credentials{
			AccessKeyID:     getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    getenv("AWS_SESSION_TOKEN"),
			Source:          "environment",
		}
	default:
		return errors.New("bedrock: no credentials (set api_key/api_key_env, AWS_BEARER_TOKEN_BEDROCK, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	if a.bearer == "" {
		a.signer = v4.NewSigner()
	}
	return nil
}

// escapeLabel percent-encodes a URI label as the AWS SDKs do: every byte
// but unreserved characters, so ':' in model ids and '/' in ARNs are
// escaped.
func escapeLabel(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// endpoint is the operation URL for modelID; op is "converse" or
// "converse-stream".
func (a *Adapter) endpoint(modelID, op string) (*url.URL, error) {
	return url.Parse(a.baseURL + "/model/" + escapeLabel(modelID) + "/" + op)
}

// prepare translates the caller's request.
func (a *Adapter) prepare(call *providers.Call) (*translation, []byte, error) {
	if call.Model == "" {
		return nil, nil, fmt.Errorf("%s: no upstream model id", a.name)
	}
	or, err := call.Request.Decoded()
	if err != nil {
		return nil, nil, err
	}
	tr, err := translateRequest(or)
	if err != nil {
		return nil, nil, err
	}
	addCachePoints(&tr.req, call.Breakpoints)
	body, err := json.Marshal(&tr.req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: encode request: %w", a.name, err)
	}
	return tr, body, nil
}

// newRequest builds and authenticates one upstream request.
func (a *Adapter) newRequest(ctx context.Context, modelID string, stream bool, body []byte) (*http.Request, error) {
	op := "converse"
	if stream {
		op = "converse-stream"
	}
	u, err := a.endpoint(modelID, op)
	if err != nil {
		return nil, fmt.Errorf("%s: endpoint: %w", a.name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	// As the AWS SDKs send it: Content-Type only (no Accept), also for
	// converse-stream.
	providers.Headers{Extra: a.headers}.Set(req.Header, providers.ContentJSON, "")
	if a.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+a.bearer)
		return req, nil
	}
	sum := sha256.Sum256(body)
	if err := a.signer.SignHTTP(ctx, a.creds, req, hex.EncodeToString(sum[:]), signingService, a.region, a.now()); err != nil {
		return nil, fmt.Errorf("%s: sign request: %w", a.name, err)
	}
	return req, nil
}

// Chat implements providers.Provider.
func (a *Adapter) Chat(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	tr, body, err := a.prepare(call)
	if err != nil {
		return nil, err
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, call.Model, false, body) },
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, err
	}
	var cr converseResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, providers.Malformed(a.name, false, "upstream sent invalid JSON", err)
	}
	c := completion(&cr, tr.jsonTool)
	c.ID, c.Model, c.Created = providers.NewCompletionID(), call.Model, a.now().Unix()
	out, err := c.Response()
	if err != nil {
		return nil, fmt.Errorf("%s: encode response: %w", a.name, err)
	}
	return out, nil
}

// ChatStream implements providers.Provider.
func (a *Adapter) ChatStream(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	tr, body, err := a.prepare(call)
	if err != nil {
		return nil, err
	}
	resp, cancel, err := providers.OpenStream(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, call.Model, true, body) },
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, err
	}
	b := providers.ChunkBuilder{ID: providers.NewCompletionID(), Model: call.Model, Created: a.now().Unix()}
	s := &stream{name: a.name, mr: newMessageReader(resp.Body), tr: newTranslator(a.name, b, tr.jsonTool)}
	return &providers.TranslatedStream{
		Next: s.next,
		CloseFn: func() error {
			cancel()
			return resp.Body.Close()
		},
	}, nil
}

// upstreamError turns a non-200 answer into a typed error. The error type
// comes from the X-Amzn-ErrorType header, else the body's __type or code
// ("Namespace#Name:uri" forms are reduced to Name); the message from the
// body's message (or Message).
func (a *Adapter) upstreamError(resp *http.Response, body []byte) *providers.Error {
	var eb struct {
		Type     string `json:"__type"`
		Code     any    `json:"code"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = json.Unmarshal(body, &eb)
	typ := resp.Header.Get("X-Amzn-Errortype")
	if typ == "" {
		typ = eb.Type
	}
	if code, ok := eb.Code.(string); typ == "" && ok {
		typ = code
	}
	msg := eb.Message
	if msg == "" {
		msg = eb.MessageU
	}
	pe := translateError(a.name, resp.StatusCode, sanitizeErrorType(typ), msg)
	pe.RetryAfter = providers.ParseRetryAfter(resp.Header, a.now())
	return pe
}

// sanitizeErrorType strips the URI suffix and namespace prefix AWS adds.
func sanitizeErrorType(t string) string {
	if i := strings.IndexByte(t, ':'); i >= 0 {
		t = t[:i]
	}
	if i := strings.IndexByte(t, '#'); i >= 0 {
		t = t[i+1:]
	}
	return strings.TrimSpace(t)
}

// translateError maps a Bedrock exception to OpenAI's error vocabulary,
// keeping the upstream status.
func translateError(provider string, status int, typ, msg string) *providers.Error {
	pe := &providers.Error{Provider: provider, Status: status, Message: msg}
	switch typ {
	case "ValidationException", "ConflictException":
		pe.Type = "invalid_request_error"
		if strings.Contains(strings.ToLower(msg), "too long") || strings.Contains(msg, "context length") || strings.Contains(msg, "max input tokens") {
			pe.Code = "context_length_exceeded"
		}
	case "ServiceQuotaExceededException":
		pe.Type, pe.Code = "insufficient_quota", "insufficient_quota"
	case "AccessDeniedException":
		pe.Type, pe.Code = "permission_error", "access_denied"
	case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
		"MissingAuthenticationTokenException", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch":
		pe.Type, pe.Code = "authentication_error", "invalid_api_key"
	case "ResourceNotFoundException":
		pe.Type, pe.Code = "invalid_request_error", "model_not_found"
	case "ThrottlingException":
		pe.Type, pe.Code = "rate_limit_error", "rate_limit_exceeded"
	case "ModelNotReadyException":
		pe.Type, pe.Code = "rate_limit_error", "model_not_ready"
	case "ModelTimeoutException":
		pe.Type, pe.Code = "timeout", "model_timeout"
	case "ModelErrorException", "ModelStreamErrorException":
		pe.Type, pe.Code = "server_error", "model_error"
	case "ServiceUnavailableException":
		pe.Type, pe.Code = "server_error", "service_unavailable"
	case "InternalServerException":
		pe.Type = "server_error"
	default:
		switch {
		case status >= 500 || status == 0:
			pe.Type = "server_error"
		case status == http.StatusTooManyRequests:
			pe.Type, pe.Code = "rate_limit_error", "rate_limit_exceeded"
		default:
			pe.Type = "invalid_request_error"
		}
	}
	if pe.Message == "" {
		pe.Message = providers.StatusText(status)
		if typ != "" {
			pe.Message = typ + ": " + pe.Message
		}
	}
	return pe
}
