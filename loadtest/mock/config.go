// Package mock is a mock OpenAI-compatible upstream, with knobs for latency,
// speed, injected failures and connection resets. It is the upstream for
// xroute's tests, the demo and the benchmarks. Its routes:
//
//	POST /v1/chat/completions  Chat Completions: plain, streamed, tool calls,
//	                           JSON mode (response_format)
//	POST /v1/responses         the Responses API: plain, streamed (typed
//	                           events), function tools, reasoning items,
//	                           structured outputs (text.format)
//	POST /v1/completions       legacy Completions: prompts, n, echo, stop,
//	                           logprobs, streamed
//	POST /v1/embeddings        embeddings (float or base64)
//	GET  /v1/models[/{id}]     the served models
//
// Replies are deterministic: the same request gets the same answer, and the
// three text APIs answer the same text to the same last user message. A
// "token" is a word of the generated text, or a piece of about 4 bytes of
// tool-call arguments or of a JSON answer (plus 1 per call for its name).
// JSON mode answers a value of the request's JSON schema (see JSONValue), or
// for json_object {"text": <the generated text>}; as OpenAI does, a
// json_object request must mention "json" in its messages. A Responses
// request reasons when it sets reasoning.effort (other than "none") or names
// an o1/o3/o4/gpt-5 model: a reasoning item of 4 (minimal) to 128 (max)
// tokens, 16 by default, comes first, with a summary when reasoning.summary
// is set and encrypted_content when include asks for it. The mock keeps no
// conversation state: previous_response_id is answered 400 previous_response_not_found.
//
// # Prompt caching
//
// Chat completions and the Responses API cache prompts automatically, as
// OpenAI documents it: a prompt of 1024 tokens or more is cached by its
// prefixes of 1024 tokens and every 128 tokens more, and a later request
// whose prompt starts with a cached prefix reports the longest one as
// usage.prompt_tokens_details.cached_tokens (Responses:
// usage.input_tokens_details.cached_tokens), streams included. Entries are
// per API key, model and prompt_cache_key (a request with another key
// never reads them; the tool definitions lead the prefix, so other tools
// are another prefix), and live 5 minutes from their last use
// (prompt_cache_retention "24h": 24 hours); Config.Clock is their clock.
// Token counting is the mock's deterministic estimate (words plus framing),
// hashed in the same order, so a test can predict every count.
//
// # Directives
//
// A request can force its own behaviour, for tests that go through a gateway.
// Directives are read from the last user message of a chat or Responses
// request (or from the string inputs of an embeddings request, or the
// prompts of a completion) as "#mock:ITEMS", running to the next
// whitespace, and from the header "X-Mock-Directive: ITEMS". ITEMS are
// separated by ';' or ','; message directives apply after header ones:
//
//	status=NNN        answer with that error status (400..599) in OpenAI's shape
//	quota             429 insufficient_quota with x-should-retry: false
//	retry-after=DUR   Retry-After/retry-after-ms of a 429 (Go duration or seconds)
//	latency=DUR       replaces Config.Latency (Go duration or milliseconds)
//	tokens=N          completion length in tokens (still capped by max tokens)
//	reset             streams: cut the connection after 2 chunks (Responses:
//	                  after 5 events, the first text delta);
//	                  non-streams: close the connection without a response
//	stream-error      streams: after 2 chunks send data: {"error":...} and end
//	                  the stream without [DONE]; Responses streams: after 5
//	                  events send an "error" event (with both the reference's
//	                  top-level code/message/param and the nested "error"
//	                  object the live API sends, on which the SDKs raise)
//	stream-error=failed  Responses streams: a response.failed event (status
//	                  failed, error.code server_error) instead
//	stall[=N]         streams: send N events (default 0: the headers only),
//	                  then nothing, holding the connection open until the
//	                  client leaves (a hung upstream); non-streams: no answer
//	malformed         streams: at the fault point (as stream-error) send an
//	                  event whose data is cut off mid-JSON, and end there
//	call=NAME         call only the tool NAME (when offered), in every
//	                  format: scripted agent tests drive a real client's
//	                  tool round trip
//	arg.KEY=VALUE     that call's arguments are exactly the arg.* given, as
//	                  strings (URL-escaped: %20 for a space), e.g. "#mock:call=exec_command
//	                  #mock:arg.cmd=cat%20hello.txt"
//	only=NAME         the faults above apply only on the mock whose
//	                  Config.Name (-name) is NAME; others answer normally:
//	                  "#mock:status=503;only=mock-primary" fails one
//	                  deployment of a model and not the other
//	usage=MODE        chat and Responses answers: "omit" sends no usage (no
//	                  usage object; streams no usage chunk even when asked),
//	                  "negative", "huge" or "text" a broken one (prompt
//	                  tokens -1e9 or 1e12, or counts as strings)
//
// Examples: "hi #mock:status=429", "#mock:latency=150ms;tokens=5 hello",
// "X-Mock-Directive: status=503". A malformed directive is a 400.
//
// # Other wire formats
//
// The mocks of other wire formats (the subpackages anthropic, gemini,
// bedrock and azure) keep only their wire format and share the rest with
// this one: Config and its flags, Core (Stats counters, the failure RNG,
// latency, connection cuts, ids), Stream and Pacer (paced streams that
// fail on purpose), Directives, Serve and Command (the command line), and
// the deterministic answers of export.go.
package mock

