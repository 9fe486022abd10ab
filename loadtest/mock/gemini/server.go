// Package gemini is a mock Google Gemini API upstream speaking the native
// format: generateContent, streamGenerateContent (alt=sse, or a JSON array
// without it), countTokens, batchEmbedContents, embedContent and the model
// list, with the knobs of the OpenAI mock (latency, speed, injected
// failures, resets, API key) and its "#mock:" directives (see package
// github.com/xroute/xroute/loadtest/mock).
//
// Answers are deterministic and use the OpenAI mock's generator, so the
// same prompt gets the same words from both. What the mock checks as
// Gemini does:
//
//   - the key in x-goog-api-key (or ?key=) when Config.APIKey is set:
//     missing → 403 PERMISSION_DENIED, wrong → 400 INVALID_ARGUMENT
//     (API_KEY_INVALID);
//   - the request body, strictly: unknown fields, empty contents or parts,
//     roles other than user/model, inlineData that is not base64, a
//     function response turn whose part count differs from the call turn's;
//   - thought signatures: every functionCall it returns carries a
//     thoughtSignature (the first call of a parallel set only, as Gemini 3
//     does); in the current turn (after the last user message with text)
//     the first functionCall of each model step must come back with its
//     signature, or the request fails with Gemini 3's 400; a signature that
//     is not the one issued for that function is "Corrupted". The
//     documented dummy values skip the check.
//
// Thinking: an answer thinks Config.ThoughtsTokens tokens (the model's
// default; 0 = none) unless generationConfig.thinkingConfig says otherwise:
// thinkingBudget 0 turns thinking off, a positive budget thinks min(budget,
// 64) tokens, -1 (dynamic) the default or 32; thinkingLevel minimal, low,
// medium and high think 4, 16, 32 and 64 tokens; includeThoughts alone
// thinks the default or 32. The tokens are usageMetadata.thoughtsTokenCount
// (in totalTokenCount, not in candidatesTokenCount); with includeThoughts
// the answer starts with a thought summary part ("thought": true), its own
// event in a stream.
//
// countTokens takes contents or a generateContentRequest (which wins when
// both are sent), validated as generateContent validates them (thought
// signatures aside), and answers {"totalTokens"} equal to the
// promptTokenCount generateContent reports for the same request, with
// cachedContentTokenCount when it names a cachedContent.
//
// Function calls are answered (finishReason STOP, as Gemini does) when the
// request declares functions, the mode is not NONE and the last turn is not
// a function response: the first declared function, or the first two in
// parallel. Streams send ChunkTokens tokens per event; the last event
// carries finishReason and the full usageMetadata; function calls arrive
// whole in one event.
package gemini

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/xroute/xroute/loadtest/mock"
)

// Config holds the knobs: those of the OpenAI mock (mock.Config; APIKey is
// required as x-goog-api-key) plus Gemini's token accounting extras.
type Config struct {
	mock.Config
	// ThoughtsTokens is the model's default thinking, reported as
	// usageMetadata.thoughtsTokenCount on every answer whose request does
	// not set a thinkingBudget or thinkingLevel; 0 reports none (see the
	// package doc for thinkingConfig).
	ThoughtsTokens int
	// ImplicitCacheMin simulates implicit caching: a prompt of at least
	// this many tokens (or any request naming a cachedContent) reports half
	// of its tokens as cachedContentTokenCount. 0 turns it off (except for
	// cachedContent).
	ImplicitCacheMin int
}

const (
	defaultEmbeddingDims = 8
	maxEmbeddingDims     = 3072
	maxBatchRequests     = 100
	imageTokens          = 258 // Gemini's token count of an image
)

// state is an immutable snapshot of the configuration.
type state struct {
	cfg    Config
	models mock.ModelSet
}

// Server is the mock upstream; it implements http.Handler and is safe for
// concurrent use.
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
	mux.HandleFunc("POST /{version}/models/{action}", s.handleModelAction)
	mux.HandleFunc("GET /{version}/models", s.handleModels)
	mux.HandleFunc("GET /{version}/models/{model}", s.handleModel)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
	})
	s.mux = mux
	return s
}

// SetConfig replaces the configuration and reseeds the failure RNG.
func (s *Server) SetConfig(cfg Config) {
	cfg.Config = cfg.Config.Normalized()
	s.core.Reseed(cfg.Seed)
	s.st.Store(&state{cfg: cfg, models: mock.NewModelSet(cfg.Models)})
}

// Stats returns a snapshot of the counters (Chat counts generateContent and
// streamGenerateContent requests).
func (s *Server) Stats() mock.Stats { return s.core.Stats() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.core.Serve(w, r, s.st.Load().cfg.APIKey, requestKey, s.refuseKey, s.mux)
}

// requestKey is the key a request carries: x-goog-api-key, else ?key=.
func requestKey(r *http.Request) string {
	if k := r.Header.Get("x-goog-api-key"); k != "" {
		return k
	}
	return r.URL.Query().Get("key")
}

