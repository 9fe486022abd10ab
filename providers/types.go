// Package providers defines what xroute needs of an LLM provider: the
// Provider interface, the canonical request, response and stream types, typed
// upstream errors, and a registry of adapters by wire format.
//
// The canonical request format (the pivot) is OpenAI's Chat Completions. A
// request keeps the pivot's bytes untouched (so new OpenAI parameters keep
// working) next to the few fields xroute itself decodes; every ingress
// (chat, Responses, legacy completions) produces one. Answers come back as
// OpenAI-shaped JSON with usage extracted, plus neutral Events that the
// other ingresses encode into their own formats (event.go). An adapter that
// speaks a caller's format natively (NativeSpeaker) serves it as it is.
package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"

	json "github.com/segmentio/encoding/json"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Provider is one upstream account speaking one wire format. Adapters are
// safe for concurrent use.
type Provider interface {
	// Chat performs a non-streaming completion.
	Chat(ctx context.Context, call *Call) (*ChatResponse, error)
	// ChatStream starts a streaming completion. It returns once the upstream
	// accepted the request (status 200); errors before that are *Error.
	ChatStream(ctx context.Context, call *Call) (Stream, error)
}

// Call is one attempt at one deployment: the caller's request and the model
// id the upstream knows.
type Call struct {
	Request *ChatRequest
	Model   string
	// Breakpoints, when above 0, asks an adapter whose upstream caches
	// only at marked breakpoints (Anthropic's cache_control) to mark a
	// request that marks none, where the prefix is at least this many
	// tokens (the model's minimum cacheable length). 0: send as it is.
	Breakpoints int
}

// Native reports whether this attempt is served in the caller's own format
// (the adapter speaks it): then the Native body goes upstream and the
// answer comes back in that format.
func (c *Call) Native(p Provider) bool {
	return c.Request.Format != FormatChat && c.Request.Native != nil && Speaks(p, c.Request.Format, c.Model)
}

// ChatRequest is the caller's chat request: the original body plus the
// fields xroute decodes for its own decisions.
type ChatRequest struct {
	Model  string
	Stream bool
	// IncludeUsage is true when the caller asked for the usage chunk
	// (stream_options.include_usage). xroute always asks the upstream for it.
	IncludeUsage bool
	// MaxTokens is max_completion_tokens, else the deprecated max_tokens;
	// 0 when neither is set.
	MaxTokens int
	// Choices is n, the number of answers asked for (0 or 1: one).
	Choices int
	// Body is the caller's JSON, never modified in place.
	Body []byte
	// What the request needs of a deployment, found while parsing.
	HasTools      bool
	HasImages     bool
	JSONSchema    bool
	ContextTokens int // prompt estimate + completion budget

	// Format is the ingress the request came in through. For any format
	// but chat, adapters set Events on every chunk and Completion on every
	// answer, which the ingress encodes.
	Format Format
	// Native is the caller's body in Format (nil for chat, whose Body is
	// the caller's): an adapter that speaks Format sends it instead of
	// translating Body, with only the model rewritten.
	Native []byte
	// NativeHeaders are the caller's headers a native upstream gets too
	// (the Messages API's anthropic-version and anthropic-beta).
	NativeHeaders http.Header
	// NativeOnly, when set, says why only a deployment speaking Format
	// natively can serve the request (a built-in tool the pivot cannot
	// express); others are skipped with this reason.
	NativeOnly string
	// CacheKey is OpenAI's prompt_cache_key (Chat Completions and
	// Responses): the caller's name for a session sharing a prompt
	// prefix, which the router keeps on one deployment.
	CacheKey string

	// decoded caches the full decode of Body for translating adapters,
	// shared by every attempt at the same Body (see Decoded).
	decoded *decodeOnce
}

// decodeOnce is one body's full decode, done at most once even when
// hedged attempts ask at the same time.
type decodeOnce struct {
	once sync.Once
	req  *OpenAIRequest
	err  error
}

