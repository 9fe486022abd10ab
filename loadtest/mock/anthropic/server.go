// Package anthropic is a mock Anthropic Messages upstream, faithful to the
// public API reference (API versions 2023-06-01 and 2026-10-21) for what
// real clients send, the official SDKs and Claude Code among them. Routes:
//
//	POST /v1/messages               plain and streamed answers (SSE)
//	POST /v1/messages/count_tokens  {"input_tokens": N}
//	GET  /v1/models[/{id}]          the served models, paginated
//
// The knobs and "#mock:" directives are those of the OpenAI mock (package
// loadtest/mock). Answers are deterministic and equal to the OpenAI mock's
// for the same conversation: the same text (mock.Token) and the same tool
// arguments (mock.ToolArguments); a text-only prompt counts the same
// tokens. With tool_choice auto (or unset), a tool-using answer starts with
// a short text block before its tool_use blocks, as Claude usually does.
//
// # Requests
//
// Headers: the key in x-api-key or, as the SDKs of API version 2026-10-21
// send it, "Authorization: Bearer" (x-api-key wins when both are present);
// anthropic-version is required (2023-06-01, 2026-10-21 or the old
// 2023-01-01; another value is a 400); anthropic-beta is accepted with any
// value (interleaved-thinking-2025-05-14 changes the
// answer, see Thinking). ?beta=true is accepted on every route.
//
// Top-level fields are those of the reference and of the SDK's
// MessageNewParams and BetaMessageNewParams (model, max_tokens, messages,
// system, metadata, stop_sequences, stream, thinking, tool_choice, tools,
// output_config, output_format, cache_control, context_management,
// service_tier, speed, inference_geo, container, diagnostics, mcp_servers,
// compaction, thread, fallbacks, fallback_credit_token, billing_policy);
// any other is a 400 "<field>: Extra inputs are not permitted", as the API
// answers. temperature, top_p and top_k are accepted (and range-checked)
// with anthropic-version 2023-06-01 only: 2026-10-21 removed them.
// count_tokens takes model, messages, system, tools, thinking, tool_choice
// and the other fields its reference lists (not max_tokens).
//
// What is checked as the API does: max_tokens (0 only warms the cache);
// user and assistant turns (consecutive turns of one role are combined into
// one, as the reference says); mid-conversation {"role":"system"} messages
// of text blocks, which must immediately follow a user message and which
// models released before Claude Opus 4.8 (claude-3*, claude-*-4 to -4-7)
// refuse with a 400; non-empty text blocks, and no trailing whitespace at
// the end of a final assistant message (prefill); tool_result blocks (string
// or block content, is_error) that answer the tool_use blocks of the
// previous turn and come first in their turn; images (base64, whose bytes
// must match media_type, or url); documents (base64 PDF, plain text,
// content, url or file source); with 2026-10-21, no document block in
// assistant messages and no citations on user text blocks; thinking and
// redacted_thinking blocks passed back (see Thinking); tools (custom tools
// with an object input_schema, cache_control, defer_loading, strict; server
// tools such as web_search_20250305, bash_20250124, text_editor_20250728 or
// code_execution_* are accepted and never called); tool_choice auto, any,
// tool and none with disable_parallel_tool_use; cache_control breakpoints
// (type ephemeral, ttl 5m or 1h, at most 4, 1h ones before 5m ones);
// metadata.user_id; output_config.effort and output_config.format (a
// json_schema answer, as structured outputs); service_tier and speed.
//
// # Thinking
//
// With thinking {"type":"enabled","budget_tokens":N} (N >= 1024 and below
// max_tokens, unless the interleaved-thinking beta is on) the answer starts
// with a thinking block of min(N, 64) tokens; with {"type":"adaptive"} (and
// "between_tools") its length follows output_config.effort: low 8, medium
// 24, high (the default) 48, xhigh 56, max 64 tokens. The tokens count in
// output_tokens and in usage.output_tokens_details.thinking_tokens, and in
// max_tokens. display "omitted" (and the beta's "updates") sends the block
// with empty thinking text and its signature. Every thinking block carries a signature the mock can
// verify: in the current assistant turn (after the last user message that
// is not only tool results) a thinking block passed back must carry the
// signature issued for its text, else 400, as the API refuses modified
// thinking blocks; earlier turns need a non-empty signature. With manual
// thinking ("enabled"), tool_choice any or tool is a 400, and an assistant
// message that continues the current turn must start with a thinking (or
// redacted_thinking) block. With interleaved thinking (the
// interleaved-thinking-2025-05-14 beta, or adaptive thinking) each tool_use
// after the first is preceded by a thinking block of 8 tokens. Streams send
// a thinking block as content_block_start {"type":"thinking","thinking":"",
// "signature":""}, thinking_delta events, one signature_delta, then
// content_block_stop.
//
// # Prompt caching
//
// A request's cache_control breakpoints (on tools, system blocks, message
// content blocks, or the top-level cache_control that marks the last
// block) are simulated with an in-memory LRU of prefix hashes (tools, then
// system, then messages, per model; cache_control itself is not part of the
// hash), one cache per provider key (the x-api-key or bearer key the
// request came with: the API's cache is per workspace, and two keys never
// share an entry in the mock). For each breakpoint the mock looks for a
// cached prefix at that block or up to 20 blocks before it; the longest
// live one found is cache_read_input_tokens, the rest of the prompt up to
// the last breakpoint is cache_creation_input_tokens (split by TTL in
// usage.cache_creation) and is written at every breakpoint, and
// input_tokens is what follows the last breakpoint. Entries live 5 minutes
// (ttl "1h": an hour) from their last write or read; a 1h breakpoint on a
// cached 5m prefix makes it a 1h entry. max_tokens 0 only writes (warms)
// the cache; count_tokens leaves it alone. Prefixes shorter than the
// model's minimum cacheable length are neither read nor written: 4096
// tokens for claude-opus-4-5, -4-6 and claude-haiku-4-5, 2048 for
// claude-opus-4-7 and the Haiku 3 models, 1024 for the others, as the
// reference lists them; Config.CacheMinTokens replaces it (negative: no
// minimum). Token counts are the mock's deterministic estimate (below), so
// a test can predict every count. When Config.CacheReadTokens or
// CacheCreationTokens is set, those fixed counts are reported instead on
// every request, breakpoints or not, and the simulation is off. The
// simulation itself (mock.Prefix, mock.PromptCache) is shared with the
// Bedrock mock's cachePoint blocks.
//
// # Usage and streams
//
// Prompt tokens are words (mock.CountWords) plus 3 per message and 3 for
// the framing (3 more for a system prompt), tool_use input words plus 1,
// custom tool definitions (1 plus the words of their name and description
// plus 1 per 8 bytes of schema; deferred ones count 0), server tools 1
// plus the words of their name, the thinking text of the current turn
// (earlier turns' thinking is stripped, as the API does), text documents
// their words, PDF documents 1 plus 1 per 64 bytes; images count 0, as in
// the OpenAI mock.
// input_tokens + cache_creation_input_tokens + cache_read_input_tokens is
// that prompt, which count_tokens answers. message_start carries the
// input-side usage (output_tokens 1), message_delta the cumulative usage:
// input_tokens, both cache counts, output_tokens and output_tokens_details.
// Every response carries a request-id header, Messages answers also
// anthropic-ratelimit-* headers. A request with context_management (beta)
// gets context_management {"applied_edits": []} in the message and in
// message_delta; count_tokens then adds context_management
// {"original_input_tokens"}.
//
// # Models
//
// GET /v1/models lists Config.Models (three current model ids when it is
// empty) in that order, the most recent first as the API does, with limit
// (1 to 1000, default 20), after_id and before_id, as {"data", "has_more",
// "first_id", "last_id"}; GET /v1/models/{id} answers a served id (any id
// when Config.Models is empty) or 404 not_found_error.
//
// # Failures
//
// Errors are {"type":"error","error":{"type","message"},"request_id"}
// with a request-id header. FailRate503 and the quota directive answer as
// Anthropic does, with 529 overloaded_error and 402 billing_error; a 429
// carries retry-after and anthropic-ratelimit-{requests,tokens,
// input-tokens,output-tokens}-{limit,remaining,reset} headers (RFC 3339
// resets); a stream-error directive sends
// event: error {"type":"error","error":{"type":"overloaded_error",...}}
// after the first content delta and ends the stream.
package anthropic

