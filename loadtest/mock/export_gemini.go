package mock

import "time"

// The declarations below let mocks of other wire formats (the Gemini mock in
// loadtest/mock/gemini first) honour the same "#mock:" directives and
// X-Mock-Directive header as this mock, with the same parser, and derive
// seeds and embedding vectors the same way.

// RequestDirectives are the directives of one request; see the package doc
// for their meaning. The zero value means "no directive".
type RequestDirectives struct {
	Status        int // forced error status (400..599), 0 = none
	Quota         bool
	Reset         bool
	StreamError   bool
	Tokens        int // forced completion length, 0 = none
	Latency       time.Duration
	HasLatency    bool
	RetryAfter    time.Duration
	HasRetryAfter bool
}

// ReadDirectives parses the X-Mock-Directive header value (may be empty),
// then every "#mock:" occurrence in text (the last user message, or an
// embeddings input); text directives apply after header ones. The error is
// non-nil when either is malformed (the mocks answer 400).
func ReadDirectives(header, text string) (RequestDirectives, error) {
	var d directives
	if header != "" {
		if err := d.parse(header); err != nil {
			return RequestDirectives{}, err
		}
	}
	if err := d.scan(text); err != nil {
		return RequestDirectives{}, err
	}
	return RequestDirectives{
		Status: d.status, Quota: d.quota, Reset: d.reset, StreamError: d.streamError,
		Tokens: d.tokens, Latency: d.latency, HasLatency: d.hasLatency,
		RetryAfter: d.retryAfter, HasRetryAfter: d.hasRetryAfter,
	}, nil
}

// MixSeed is the seed mixer (splitmix64's finalizer) this mock uses to
// derive seeds, e.g. a tool's arguments seed MixSeed(Seed(text)^Seed(name)).
func MixSeed(x uint64) uint64 { return mix(x) }

// UnitVector fills v with the deterministic unit vector of seed, as this
// mock's embeddings do (seed = Seed(input text)).
func UnitVector(v []float32, seed uint64) { vector(v, seed) }