// Decoded returns Body fully decoded, parsing it at most once per body:
// the ingress that built the pivot may have set it already (WithDecoded),
// and attempts at several translating deployments share it. Callers must
// not modify the result.
func (r *ChatRequest) Decoded() (*OpenAIRequest, error) {
	d := r.decoded
	if d == nil {
		// Not shared: a request built without ParseChatRequest.
		return DecodeOpenAIRequest(r.Body)
	}
	d.once.Do(func() { d.req, d.err = DecodeOpenAIRequest(r.Body) })
	return d.req, d.err
}

// WithBody returns a copy of r with another pivot body (quirks applied,
// routing extensions stripped); its decode is its own.
func (r *ChatRequest) WithBody(body []byte) *ChatRequest {
	out := *r
	out.Body = body
	out.decoded = &decodeOnce{}
	return &out
}

// WithMaxTokens returns a copy of r whose output cap is n: the pivot's
// max_tokens or max_completion_tokens (whichever it carries) rewritten.
func (r *ChatRequest) WithMaxTokens(n int) *ChatRequest {
	body := r.Body
	set := false
	for _, f := range [...]string{"max_completion_tokens", "max_tokens"} {
		if gjson.GetBytes(body, f).Exists() {
			if b, err := sjson.SetBytes(body, f, n); err == nil {
				body, set = b, true
			}
		}
	}
	if !set {
		return r
	}
	out := r.WithBody(body)
	out.ContextTokens = r.ContextTokens - r.MaxTokens + n
	out.MaxTokens = n
	return out
}

// SetDecoded records the decode of Body its builder already holds, so no
// adapter parses the pivot again.
func (r *ChatRequest) SetDecoded(d *OpenAIRequest) {
	o := &decodeOnce{req: d}
	o.once.Do(func() {})
	r.decoded = o
}

// Embedder is implemented by adapters that serve embeddings.
type Embedder interface {
	Embed(ctx context.Context, model string, inputs []string, dimensions int) ([][]float32, Usage, error)
}

// Usage is token accounting as OpenAI reports it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CachedTokens     int `json:"-"`
	// CacheWriteTokens are prompt tokens written to the provider's prompt
	// cache (Anthropic's cache_creation_input_tokens), priced at their own
	// rate; like CachedTokens they are part of PromptTokens.
	CacheWriteTokens int `json:"-"`
	// CacheWrite1hTokens are the part of CacheWriteTokens written with a
	// one-hour lifetime (Anthropic prices them at 2x input).
	CacheWrite1hTokens int `json:"-"`
	// WebSearches are server-side web searches the provider ran and bills
	// per request (Anthropic's server_tool_use.web_search_requests).
	WebSearches int `json:"-"`
	// ReasoningTokens are the part of CompletionTokens spent reasoning
	// (billed as output; reported in Responses' output_tokens_details).
	ReasoningTokens int `json:"-"`
}

// MaxUsageTokens bounds any one count of an upstream's usage: no request
// reads or writes ten million tokens, and a count above it is an upstream
// bug, not a bill.
const MaxUsageTokens = 10_000_000

// UsageError is usage an upstream reported that cannot be believed
// (negative, absurd, not numbers): the caller is not billed from it.
type UsageError struct{ Reason string }

func (e *UsageError) Error() string { return "upstream usage rejected: " + e.Reason }