import (
	"encoding/json"
	"flag"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// Config holds the knobs: those of the OpenAI mock (APIKey is the required
// x-api-key or bearer key) plus prompt-cache accounting.
type Config struct {
	mock.Config
	// CacheReadTokens and CacheCreationTokens, when either is set, are
	// prompt tokens reported as read from / written to the prompt cache
	// (cache_read_input_tokens, cache_creation_input_tokens) on every
	// request, capped so that they never exceed the prompt; input_tokens is
	// the rest. They replace the simulation of cache_control breakpoints.
	CacheReadTokens, CacheCreationTokens int
	// CacheMinTokens is the shortest prefix the simulated prompt cache
	// stores: 0 is the model's minimum cacheable prompt as the reference
	// lists it (1024 to 4096 tokens), a negative value caches any prefix.
	CacheMinTokens int
	// Now is the clock of the prompt cache's TTLs and of rate-limit
	// resets; nil is time.Now.
	Now func() time.Time
}

// RegisterFlags binds c to flags of fs (the OpenAI mock's plus the cache
// knobs).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.CacheReadTokens, "cache-read-tokens", c.CacheReadTokens, "prompt tokens reported as cache reads on every request (replaces the cache simulation)")
	fs.IntVar(&c.CacheCreationTokens, "cache-creation-tokens", c.CacheCreationTokens, "prompt tokens reported as cache writes on every request (replaces the cache simulation)")
	fs.IntVar(&c.CacheMinTokens, "cache-min-tokens", c.CacheMinTokens, "shortest prefix the simulated prompt cache stores (0: the model's documented minimum, 1024 to 4096; -1: any)")
}

