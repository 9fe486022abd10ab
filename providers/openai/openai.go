// Package openai is the adapter for OpenAI and every OpenAI-compatible API
// (Groq, Mistral, DeepSeek, vLLM, Ollama, ...). The caller already speaks
// this format, so the adapter forwards the caller's bytes, rewriting only
// the model id (and asking streams for usage), and reads usage back out.
package openai

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/jsontext"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// Adapter talks to one OpenAI-compatible endpoint.
type Adapter struct {
	name    string
	url     string // chat completions URL (when Options.URL is nil)
	auth    string // "Bearer <key>", or empty for keyless local servers
	timeout time.Duration
	client  *http.Client
	headers map[string]string
	opts    Options
	now     func() time.Time
}

// Options adapt the adapter to providers that speak OpenAI's format at
// other addresses or with other credentials (Azure OpenAI). Every field
// is optional.
type Options struct {
	// URL is the chat completions URL for an upstream model.
	URL func(model string) string
	// EmbeddingsURL is the embeddings URL for an upstream model.
	EmbeddingsURL func(model string) string
	// Auth sets the credential headers, replacing "Authorization: Bearer".
	Auth func(h http.Header)
	// KeepModel leaves the body's model as the caller sent it (the URL
	// names the deployment).
	KeepModel bool
	// SkipChunk drops a stream chunk before the caller sees it.
	SkipChunk func(data []byte) bool
	// ErrorFromJSON reads an error object (an answer's or a mid-stream
	// event's) in the provider's vocabulary; status is 0 mid-stream.
	ErrorFromJSON func(provider string, status int, e gjson.Result) *providers.Error
	// NativeURL is the URL serving format f natively for an upstream model
	// ("" when the upstream does not speak f). Nil: config's
	// native_formats under base_url (/responses, /completions).
	NativeURL func(f providers.Format, model string) string
	// ModelsURL lists the upstream's models (the key probe); "": base_url
	// + /models.
	ModelsURL string
}

// New builds an adapter from its config entry; it is the registry Factory.
func New(cfg config.Provider, deps providers.Deps) (providers.Provider, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("openai: base_url is required")
	}
	return NewWith(cfg, deps, Options{}), nil
}

// NewWith builds an adapter with provider-specific options.
func NewWith(cfg config.Provider, deps providers.Deps, o Options) *Adapter {
	deps = deps.WithDefaults()
	getenv, client := deps.Getenv, deps.Client
	if o.ErrorFromJSON == nil {
		o.ErrorFromJSON = errorFromJSON
	}
	a := &Adapter{
		name:    cfg.Name,
		url:     strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions",
		timeout: cfg.Timeout,
		client:  client,
		headers: cfg.Headers,
		opts:    o,
		now:     time.Now,
	}
	if key := cfg.ProviderKey(getenv); key != "" {
		a.auth = "Bearer " + key
	}
	if a.opts.NativeURL == nil {
		base := strings.TrimRight(cfg.BaseURL, "/")
		native := map[providers.Format]string{}
		formats := cfg.NativeFormats
		openAI := len(formats) == 0 && isOpenAI(base)
		if openAI {
			formats = []string{"responses", "completions"}
		}
		for _, name := range formats {
			switch f, _ := providers.ParseFormat(name); f {
			case providers.FormatResponses:
				native[f] = base + "/responses"
			case providers.FormatCompletions:
				native[f] = base + "/completions"
			}
		}
		a.opts.NativeURL = func(f providers.Format, model string) string {
			if openAI && f == providers.FormatCompletions && model != "" && !legacyCompletionModel(model) {
				return "" // a chat model: OpenAI answers 404 there
			}
			return native[f]
		}
	}
	return a
}

// legacyCompletionModel reports whether OpenAI serves model at its legacy
// completions endpoint: the instruct and base models only.
func legacyCompletionModel(model string) bool {
	return strings.Contains(model, "instruct") || strings.HasPrefix(model, "davinci") || strings.HasPrefix(model, "babbage")
}

