// Package azure is the adapter for Azure OpenAI. The wire format is
// OpenAI's Chat Completions, so the adapter forwards the caller's bytes,
// rewriting only what must change, and reads usage back out. What differs
// from OpenAI is the address and the key:
//
//   - the dated API (default): POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version},
//     where the deployment is the upstream model id (the body's model is
//     ignored by Azure and left as the caller sent it);
//   - the v1 API (api_version: v1): POST {base_url}/openai/v1/chat/completions
//     with the deployment name as the body's model;
//
// both with the key in the api-key header. Azure's extras are handled: the
// first stream chunk carrying only prompt_filter_results is dropped,
// content-filter errors (400, code content_filter) keep their code, and
// API-management errors ({"statusCode","message"}) are read too.
package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// DefaultAPIVersion is the latest GA api-version of the dated data-plane
// inference API.
const DefaultAPIVersion = "2024-10-21"

// APIVersionV1 selects the v1 API (/openai/v1/..., no api-version).
const APIVersionV1 = "v1"

// maxResponseBytes bounds a non-streaming answer read into memory.
const maxResponseBytes = 32 << 20

// Adapter talks to one Azure OpenAI resource. It is safe for concurrent use.
type Adapter struct {
	name       string
	base       string // https://{resource}.openai.azure.com, no trailing slash
	apiVersion string
	v1         bool
	key        string
	timeout    time.Duration
	client     *http.Client
	headers    map[string]string
	now        func() time.Time
}

// New builds an adapter from its config entry; it is the registry Factory.
// base_url is the resource endpoint (https://{resource}.openai.azure.com; a
// trailing /openai or /openai/v1 is accepted), api_key or api_key_env the
// resource key, api_version the dated version (DefaultAPIVersion) or "v1".
func New(cfg config.Provider, deps providers.Deps) (providers.Provider, error) {
	getenv := deps.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	client := deps.Client
	if client == nil {
		client = http.DefaultClient
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		return nil, errors.New("azure: base_url is required (https://<resource>.openai.azure.com)")
	}
	version := cfg.APIVersion
	if b, ok := strings.CutSuffix(base, "/openai/v1"); ok {
		base = b
		if version == "" {
			version = APIVersionV1
		}
	} else {
		base = strings.TrimSuffix(base, "/openai")
	}
	if version == "" {
		version = DefaultAPIVersion
	}
	key := cfg.ProviderKey(getenv)
	if key == "" {
		return nil, errors.New("azure: api_key or api_key_env is required")
	}
	return &Adapter{
		name:       cfg.Name,
		base:       base,
		apiVersion: version,
		v1:         version == APIVersionV1,
		key:        key,
		timeout:    cfg.Timeout,
		client:     client,
		headers:    cfg.Headers,
		now:        time.Now,
	}, nil
}

// endpoint is the chat completions URL for a deployment.
func (a *Adapter) endpoint(deployment string) string {
	if a.v1 {
		return a.base + "/openai/v1/chat/completions"
	}
	return a.base + "/openai/deployments/" + url.PathEscape(deployment) + "/chat/completions?api-version=" + url.QueryEscape(a.apiVersion)
}

// upstreamBody rewrites the model for the v1 API and, for streams, forces
// stream_options.include_usage so that usage is always known.
func (a *Adapter) upstreamBody(call *providers.Call) ([]byte, error) {
	body := call.Request.Body
	var err error
	if a.v1 && call.Model != call.Request.Model {
		if body, err = sjson.SetBytes(body, "model", call.Model); err != nil {
			return nil, fmt.Errorf("rewrite model: %w", err)
		}
	}
	if call.Request.Stream && !call.Request.IncludeUsage {
		if body, err = sjson.SetBytes(body, "stream_options.include_usage", true); err != nil {
			return nil, fmt.Errorf("set include_usage: %w", err)
		}
	}
	return body, nil
}

func (a *Adapter) newRequest(ctx context.Context, call *providers.Call) (*http.Request, error) {
	if call.Model == "" {
		return nil, fmt.Errorf("%s: no deployment name", a.name)
	}
	body, err := a.upstreamBody(call)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint(call.Model), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	for k, v := range a.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	if call.Request.Stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "xroute")
	req.Header.Set("api-key", a.key)
	return req, nil
}

