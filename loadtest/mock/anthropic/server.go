// Package anthropic is a mock Anthropic Messages upstream (POST /v1/messages):
// plain and streamed answers, tool use, usage with prompt-cache tokens, and
// errors in Anthropic's shape, with the knobs and "#mock:" directives of the
// OpenAI mock (package loadtest/mock).
//
// It checks requests the way the real API does where a translating gateway
// can get things wrong: the x-api-key (when configured) and
// anthropic-version headers, max_tokens, alternating user/assistant turns,
// non-empty text blocks, tool_result blocks that answer the tool_use blocks
// of the previous turn and come first in their turn, image sources, tools
// and tool_choice.
//
// Answers are deterministic and equal to the OpenAI mock's for the same
// conversation: the same text (mock.Token) and the same tool arguments
// (mock.ToolArguments). With tool_choice auto (or unset), a tool-using answer
// starts with a short text block before its tool_use blocks, as Claude
// usually does.
//
// Differences in the knobs: FailRate503 and the quota directive answer as
// Anthropic does, with 529 overloaded_error and 402 billing_error; a
// stream-error directive sends an `event: error` (overloaded_error) after
// the first content delta and ends the stream.
package anthropic

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// Config holds the knobs: those of the OpenAI mock (APIKey is the required
// x-api-key) plus prompt-cache accounting.
type Config struct {
	mock.Config
	// CacheReadTokens and CacheCreationTokens are prompt tokens reported as
	// read from / written to the prompt cache (cache_read_input_tokens,
	// cache_creation_input_tokens), capped so that they never exceed the
	// prompt; input_tokens is the rest.
	CacheReadTokens, CacheCreationTokens int
}

// RegisterFlags binds c to flags of fs (the OpenAI mock's plus the cache
// knobs).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.CacheReadTokens, "cache-read-tokens", c.CacheReadTokens, "prompt tokens reported as cache reads")
	fs.IntVar(&c.CacheCreationTokens, "cache-creation-tokens", c.CacheCreationTokens, "prompt tokens reported as cache writes")
}

func (c Config) normalized() Config {
	c.Config = c.Config.Normalized()
	c.CacheReadTokens = max(c.CacheReadTokens, 0)
	c.CacheCreationTokens = max(c.CacheCreationTokens, 0)
	return c
}

// state is an immutable snapshot of the configuration.
type state struct {
	cfg    Config
	models mock.ModelSet
}

// Server is the mock upstream; an http.Handler safe for concurrent use.
type Server struct {
	st   atomic.Pointer[state]
	mux  *http.ServeMux
	core *mock.Core
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	s := &Server{core: mock.NewCore()}
	s.SetConfig(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.handleMessages)
	mux.HandleFunc("/", s.handleNotFound)
	s.mux = mux
	return s
}

// SetConfig replaces the configuration; requests in flight keep theirs. The
// failure RNG is reseeded with cfg.Seed.
func (s *Server) SetConfig(cfg Config) {
	cfg = cfg.normalized()
	s.core.Reseed(cfg.Seed)
	s.st.Store(&state{cfg: cfg, models: mock.NewModelSet(cfg.Models)})
}

// Stats returns a snapshot of the counters; Chat counts POST /v1/messages.
func (s *Server) Stats() mock.Stats { return s.core.Stats() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.core.Begin()
	defer s.core.End()
	if key := s.st.Load().cfg.APIKey; key != "" {
		got := r.Header.Get("x-api-key")
		switch {
		case got == "":
			s.writeError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required")
			return
		case subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1:
			s.writeError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, http.StatusNotFound, "not_found_error", "Not Found")
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
		return "This request would exceed the rate limit for your organization of 100,000 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
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

// writeFailure writes an injected or directive-forced error.
func (s *Server) writeFailure(w http.ResponseWriter, st *state, status int, d *mock.Directives) {
	if status == http.StatusTooManyRequests {
		ra := st.cfg.RetryAfter
		if d.HasRetryAfter {
			ra = d.RetryAfter
		}
		h := w.Header()
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(ra.Seconds())), 10))
		h.Set("Anthropic-Ratelimit-Requests-Limit", "100000")
		h.Set("Anthropic-Ratelimit-Requests-Remaining", "0")
		h.Set("Anthropic-Ratelimit-Requests-Reset", time.Now().Add(ra).UTC().Format(time.RFC3339))
	}
	s.writeError(w, status, errorType(status), errorMessage(status))
}