// isOpenAI reports whether base is OpenAI's own API, which serves the
// Responses API and legacy completions besides chat.
func isOpenAI(base string) bool {
	u, err := url.Parse(base)
	return err == nil && strings.EqualFold(u.Hostname(), "api.openai.com")
}

// Speaks implements providers.NativeSpeaker: the formats config's
// native_formats names (OpenAI itself serves Responses for every model and
// legacy completions for its instruct and base models; most compatible
// APIs serve chat only).
func (a *Adapter) Speaks(f providers.Format, model string) bool {
	return f == providers.FormatChat || a.opts.NativeURL(f, model) != ""
}

func (a *Adapter) chatURL(model string) string {
	if a.opts.URL != nil {
		return a.opts.URL(model)
	}
	return a.url
}

// setHeaders writes the upstream headers: a request with a body sends
// JSON (contentType), and accept says what it expects back.
func (a *Adapter) setHeaders(h http.Header, contentType, accept string) {
	providers.Headers{Extra: a.headers, Own: a.ownHeaders}.Set(h, contentType, accept)
}

// ownHeaders are the credential: Options.Auth's, or "Authorization: Bearer".
func (a *Adapter) ownHeaders(h http.Header) {
	switch {
	case a.opts.Auth != nil:
		a.opts.Auth(h)
	case a.auth != "":
		h.Set("Authorization", a.auth)
	}
}

// upstreamBody rewrites the model id and, for streams, forces
// stream_options.include_usage so that usage is always known. Everything
// else the caller sent goes through untouched. A native call sends the
// caller's own body (Responses, legacy completions) the same way; the
// Responses API always reports usage in its final event.
func (a *Adapter) upstreamBody(call *providers.Call, native bool) ([]byte, error) {
	body, keep := call.Request.Body, a.opts.KeepModel
	if native {
		body, keep = call.Request.Native, false // the native URLs name no deployment
	}
	var err error
	if !keep && call.Model != call.Request.Model {
		if body, err = sjson.SetBytes(body, "model", call.Model); err != nil {
			return nil, fmt.Errorf("rewrite model: %w", err)
		}
	}
	if call.Request.Stream && !call.Request.IncludeUsage && (!native || call.Request.Format == providers.FormatCompletions) {
		if body, err = sjson.SetBytes(body, "stream_options.include_usage", true); err != nil {
			return nil, fmt.Errorf("set include_usage: %w", err)
		}
	}
	return body, nil
}

func (a *Adapter) newRequest(ctx context.Context, call *providers.Call) (*http.Request, error) {
	native := call.Native(a)
	body, err := a.upstreamBody(call, native)
	if err != nil {
		return nil, err
	}
	u := a.chatURL(call.Model)
	if native {
		u = a.opts.NativeURL(call.Request.Format, call.Model)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	a.setHeaders(req.Header, providers.ContentJSON, providers.Accept(call.Request.Stream))
	return req, nil
}

// Chat implements providers.Provider.
func (a *Adapter) Chat(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	body, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, call) },
		func(resp *http.Response, body []byte) error { return a.upstreamError(resp, body) })
	if err != nil {
		return nil, err
	}
	if !gjson.ValidBytes(body) {
		return nil, providers.Malformed(a.name, false, "upstream sent invalid JSON", nil)
	}
	out := &providers.ChatResponse{Body: body}
	if call.Native(a) {
		out.Native = true
		if call.Request.Format == providers.FormatResponses {
			if u, ok := parseResponsesUsage(gjson.GetBytes(body, "usage")); ok {
				out.Usage = u
			}
			return out, nil
		}
	}
	if u, ok := parseUsage(gjson.GetBytes(body, "usage")); ok {
		out.Usage = u
	}
	if call.Request.Format != providers.FormatChat && !out.Native {
		// Another ingress encodes the answer: give it the neutral form.
		c, err := providers.DecodeChatCompletion(body)
		if err != nil {
			return nil, providers.Malformed(a.name, false, "upstream sent an invalid response", err)
		}
		c.Usage = out.Usage
		out.Completion = c
	}
	return out, nil
}