func (c Config) normalized() Config {
	c.Config = c.Config.Normalized()
	c.CacheReadTokens = max(c.CacheReadTokens, 0)
	c.CacheCreationTokens = max(c.CacheCreationTokens, 0)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// state is an immutable snapshot of the configuration.
type state struct {
	cfg    Config
	models mock.ModelSet
}

// Server is the mock upstream; an http.Handler safe for concurrent use.
type Server struct {
	st    atomic.Pointer[state]
	mux   *http.ServeMux
	core  *mock.Core
	cache *mock.PromptCache
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	s := &Server{core: mock.NewCore(), cache: mock.NewPromptCache(cacheEntries)}
	s.SetConfig(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.handleMessages)
	mux.HandleFunc("POST /v1/messages/count_tokens", s.handleCountTokens)
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /v1/models/{id}", s.handleModel)
	mux.HandleFunc("/", s.handleNotFound)
	s.mux = mux
	return s
}

// SetConfig replaces the configuration; requests in flight keep theirs. The
// failure RNG is reseeded with cfg.Seed; the prompt cache is kept.
func (s *Server) SetConfig(cfg Config) {
	cfg = cfg.normalized()
	s.core.Reseed(cfg.Seed)
	s.st.Store(&state{cfg: cfg, models: mock.NewModelSet(cfg.Models)})
}

// Stats returns a snapshot of the counters; Chat counts POST /v1/messages.
func (s *Server) Stats() mock.Stats { return s.core.Stats() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.core.Serve(w, r, s.st.Load().cfg.APIKey, requestKey, s.refuseKey, s.mux)
}

// requestKey is the key a request carries: x-api-key wins; the SDKs of API
// version 2026-10-21 send the key as a bearer token.
func requestKey(r *http.Request) string {
	if k := r.Header.Get("x-api-key"); k != "" {
		return k
	}
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(b)
	}
	return ""
}

