// Package anthropic is the adapter for Anthropic's native Messages API
// (POST /v1/messages). It translates the caller's OpenAI chat request into a
// Messages request, and the answer (plain or streamed) back into OpenAI
// chat.completion objects and chunks.
//
// Config: type "anthropic"; base_url defaults to https://api.anthropic.com;
// api_key / api_key_env is sent as x-api-key; api_version overrides the
// anthropic-version header (default 2023-06-01); headers are added to every
// request (e.g. anthropic-beta).
package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

const (
	// DefaultBaseURL is Anthropic's API.
	DefaultBaseURL = "https://api.anthropic.com"
	// DefaultVersion is the anthropic-version header sent when the config
	// sets no api_version.
	DefaultVersion = "2023-06-01"
)

// Adapter talks to one Anthropic Messages endpoint.
type Adapter struct {
	name    string
	url     string // full messages URL
	key     string
	version string
	headers map[string]string
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

var _ providers.Factory = New

// New builds an adapter from its config entry; it is the registry Factory.
func New(cfg config.Provider, deps providers.Deps) (providers.Provider, error) {
	deps = deps.WithDefaults()
	getenv, client := deps.Getenv, deps.Client
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("anthropic: base_url %q must start with http:// or https://", cfg.BaseURL)
	}
	// Accept both "https://api.anthropic.com" and ".../v1".
	base = strings.TrimSuffix(base, "/v1")
	a := &Adapter{
		name:    cfg.Name,
		url:     base + "/v1/messages",
		key:     cfg.ProviderKey(getenv),
		version: cfg.APIVersion,
		timeout: cfg.Timeout,
		client:  client,
		now:     time.Now,
	}
	if a.version == "" {
		a.version = DefaultVersion
	}
	if len(cfg.Headers) > 0 {
		a.headers = make(map[string]string, len(cfg.Headers))
		for k, v := range cfg.Headers {
			a.headers[k] = v
		}
	}
	return a, nil
}

func (a *Adapter) newRequest(ctx context.Context, body []byte, stream bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	providers.Headers{Extra: a.headers, Own: a.ownHeaders}.Set(req.Header, providers.ContentJSON, providers.Accept(stream))
	return req, nil
}

// ownHeaders are the Messages API's version and the key.
func (a *Adapter) ownHeaders(h http.Header) {
	h.Set("anthropic-version", a.version)
	if a.key != "" {
		h.Set("x-api-key", a.key)
	}
}

// Chat implements providers.Provider.
func (a *Adapter) Chat(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	if call.Native(a) {
		return a.chatNative(ctx, call)
	}
	in, err := call.Request.Decoded()
	if err != nil {
		return nil, err
	}
	tr, err := translate(in, call.Model, false)
	if err != nil {
		return nil, err
	}
	tr.body = AddBreakpoints(tr.body, call.Breakpoints)
	body, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, tr.body, false) },
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, err
	}
	out, err := translateResponse(body, tr.jsonTool, call.Model, a.now().Unix())
	if err != nil {
		return nil, providers.Malformed(a.name, false, "upstream sent an invalid response", err)
	}
	return out, nil
}

// ChatStream implements providers.Provider.
func (a *Adapter) ChatStream(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	if call.Native(a) {
		return a.streamNative(ctx, call)
	}
	in, err := call.Request.Decoded()
	if err != nil {
		return nil, err
	}
	tr, err := translate(in, call.Model, true)
	if err != nil {
		return nil, err
	}
	tr.body = AddBreakpoints(tr.body, call.Breakpoints)
	resp, cancel, err := providers.OpenStream(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, tr.body, true) },
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, err
	}
	t := newTranslator(a.name, resp.Body, tr.jsonTool, call.Model, a.now().Unix())
	return &providers.TranslatedStream{
		Next: t.next,
		CloseFn: func() error {
			cancel()
			return resp.Body.Close()
		},
	}, nil
}

// errorKind is how one Anthropic error type reads in OpenAI's vocabulary,
// and the HTTP status Anthropic uses for it (needed for stream errors,
// which come after a 200).
type errorKind struct {
	status    int
	typ, code string
}

var errorKinds = map[string]errorKind{
	"invalid_request_error": {status: 400, typ: "invalid_request_error"},
	"authentication_error":  {status: 401, typ: "invalid_request_error", code: "invalid_api_key"},
	"billing_error":         {status: 402, typ: "insufficient_quota", code: "insufficient_quota"},
	"permission_error":      {status: 403, typ: "invalid_request_error", code: "permission_denied"},
	"not_found_error":       {status: 404, typ: "invalid_request_error", code: "not_found"},
	"request_too_large":     {status: 413, typ: "invalid_request_error", code: "request_too_large"},
	"rate_limit_error":      {status: 429, typ: "requests", code: "rate_limit_exceeded"},
	"api_error":             {status: 500, typ: "server_error"},
	"timeout_error":         {status: 504, typ: "server_error", code: "timeout"},
	"overloaded_error":      {status: 529, typ: "server_error", code: "overloaded"},
}

// kindOf maps an Anthropic error type, falling back on the status.
func kindOf(typ string, status int) errorKind {
	if k, ok := errorKinds[typ]; ok {
		return k
	}
	switch {
	case status == http.StatusTooManyRequests:
		return errorKinds["rate_limit_error"]
	case status >= 500:
		return errorKind{status: status, typ: "server_error"}
	}
	return errorKind{status: status, typ: "invalid_request_error"}
}

// anthropicError is {"type":"error","error":{"type","message"}}.
type anthropicError struct {
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// upstreamError turns a non-200 answer into a typed error. Status stays the
// upstream's (529 included); bodies that are not Anthropic's error shape
// (a proxy's HTML page) keep the status with a generic message.
func (a *Adapter) upstreamError(resp *http.Response, body []byte) *providers.Error {
	var ae anthropicError
	pe := &providers.Error{Provider: a.name, Status: resp.StatusCode}
	if json.Unmarshal(body, &ae) == nil && ae.Error != nil && ae.Error.Type != "" {
		k := kindOf(ae.Error.Type, resp.StatusCode)
		pe.Type, pe.Code, pe.Message = k.typ, k.code, ae.Error.Message
	} else {
		k := kindOf("", resp.StatusCode)
		pe.Type, pe.Code = k.typ, k.code
	}
	if pe.Message == "" {
		pe.Message = providers.StatusText(resp.StatusCode)
	}
	pe.RetryAfter = providers.ParseRetryAfter(resp.Header, a.now())
	return pe
}

// streamError is an `event: error` received after the 200.
func streamError(provider string, data []byte) *providers.Error {
	var ae anthropicError
	pe := &providers.Error{Provider: provider, MidStream: true, Status: http.StatusInternalServerError, Type: "server_error", Message: "upstream stream failed"}
	if json.Unmarshal(data, &ae) == nil && ae.Error != nil {
		k := kindOf(ae.Error.Type, http.StatusInternalServerError)
		pe.Status, pe.Type, pe.Code = k.status, k.typ, k.code
		if ae.Error.Message != "" {
			pe.Message = ae.Error.Message
		}
	}
	return pe
}

// brokenStream is a stream that ended or failed without message_stop.
func brokenStream(provider string, err error) *providers.Error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &providers.Error{Provider: provider, MidStream: true, Message: "upstream stream broke", Err: err}
}