// Check returns a *UsageError when u cannot be an upstream's true count:
// a count that was not an integer (MalformedCount), below zero or above
// MaxUsageTokens, or parts larger than their whole (cached or
// cache-written prompt tokens above the prompt, reasoning above the
// completion).
func (u Usage) Check() error {
	for _, f := range [...]struct {
		name string
		v    int
	}{
		{"prompt tokens", u.PromptTokens}, {"completion tokens", u.CompletionTokens}, {"total tokens", u.TotalTokens},
		{"cached tokens", u.CachedTokens}, {"cache write tokens", u.CacheWriteTokens}, {"1h cache write tokens", u.CacheWrite1hTokens},
		{"reasoning tokens", u.ReasoningTokens}, {"web searches", u.WebSearches},
	} {
		switch {
		case f.v == MalformedCount:
			return &UsageError{Reason: f.name + " is not an integer"}
		case f.v < 0 || f.v > MaxUsageTokens:
			return &UsageError{Reason: fmt.Sprintf("%s %d out of range [0, %d]", f.name, f.v, MaxUsageTokens)}
		}
	}
	switch {
	case u.CachedTokens+u.CacheWriteTokens > u.PromptTokens:
		return &UsageError{Reason: fmt.Sprintf("cached (%d) and cache-written (%d) prompt tokens exceed the prompt (%d)", u.CachedTokens, u.CacheWriteTokens, u.PromptTokens)}
	case u.CacheWrite1hTokens > u.CacheWriteTokens:
		return &UsageError{Reason: fmt.Sprintf("1h cache writes (%d) exceed cache writes (%d)", u.CacheWrite1hTokens, u.CacheWriteTokens)}
	case u.ReasoningTokens > u.CompletionTokens:
		return &UsageError{Reason: fmt.Sprintf("reasoning tokens (%d) exceed the completion (%d)", u.ReasoningTokens, u.CompletionTokens)}
	}
	return nil
}

// MalformedCount is what UsageCount reads for a count that is not an
// integer: negative, so that Check refuses it (and a sum with it).
const MalformedCount = -1 << 40

// UsageCount reads one usage count (a gjson value) for an adapter: absent
// or null is 0, an integer is itself (Check bounds it), anything else
// MalformedCount (gjson alone would read "lots" as 0).
func UsageCount(v gjson.Result) int {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return 0
	case v.Type == gjson.Number && v.Num == math.Trunc(v.Num):
		return int(max(min(v.Num, 1e15), -1e15))
	}
	return MalformedCount
}

// ChatResponse is a finished non-streaming completion.
type ChatResponse struct {
	// Body is an OpenAI chat.completion object, ready for the caller; or,
	// when Native, the answer in the request's own format.
	Body  []byte
	Usage Usage
	// Completion is the answer in neutral form: set by translating adapters
	// always, and by every adapter when the request's format is not chat.
	Completion *Completion
	// Native marks an answer in the request's format (Body is not chat).
	Native bool
}

// Chunk is one stream event: an OpenAI chat.completion.chunk object, or
// when Native one event of the request's own format.
type Chunk struct {
	Data []byte
	// Usage is set on the chunk that carries usage.
	Usage *Usage
	// UsageOnly marks the include_usage chunk (empty choices): it goes to the
	// caller only when the caller asked for it.
	UsageOnly bool
	// UsagePartial marks a Usage that counts the input side only (an
	// Anthropic message_start): the output is still to come, and a stream
	// that breaks before it is counted from what it delivered.
	UsagePartial bool
	// Events is the chunk in neutral form (see event.go): set by
	// translating adapters always, and by every adapter when the request's
	// format is not chat.
	Events []Event
	// Native marks an event in the request's own format: Name is its SSE
	// event name and Data its data, relayed as they are.
	Native bool
	Name   string
}

// Stream yields chunks until io.EOF (the upstream finished cleanly). Any
// other error means the stream broke. Close releases the upstream
// connection and may be called at any time, more than once.
type Stream interface {
	Recv() (Chunk, error)
	Close() error
}

// WaitNotifier is a Stream that can say when a Recv is about to wait for
// the network: it calls f then, and only then. The relay writes the chunks
// it has without flushing each and flushes in f, so chunks that arrive
// together leave together in one write, as a byte-copying proxy sends them,
// and no chunk waits for a later one. OnWait reports whether f will be
// called (a wrapper whose inner stream cannot say returns false, and the
// relay flushes every chunk).
type WaitNotifier interface {
	OnWait(f func()) bool
}