func (s *Server) refuseKey(w http.ResponseWriter, missing bool) {
	if missing {
		s.writeError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required")
		return
	}
	s.writeError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, http.StatusNotFound, "not_found_error", "Not Found")
}

// API versions (anthropic-version).
const (
	version2023 = "2023-06-01"
	version2026 = "2026-10-21"
)

// apiVersion checks the anthropic-version header; false after writing the
// 400.
func (s *Server) apiVersion(w http.ResponseWriter, r *http.Request) (string, bool) {
	v := r.Header.Get("anthropic-version")
	switch v {
	case version2023, version2026, "2023-01-01":
		return v, true
	case "":
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
	default:
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: invalid version '"+v+"'; supported versions are "+version2023+" and "+version2026)
	}
	return "", false
}

// errorType is Anthropic's error type for an HTTP status.
func errorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// errorMessage is the message the real API sends with an injected failure.
func errorMessage(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "This request would exceed the rate limit for your organization of " + strconv.Itoa(rateRequests) + " requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
	case http.StatusPaymentRequired:
		return "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."
	case http.StatusInternalServerError:
		return "Internal server error"
	case 529:
		return "Overloaded"
	}
	return "mock: " + strconv.Itoa(status) + " " + http.StatusText(status) + " forced by directive"
}

func (s *Server) requestID() string { return s.newID("req_011C", 20) }

// newID returns prefix followed by n base-62 characters.
func (s *Server) newID(prefix string, n int) string {
	return string(mock.AppendAlnum([]byte(prefix), s.core.NextID(), n))
}

// writeJSON writes a complete JSON response with Anthropic's headers.
func (s *Server) writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Request-Id", s.requestID())
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes {"type":"error","error":{"type","message"},"request_id"}.
func (s *Server) writeError(w http.ResponseWriter, status int, typ, message string) {
	s.core.Fail(status)
	id := s.requestID()
	body, _ := json.Marshal(errorBody{Type: "error", Error: errorDetail{Type: typ, Message: message}, RequestID: id})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Request-Id", id)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type errorBody struct {
	Type      string      `json:"type"`
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// The rate limits the mock advertises (per minute).
const (
	rateRequests     = 4000
	rateInputTokens  = 2_000_000
	rateOutputTokens = 400_000
)

// rateLimitHeaders sets anthropic-ratelimit-* on h for a request of in
// input and out output tokens; exhausted (a 429) reports no requests left
// until reset.
func rateLimitHeaders(h http.Header, now time.Time, in, out int, exhausted bool, reset time.Duration) {
	at := now.Add(reset).UTC().Format(time.RFC3339)
	set := func(name string, limit, used int) {
		h.Set("Anthropic-Ratelimit-"+name+"-Limit", strconv.Itoa(limit))
		h.Set("Anthropic-Ratelimit-"+name+"-Remaining", strconv.Itoa(max(limit-used, 0)))
		h.Set("Anthropic-Ratelimit-"+name+"-Reset", at)
	}
	requests := 1
	if exhausted {
		requests = rateRequests
	}
	set("Requests", rateRequests, requests)
	set("Tokens", rateInputTokens+rateOutputTokens, in+out)
	set("Input-Tokens", rateInputTokens, in)
	set("Output-Tokens", rateOutputTokens, out)
}

// writeFailure writes an injected or directive-forced error.
func (s *Server) writeFailure(w http.ResponseWriter, st *state, status int, d *mock.Directives) {
	if status == http.StatusTooManyRequests {
		ra := d.RetryAfterOr(st.cfg.RetryAfter)
		w.Header().Set("Retry-After", mock.RetryAfterSeconds(ra))
		rateLimitHeaders(w.Header(), st.cfg.Now(), 0, 0, true, time.Duration(math.Ceil(ra.Seconds()))*time.Second)
	}
	s.writeError(w, status, errorType(status), errorMessage(status))
}