// ChatStream implements providers.Provider.
func (a *Adapter) ChatStream(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	resp, cancel, err := providers.OpenStream(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, call) },
		func(resp *http.Response, body []byte) error { return a.upstreamError(resp, body) })
	if err != nil {
		return nil, err
	}
	st := &stream{a: a, body: resp.Body, r: sse.NewReader(resp.Body), cancel: cancel}
	switch {
	case call.Native(a) && call.Request.Format == providers.FormatResponses:
		return &responsesStream{stream: st}, nil
	case call.Native(a):
		st.native = true
	case call.Request.Format != providers.FormatChat:
		st.events, st.open = true, map[int]bool{}
	}
	return st, nil
}

type stream struct {
	a      *Adapter
	body   io.ReadCloser
	r      *sse.Reader
	cancel context.CancelFunc
	done   bool
	// native: the chunks are the caller's own format (legacy completions),
	// relayed as they are; events: decode Events from chat chunks for
	// another ingress (open tracks the tool calls opened).
	native bool
	events bool
	open   map[int]bool
}

var (
	doneMarker = []byte("[DONE]")
	usageKey   = []byte(`"usage"`)
	errorKey   = []byte(`"error"`)
)

// Recv returns the next chunk. Chunk.Data is valid until the next call.
func (s *stream) Recv() (providers.Chunk, error) {
	if s.done {
		return providers.Chunk{}, io.EOF
	}
	name := s.a.name
	for {
		ev, err := s.r.Next()
		if err != nil {
			s.done = true
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the upstream hung up before [DONE]
			}
			return providers.Chunk{}, &providers.Error{Provider: name, MidStream: true, Message: "upstream stream broke", Err: err}
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
				pe := s.a.opts.ErrorFromJSON(name, 0, e)
				pe.MidStream = true
				return providers.Chunk{}, pe
			}
		}
		if !gjson.ValidBytes(data) {
			s.done = true
			return providers.Chunk{}, providers.Malformed(name, true, "upstream sent a malformed stream", errors.New("chunk is not JSON"))
		}
		if s.a.opts.SkipChunk != nil && s.a.opts.SkipChunk(data) {
			continue
		}
		c := providers.Chunk{Data: data, Native: s.native}
		if carriesUsage(data) {
			// Looked up in place, without copying the value out: only its
			// numbers are read.
			if u, ok := parseUsage(gjson.Get(view(data), "usage")); ok {
				c.Usage = &u
				if ch := gjson.GetBytes(data, "choices"); !ch.Exists() || (ch.IsArray() && len(ch.Array()) == 0) {
					c.UsageOnly = true
				}
			}
		}
		switch {
		case s.events:
			evs, err := providers.DecodeChatChunk(data, nil, s.open)
			if err != nil {
				s.done = true
				return providers.Chunk{}, providers.Malformed(name, true, "upstream sent a malformed stream", err)
			}
			if c.Usage != nil {
				evs = append(evs, providers.Event{Kind: providers.EventUsage})
			}
			c.Events = evs
		case s.native:
			// Legacy completions: the delivered text, for metering.
			if t := gjson.GetBytes(data, "choices.0.text"); t.Type == gjson.String && t.Str != "" {
				c.Events = []providers.Event{{Kind: providers.EventText, Text: t.Str}}
			}
		}
		return c, nil
	}
}

// OnWait implements providers.WaitNotifier.
func (s *stream) OnWait(f func()) bool {
	s.r.OnWait(f)
	return true
}

func (s *stream) Close() error {
	s.cancel()
	return s.body.Close()
}