// Chat implements providers.Provider.
func (a *Adapter) Chat(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	req, err := a.newRequest(ctx, call)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, providers.TransportError(a.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, providers.TransportError(a.name, fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, a.upstreamError(resp, body)
	}
	if len(body) > maxResponseBytes {
		return nil, &providers.Error{Provider: a.name, Status: http.StatusBadGateway, Message: "upstream response too large"}
	}
	if !json.Valid(body) {
		return nil, &providers.Error{Provider: a.name, Status: http.StatusBadGateway, Message: "upstream sent invalid JSON"}
	}
	out := &providers.ChatResponse{Body: body}
	if u, ok := parseUsage(gjson.GetBytes(body, "usage")); ok {
		out.Usage = u
	}
	return out, nil
}

// ChatStream implements providers.Provider.
func (a *Adapter) ChatStream(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	// The per-attempt timeout covers the wait for the response headers.
	var timer *time.Timer
	var timedOut atomic.Bool
	if a.timeout > 0 {
		timer = time.AfterFunc(a.timeout, func() {
			timedOut.Store(true)
			cancel()
		})
	}
	req, err := a.newRequest(ctx, call)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := a.client.Do(req)
	if timer != nil && !timer.Stop() && err == nil {
		resp.Body.Close() // the timer fired as the headers arrived
		err = context.Canceled
	}
	if err != nil {
		cancel()
		if timedOut.Load() {
			err = fmt.Errorf("no response headers within %v: %w", a.timeout, context.DeadlineExceeded)
		}
		return nil, providers.TransportError(a.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		return nil, a.upstreamError(resp, body)
	}
	return &stream{name: a.name, body: resp.Body, r: sse.NewReader(resp.Body), cancel: cancel}, nil
}

type stream struct {
	name   string
	body   io.ReadCloser
	r      *sse.Reader
	cancel context.CancelFunc
	done   bool
}

var (
	doneMarker = []byte("[DONE]")
	errorKey   = []byte(`"error"`)
	usageKey   = []byte(`"usage"`)
	filterKey  = []byte(`"prompt_filter_results"`)
)

// Recv returns the next chunk; Chunk.Data is valid until the next call.
func (s *stream) Recv() (providers.Chunk, error) {
	if s.done {
		return providers.Chunk{}, io.EOF
	}
	for {
		ev, err := s.r.Next()
		if err != nil {
			s.done = true
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the upstream hung up before [DONE]
			}
			return providers.Chunk{}, &providers.Error{Provider: s.name, MidStream: true, Message: "upstream stream broke", Err: err}
		}
		data := bytes.TrimSpace(ev.Data)
		if len(data) == 0 {
			continue
		}
		if bytes.Equal(data, doneMarker) {
			s.done = true
			return providers.Chunk{}, io.EOF
		}
		if bytes.Contains(data, errorKey) {
			if e := gjson.GetBytes(data, "error"); e.IsObject() {
				s.done = true
				pe := errorFromJSON(s.name, 0, e)
				pe.MidStream = true
				return providers.Chunk{}, pe
			}
		}
		if !json.Valid(data) {
			s.done = true
			return providers.Chunk{}, &providers.Error{Provider: s.name, MidStream: true, Message: "upstream sent a malformed stream", Err: errors.New("chunk is not JSON")}
		}
		noChoices := !gjson.GetBytes(data, "choices.0").Exists()
		c := providers.Chunk{Data: data}
		if bytes.Contains(data, usageKey) {
			if u, ok := parseUsage(gjson.GetBytes(data, "usage")); ok {
				c.Usage = &u
				c.UsageOnly = noChoices
				return c, nil
			}
		}
		if noChoices && bytes.Contains(data, filterKey) {
			// Azure's first chunk: prompt_filter_results and no choices, with
			// an empty id and object. Not a chunk OpenAI clients expect.
			continue
		}
		return c, nil
	}
}

func (s *stream) Close() error {
	s.cancel()
	return s.body.Close()
}

func parseUsage(u gjson.Result) (providers.Usage, bool) {
	if !u.IsObject() {
		return providers.Usage{}, false
	}
	out := providers.Usage{
		PromptTokens:     int(u.Get("prompt_tokens").Int()),
		CompletionTokens: int(u.Get("completion_tokens").Int()),
		TotalTokens:      int(u.Get("total_tokens").Int()),
		CachedTokens:     int(u.Get("prompt_tokens_details.cached_tokens").Int()),
	}
	if out.TotalTokens == 0 {
		out.TotalTokens = out.PromptTokens + out.CompletionTokens
	}
	return out, true
}

// upstreamError turns a non-200 answer into a typed error. Azure answers
// {"error":{"code","message","param","type",...}} (code is often a string
// such as "429", "DeploymentNotFound" or "content_filter", type often
// absent), or, from its API management layer, {"statusCode","message"}.
func (a *Adapter) upstreamError(resp *http.Response, body []byte) *providers.Error {
	var pe *providers.Error
	switch e := gjson.GetBytes(body, "error"); {
	case e.IsObject():
		pe = errorFromJSON(a.name, resp.StatusCode, e)
	case e.Type == gjson.String:
		pe = &providers.Error{Provider: a.name, Status: resp.StatusCode, Message: e.String()}
	default:
		pe = &providers.Error{Provider: a.name, Status: resp.StatusCode, Message: gjson.GetBytes(body, "message").String()}
	}
	if pe.Message == "" {
		pe.Message = providers.StatusText(resp.StatusCode)
	}
	if pe.Type == "" {
		pe.Type = defaultType(resp.StatusCode)
	}
	if pe.Code == "" {
		pe.Code = defaultCode(resp.StatusCode)
	}
	pe.RetryAfter = providers.ParseRetryAfter(resp.Header, a.now())
	return pe
}

func errorFromJSON(provider string, status int, e gjson.Result) *providers.Error {
	pe := &providers.Error{
		Provider: provider,
		Status:   status,
		Message:  e.Get("message").String(),
		Type:     e.Get("type").String(),
		Param:    e.Get("param").String(),
	}
	code := e.Get("code")
	switch code.Type {
	case gjson.String:
		pe.Code = code.String()
	case gjson.Number:
		pe.Code = strconv.FormatInt(code.Int(), 10)
	}
	if pe.Status == 0 {
		if s := e.Get("status").Int(); s >= 400 && s < 600 {
			pe.Status = int(s)
		} else if n, err := strconv.Atoi(pe.Code); err == nil && n >= 400 && n < 600 {
			pe.Status = n
		}
	}
	// Azure's codes are HTTP statuses or its own names: speak OpenAI's.
	switch {
	case pe.Code == "DeploymentNotFound":
		pe.Code = "model_not_found"
	case isDigits(pe.Code):
		pe.Code = defaultCode(pe.Status)
	}
	if pe.Code == "content_filter" && pe.Type == "" {
		pe.Type = "invalid_request_error"
	}
	if pe.Type == "" && pe.Status != 0 {
		pe.Type = defaultType(pe.Status)
	}
	return pe
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func defaultType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500 || status == 0:
		return "server_error"
	}
	return "invalid_request_error"
}

func defaultCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "invalid_api_key"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	}
	return ""
}
