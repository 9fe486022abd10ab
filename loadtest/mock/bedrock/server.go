// Package bedrock is a mock Amazon Bedrock runtime for the Converse API:
// POST /model/{modelId}/converse (JSON) and /model/{modelId}/converse-stream
// (AWS event-stream framing, application/vnd.amazon.eventstream), with tool
// use, usage with prompt-cache reads, and errors as Bedrock sends them
// (X-Amzn-ErrorType header, {"message"} body), plus the knobs and "#mock:"
// directives of the OpenAI mock (package loadtest/mock).
//
// # Authentication
//
// With AccessKeyID and SecretAccessKey set, every request must carry a valid
// SigV4 signature (service "bedrock", Config.Region): the mock checks the
// Authorization header's shape, the credential scope and X-Amz-Date, then
// recomputes the signature over the signed headers and the body with AWS's
// own signer, answering 403 InvalidSignatureException on a mismatch. With
// APIKey set, "Authorization: Bearer <APIKey>" (a Bedrock API key) is
// accepted too. With neither, any request is accepted.
//
// # Answers
//
// Answers are deterministic and equal to the OpenAI and Anthropic mocks'
// for the same conversation: the same text (mock.Token) and tool arguments
// (mock.ToolArguments). With toolChoice auto (or none given) a tool-using
// answer starts with a three-token text block, as Claude does; with two or
// more tools the first two are called. Stop sequences cut the text
// (stopReason stop_sequence); outputConfig.textFormat json_schema answers
// with a JSON document built from the schema.
//
// Requests are validated where a translating gateway can go wrong: unknown
// fields, turns that do not alternate or do not start with the user, blank
// text, content blocks with zero or several members, image formats and
// bytes, tool results without a matching tool use, tool blocks without
// toolConfig, tool names and schemas.
//
// # Prompt caching
//
// cachePoint blocks (in toolConfig.tools, system and message content) are
// breakpoints of the same simulated prompt cache as the Anthropic mock's
// (mock.Prefix, mock.PromptCache): per credential (the SigV4 access key id
// or the API key) and model, the prefix up to each cache point (tools,
// system, messages; up to 20 blocks of lookback), the model's minimum
// cacheable length (Config.CacheMinTokens replaces it), 5 minutes from the
// last use (a cachePoint "ttl":"1h": an hour). usage reports
// cacheReadInputTokens and cacheWriteInputTokens, and inputTokens the
// uncached rest. Config.CacheReadTokens, when set, replaces the simulation
// with that fixed read count.
//
// # Differences in the knobs
//
// Errors carry no Retry-After (Bedrock sends none). FailRate503 answers 503
// ServiceUnavailableException; the quota directive answers 400
// ServiceQuotaExceededException; stream-error sends a
// modelStreamErrorException event after two events and ends the stream.
package bedrock

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// DefaultRegion is the signing region checked when Config.Region is empty.
const DefaultRegion = "us-east-1"

// Config holds the knobs: those of the OpenAI mock (APIKey is accepted as a
// Bedrock API key; Models are the accepted model ids) plus SigV4
// credentials and prompt-cache accounting.
type Config struct {
	mock.Config
	// AccessKeyID and SecretAccessKey, when set, require SigV4-signed
	// requests with these credentials. SessionToken, when set, must come as
	// X-Amz-Security-Token.
	AccessKeyID, SecretAccessKey, SessionToken string
	// Region is the signing region requests must use (DefaultRegion).
	Region string
	// CacheReadTokens are prompt tokens reported as cacheReadInputTokens
	// (capped at the prompt); inputTokens is the rest.
	CacheReadTokens int
	// CacheMinTokens is the shortest prefix the simulated prompt cache
	// (cachePoint blocks) stores: 0 is the Claude model's documented
	// minimum (1024 to 4096), a negative value caches any prefix.
	CacheMinTokens int
	// Now is the clock for signature expiry and the prompt cache's TTLs
	// (time.Now).
	Now func() time.Time
}

// RegisterFlags binds c to flags of fs: the OpenAI mock's plus the AWS ones.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.AccessKeyID, "aws-access-key-id", c.AccessKeyID, "require SigV4 with this access key id")
	fs.StringVar(&c.SecretAccessKey, "aws-secret-access-key", c.SecretAccessKey, "secret of -aws-access-key-id")
	fs.StringVar(&c.Region, "region", c.Region, "signing region (default "+DefaultRegion+")")
	fs.IntVar(&c.CacheReadTokens, "cache-read-tokens", c.CacheReadTokens, "prompt tokens reported as cache reads (replaces the cachePoint simulation)")
	fs.IntVar(&c.CacheMinTokens, "cache-min-tokens", c.CacheMinTokens, "shortest prefix the simulated prompt cache stores (0: the model's documented minimum; -1: any)")
}