// carriesUsage reports whether a chat chunk may carry a usage object.
// With include_usage every chunk but the last says "usage":null: that one
// key, followed by null, is answered without parsing the chunk.
func carriesUsage(data []byte) bool {
	i := jsontext.IndexQuoted(data, usageKey)
	if i < 0 {
		return false
	}
	after := data[i+len(usageKey):]
	rest := bytes.TrimLeft(after, " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return true // not the key as we know it: let the parser decide
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	return !bytes.HasPrefix(rest, nullValue) || jsontext.IndexQuoted(after, usageKey) >= 0
}

var nullValue = []byte("null")

// view is b as a string without a copy, for gjson lookups whose results
// are read at once (numbers, a type) and never kept: b is reused by the
// next Recv.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func parseUsage(u gjson.Result) (providers.Usage, bool) { return usageAt(u, chatUsage) }

// usagePaths name the fields of a usage object: chat's and the Responses
// API's spell them differently.
type usagePaths struct{ prompt, completion, total, cached, reasoning string }

var (
	chatUsage      = usagePaths{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details.cached_tokens", "completion_tokens_details.reasoning_tokens"}
	responsesUsage = usagePaths{"input_tokens", "output_tokens", "total_tokens", "input_tokens_details.cached_tokens", "output_tokens_details.reasoning_tokens"}
)

func usageAt(u gjson.Result, p usagePaths) (providers.Usage, bool) {
	if !u.IsObject() {
		return providers.Usage{}, false
	}
	out := providers.Usage{
		PromptTokens:     providers.UsageCount(u.Get(p.prompt)),
		CompletionTokens: providers.UsageCount(u.Get(p.completion)),
		TotalTokens:      providers.UsageCount(u.Get(p.total)),
		CachedTokens:     providers.UsageCount(u.Get(p.cached)),
		ReasoningTokens:  providers.UsageCount(u.Get(p.reasoning)),
	}
	if out.TotalTokens == 0 {
		out.TotalTokens = out.PromptTokens + out.CompletionTokens
	}
	return out, true
}

// upstreamError turns a non-200 answer into a typed error. OpenAI's body is
// {"error":{"message","type","param","code"}}; compatible servers vary, so
// anything else keeps the status and a generic message.
func (a *Adapter) upstreamError(resp *http.Response, body []byte) *providers.Error {
	var pe *providers.Error
	if e := gjson.GetBytes(body, "error"); e.IsObject() {
		pe = a.opts.ErrorFromJSON(a.name, resp.StatusCode, e)
	} else if e.Type == gjson.String {
		pe = &providers.Error{Provider: a.name, Status: resp.StatusCode, Message: e.String()}
	} else if m := gjson.GetBytes(body, "message"); m.Type == gjson.String {
		// API gateways in front of providers (Azure API management, ...)
		// answer {"statusCode","message"}.
		pe = &providers.Error{Provider: a.name, Status: resp.StatusCode, Message: m.String()}
	} else {
		pe = &providers.Error{Provider: a.name, Status: resp.StatusCode, Message: providers.StatusText(resp.StatusCode)}
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
	switch c := e.Get("code"); c.Type {
	case gjson.String:
		pe.Code = c.String()
	case gjson.Number:
		pe.Code = strconv.FormatInt(c.Int(), 10)
		if pe.Status == 0 && c.Int() >= 400 && c.Int() < 600 {
			pe.Status = int(c.Int())
		}
	}
	if pe.Message == "" {
		pe.Message = providers.StatusText(status)
	}
	return pe
}

// NewRequest builds the upstream request of a call (exported for the
// golden tests of adapters built on this one).
func (a *Adapter) NewRequest(ctx context.Context, call *providers.Call) (*http.Request, error) {
	return a.newRequest(ctx, call)
}

// StreamFrom reads an upstream SSE body as this adapter's stream (for
// golden and fuzz tests of recorded streams).
func (a *Adapter) StreamFrom(body io.ReadCloser) providers.Stream {
	return &stream{a: a, body: body, r: sse.NewReader(body), cancel: func() {}}
}