// RequestError is a problem with the caller's request, found before any
// upstream is called (it maps to a 400).
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// chatFields are the only fields xroute decodes from the caller's body.
type chatFields struct {
	Model         *string         `json:"model"`
	Messages      json.RawMessage `json:"messages"`
	Stream        *bool           `json:"stream"`
	StreamOptions *struct {
		IncludeUsage *bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	PromptCacheKey      json.RawMessage `json:"prompt_cache_key"`
	Tools               json.RawMessage `json:"tools"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

// ParseChatRequest decodes and checks the fields xroute relies on. The body
// is kept as given; the caller must not modify it afterwards.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	if err := CheckFields(body); err != nil {
		return nil, err
	}
	var f chatFields
	if err := json.Unmarshal(body, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &RequestError{Param: te.Field, Message: fmt.Sprintf("Invalid type for '%s': expected %s, got %s.", te.Field, te.Type, te.Value)}
		}
		return nil, &RequestError{Message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"}
	}
	if f.Model == nil || *f.Model == "" {
		return nil, &RequestError{Param: "model", Message: "you must provide a model parameter"}
	}
	if len(f.Messages) == 0 || string(f.Messages) == "null" {
		return nil, &RequestError{Param: "messages", Message: "Missing required parameter: 'messages'."}
	}
	if f.Messages[0] != '[' {
		return nil, &RequestError{Param: "messages", Message: "Invalid type for 'messages': expected an array."}
	}
	if isEmptyArray(f.Messages) {
		return nil, &RequestError{Param: "messages", Message: "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."}
	}
	r := &ChatRequest{Model: *f.Model, Body: body, decoded: &decodeOnce{}}
	if f.Stream != nil {
		r.Stream = *f.Stream
	}
	if f.StreamOptions != nil && f.StreamOptions.IncludeUsage != nil {
		r.IncludeUsage = *f.StreamOptions.IncludeUsage
	}
	switch {
	case f.MaxCompletionTokens != nil && f.MaxTokens != nil:
		// Upstreams differ on which one wins: hold and route for the larger.
		r.MaxTokens = max(*f.MaxCompletionTokens, *f.MaxTokens)
	case f.MaxCompletionTokens != nil:
		r.MaxTokens = *f.MaxCompletionTokens
	case f.MaxTokens != nil:
		r.MaxTokens = *f.MaxTokens
	}
	if f.N != nil {
		if *f.N < 1 || *f.N > 128 {
			return nil, &RequestError{Param: "n", Message: fmt.Sprintf("Invalid 'n': expected an integer from 1 to 128, got %d.", *f.N)}
		}
		r.Choices = *f.N
	}
	if len(f.PromptCacheKey) > 0 && f.PromptCacheKey[0] == '"' {
		_ = json.Unmarshal(f.PromptCacheKey, &r.CacheKey) // a string: the upstream judges anything else
	}
	r.HasTools = len(f.Tools) > 0 && f.Tools[0] == '[' && !isEmptyArray(f.Tools)
	r.HasImages = bytes.Contains(f.Messages, []byte(`"image_url"`))
	r.JSONSchema = f.ResponseFormat != nil && f.ResponseFormat.Type == "json_schema"
	r.ContextTokens = len(body)/4 + r.MaxTokens
	if r.MaxTokens < 0 {
		return nil, &RequestError{Param: "max_tokens", Message: fmt.Sprintf("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", r.MaxTokens)}
	}
	return r, nil
}

func isEmptyArray(raw json.RawMessage) bool {
	for _, c := range raw[1:] {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case ']':
			return true
		default:
			return false
		}
	}
	return false
}

// BreakpointCacher is implemented by an adapter whose upstream caches a
// prompt only up to the breakpoints a request marks (Anthropic's
// cache_control, Bedrock's cachePoint): given Call.Breakpoints, it marks a
// request that marks none. The router reads it to know such a deployment
// does not cache on its own.
type BreakpointCacher interface {
	// MinCacheTokens is the shortest prefix model caches at a breakpoint
	// when the catalog does not say (0: model has no prompt cache).
	MinCacheTokens(model string) int
}