func (c Config) normalized() Config {
	c.Config = c.Config.Normalized()
	c.CacheReadTokens = max(c.CacheReadTokens, 0)
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

type state struct {
	cfg    Config
	models mock.ModelSet
}

// Server is the mock upstream; an http.Handler safe for concurrent use.
type Server struct {
	st    atomic.Pointer[state]
	mux   *http.ServeMux
	core  *mock.Core
	cache *mock.PromptCache // cachePoint prefixes
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	s := &Server{core: mock.NewCore(), cache: mock.NewPromptCache(1 << 14)}
	s.SetConfig(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /model/{modelId}/converse", s.handleConverse)
	mux.HandleFunc("POST /model/{modelId}/converse-stream", s.handleConverse)
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

// Stats returns a snapshot of the counters; Chat counts converse and
// converse-stream requests.
func (s *Server) Stats() mock.Stats { return s.core.Stats() }

// ServeHTTP implements http.Handler.
// Credentials are checked per request (SigV4 signs the body), in
// handleConverse, not at the door.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.core.Serve(w, r, "", nil, nil, s.mux)
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, http.StatusNotFound, "UnknownOperationException", "")
}

// The exceptions the mock answers with, by status (service model statuses).
var exceptionFor = map[int]string{
	http.StatusBadRequest:          "ValidationException",
	http.StatusUnauthorized:        "UnrecognizedClientException",
	http.StatusForbidden:           "AccessDeniedException",
	http.StatusNotFound:            "ResourceNotFoundException",
	http.StatusRequestTimeout:      "ModelTimeoutException",
	http.StatusFailedDependency:    "ModelErrorException",
	http.StatusTooManyRequests:     "ThrottlingException",
	http.StatusInternalServerError: "InternalServerException",
	http.StatusServiceUnavailable:  "ServiceUnavailableException",
}

var exceptionMessage = map[string]string{
	"ValidationException":           "mock: 400 forced by directive",
	"UnrecognizedClientException":   "The security token included in the request is invalid.",
	"AccessDeniedException":         "You don't have access to the model with the specified model ID.",
	"ResourceNotFoundException":     "Could not resolve the foundation model from the provided model identifier.",
	"ModelTimeoutException":         "Model has timed out in processing the request. Try your request again.",
	"ModelErrorException":           "The model returned an error. Try your request again.",
	"ThrottlingException":           "Too many requests, please wait before trying again.",
	"ServiceQuotaExceededException": "Your request exceeds the service quota for your account. You can view your quotas at Viewing service quotas. You can resubmit your request later.",
	"InternalServerException":       "The server encountered an error processing your request.",
	"ServiceUnavailableException":   "The service is unavailable. Try again later.",
	"UnknownOperationException":     "",
}

// writeError writes a Bedrock error: the type in X-Amzn-ErrorType (with the
// URI suffix the service adds) and {"message": ...} as the body.
func (s *Server) writeError(w http.ResponseWriter, status int, typ, message string) {
	s.core.Fail(status)
	if message == "" {
		message = exceptionMessage[typ]
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Errortype", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	h.Set("X-Amzn-Requestid", s.requestID())
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// failure writes an injected or directive-forced error.
func (s *Server) failure(w http.ResponseWriter, status int, quota bool) {
	if quota {
		s.writeError(w, http.StatusBadRequest, "ServiceQuotaExceededException", "")
		return
	}
	typ, ok := exceptionFor[status]
	switch {
	case ok:
		s.writeError(w, status, typ, "")
	case status >= 500:
		s.writeError(w, status, "InternalServerException", "mock: "+strconv.Itoa(status)+" "+http.StatusText(status)+" forced by directive")
	default:
		s.writeError(w, status, "ValidationException", "mock: "+strconv.Itoa(status)+" "+http.StatusText(status)+" forced by directive")
	}
}

// authorize checks the request's credentials; it reports false after
// writing the 403.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, cfg *Config, body []byte) bool {
	sigv4 := cfg.AccessKeyID != "" && cfg.SecretAccessKey != ""
	if !sigv4 && cfg.APIKey == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok && cfg.APIKey != "" {
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(cfg.APIKey)) == 1 {
			return true
		}
		s.writeError(w, http.StatusForbidden, "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix")
		return false
	}
	if !sigv4 || auth == "" {
		s.writeError(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return false
	}
	if typ, msg := verifySigV4(r, body, cfg); typ != "" {
		s.writeError(w, http.StatusForbidden, typ, msg)
		return false
	}
	return true
}

// requestID is a UUID-shaped x-amzn-RequestId.
func (s *Server) requestID() string {
	b := mock.AppendAlnum(nil, s.core.NextID(), 32)
	for i := range b {
		b[i] = "0123456789abcdef"[b[i]%16]
	}
	return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
}