import (
	"flag"
	"strings"
	"time"
)

// Defaults applied by New and SetConfig when a field is zero.
const (
	DefaultChunkTokens      = 1
	DefaultCompletionTokens = 16
	DefaultAddr             = "127.0.0.1:9001"
)

// Config holds the knobs of a Server. The zero value is a fast, failure-free
// upstream that accepts any model and any (or no) API key.
type Config struct {
	// Name tells this mock from others in one setup: directives with
	// only=NAME fail this mock alone (the demo's mock-primary and
	// mock-backup).
	Name string
	// Latency is added before the response headers (for non-streams, before
	// the body). It is also applied to injected errors.
	Latency time.Duration
	// TokensPerSec paces streams; 0 sends as fast as possible.
	TokensPerSec float64
	// ChunkTokens is the number of tokens per stream chunk (default 1).
	ChunkTokens int
	// CompletionTokens is the answer length in tokens when the request sets
	// no max_completion_tokens/max_tokens below it (default 16).
	CompletionTokens int
	// Probabilities (0..1) that a chat or embeddings request fails with 429,
	// 500 or 503.
	FailRate429, FailRate500, FailRate503 float64
	// ResetRate is the probability that a stream is cut (connection closed
	// without the rest of the body) after two chunks.
	ResetRate float64
	// RetryAfter is sent on 429s as Retry-After (whole seconds, rounded up)
	// and retry-after-ms.
	RetryAfter time.Duration
	// Seed seeds the RNG that draws failures and resets.
	Seed int64
	// APIKey, when non-empty, is required as "Authorization: Bearer <APIKey>".
	APIKey string
	// Models are the served model ids; empty accepts any model id.
	Models []string
	// Clock is the clock of the simulated prompt cache's TTLs (chat and
	// Responses); nil is time.Now.
	Clock func() time.Time `json:"-"`
}

// Normalized returns c with the defaults applied (ChunkTokens,
// CompletionTokens), negative durations and speeds as 0, and its own copy
// of Models. New and SetConfig of every mock apply it.
func (c Config) Normalized() Config {
	if c.ChunkTokens <= 0 {
		c.ChunkTokens = DefaultChunkTokens
	}
	if c.CompletionTokens <= 0 {
		c.CompletionTokens = DefaultCompletionTokens
	}
	c.TokensPerSec = max(c.TokensPerSec, 0)
	c.Latency = max(c.Latency, 0)
	c.RetryAfter = max(c.RetryAfter, 0)
	c.Models = append([]string(nil), c.Models...)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// ModelSet is the set of served model ids (Config.Models); nil serves any
// model.
type ModelSet map[string]struct{}

// NewModelSet returns the set of ids, nil when there are none.
func NewModelSet(ids []string) ModelSet {
	if len(ids) == 0 {
		return nil
	}
	m := make(ModelSet, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

// Has reports whether id is served.
func (m ModelSet) Has(id string) bool {
	if m == nil {
		return true
	}
	_, ok := m[id]
	return ok
}

// RegisterFlags binds the fields of c to flags of fs. The current values of c
// are the defaults (ChunkTokens and CompletionTokens default to 1 and 16 when
// zero).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.ChunkTokens <= 0 {
		c.ChunkTokens = DefaultChunkTokens
	}
	if c.CompletionTokens <= 0 {
		c.CompletionTokens = DefaultCompletionTokens
	}
	fs.DurationVar(&c.Latency, "latency", c.Latency, "delay before the response headers")
	fs.Float64Var(&c.TokensPerSec, "tokens-per-sec", c.TokensPerSec, "stream speed in tokens per second (0 = as fast as possible)")
	fs.IntVar(&c.ChunkTokens, "chunk-tokens", c.ChunkTokens, "tokens per stream chunk")
	fs.IntVar(&c.CompletionTokens, "completion-tokens", c.CompletionTokens, "answer length in tokens when the request sets no lower max tokens")
	fs.Float64Var(&c.FailRate429, "fail-429", c.FailRate429, "probability of a 429 rate-limit error per request")
	fs.Float64Var(&c.FailRate500, "fail-500", c.FailRate500, "probability of a 500 server error per request")
	fs.Float64Var(&c.FailRate503, "fail-503", c.FailRate503, "probability of a 503 overloaded error per request")
	fs.Float64Var(&c.ResetRate, "reset-rate", c.ResetRate, "probability that a stream is cut mid-way")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After sent with 429s")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the failure RNG")
	fs.StringVar(&c.Name, "name", c.Name, "this mock's name, for only=NAME directives")
	fs.StringVar(&c.APIKey, "api-key", c.APIKey, "required bearer API key (empty = no auth)")
	fs.Func("models", "comma-separated served model ids (empty = any model)", func(v string) error {
		c.Models = c.Models[:0:0]
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				c.Models = append(c.Models, m)
			}
		}
		return nil
	})
}