func (s *Server) refuseKey(w http.ResponseWriter, missing bool) {
	if missing {
		s.writeError(w, http.StatusForbidden, "PERMISSION_DENIED",
			"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", nil)
		return
	}
	s.writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", []any{
		map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
			"metadata": map[string]string{"service": "generativelanguage.googleapis.com"}},
		map[string]any{"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."},
	})
}

func validVersion(v string) bool { return v == "v1" || v == "v1beta" || v == "v1alpha" }

func (s *Server) handleModelAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	model, method, ok := strings.Cut(action, ":")
	if !validVersion(r.PathValue("version")) || !ok || model == "" {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
		return
	}
	switch method {
	case "generateContent":
		s.handleGenerate(w, r, model, false)
	case "streamGenerateContent":
		s.handleGenerate(w, r, model, true)
	case "batchEmbedContents":
		s.handleEmbed(w, r, model, true)
	case "embedContent":
		s.handleEmbed(w, r, model, false)
	case "countTokens":
		s.handleCountTokens(w, r, model)
	default:
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
	}
}

func modelNotFound(model, method string) string {
	return "models/" + model + " is not found for API version v1beta, or is not supported for " + method +
		". Call ListModels to see the list of available models and their supported methods."
}

func modelObject(id string) map[string]any {
	return map[string]any{
		"name": "models/" + id, "version": "001", "displayName": id, "description": "xroute mock model",
		"inputTokenLimit": 1048576, "outputTokenLimit": 65536,
		"supportedGenerationMethods": []string{"generateContent", "countTokens", "embedContent", "batchEmbedContents"},
	}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if !validVersion(r.PathValue("version")) {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
		return
	}
	list := []map[string]any{}
	for _, m := range s.st.Load().cfg.Models {
		list = append(list, modelObject(m))
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"models": list})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validVersion(r.PathValue("version")) {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
		return
	}
	if !s.st.Load().models.Has(model) {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "models/"+model+" is not found for API version v1beta.", nil)
		return
	}
	s.writeJSON(w, http.StatusOK, modelObject(model))
}

// writeJSON writes a JSON answer with Google's headers.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"mock: encode","status":"INTERNAL"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Vary", "Origin, X-Origin, Referer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// statusName is the google.rpc.Code name Google uses for an HTTP status.
func statusName(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// errorBody is Gemini's error envelope.
func errorBody(status int, name, message string, details []any) map[string]any {
	e := map[string]any{"code": status, "message": message, "status": name}
	if len(details) > 0 {
		e["details"] = details
	}
	return map[string]any{"error": e}
}

// writeError writes {"error":{"code","message","status"[,"details"]}}.
func (s *Server) writeError(w http.ResponseWriter, status int, name, message string, details []any) {
	s.core.Fail(status)
	s.writeJSON(w, status, errorBody(status, name, message, details))
}

func (s *Server) badRequest(w http.ResponseWriter, message string) {
	s.writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", message, nil)
}

// Injected failures, in Gemini's words.
const (
	msgInternal    = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
	msgUnavailable = "The model is overloaded. Please try again later."
	msgDeadline    = "Deadline expired before operation could complete."
	msgQuota       = "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit."
)

// writeFailure writes an injected or directive-forced error.
func (s *Server) writeFailure(w http.ResponseWriter, cfg *Config, status int, d *mock.Directives, model string) {
	switch status {
	case http.StatusTooManyRequests:
		retry := d.RetryAfterOr(cfg.RetryAfter)
		quotaID, metric := "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "generativelanguage.googleapis.com/generate_content_free_tier_requests"
		msg := msgQuota + "\n* Quota exceeded for metric: " + metric + ", limit: 10, model: " + model
		if d.Quota {
			quotaID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
		} else if retry > 0 {
			msg += "\nPlease retry in " + strconv.FormatFloat(retry.Seconds(), 'f', -1, 64) + "s."
		}
		details := []any{
			map[string]any{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []any{map[string]any{
				"quotaMetric": metric, "quotaId": quotaID, "quotaValue": "10",
				"quotaDimensions": map[string]string{"location": "global", "model": model},
			}}},
			map[string]any{"@type": "type.googleapis.com/google.rpc.Help", "links": []any{map[string]string{
				"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
			}}},
		}
		if retry > 0 && !d.Quota {
			details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo",
				"retryDelay": strconv.FormatFloat(retry.Seconds(), 'f', -1, 64) + "s"})
		}
		s.writeError(w, status, "RESOURCE_EXHAUSTED", msg, details)
	case http.StatusInternalServerError:
		s.writeError(w, status, "INTERNAL", msgInternal, nil)
	case http.StatusServiceUnavailable:
		s.writeError(w, status, "UNAVAILABLE", msgUnavailable, nil)
	case http.StatusGatewayTimeout:
		s.writeError(w, status, "DEADLINE_EXCEEDED", msgDeadline, nil)
	default:
		s.writeError(w, status, statusName(status), "mock: "+strconv.Itoa(status)+" "+http.StatusText(status)+" forced by directive", nil)
	}
}

// responseID returns a Gemini-style response id.
func (s *Server) responseID() string {
	return string(mock.AppendAlnum(make([]byte, 0, 22), s.core.NextID(), 22))
}
