package mock

import "time"

// Exports for the mock Anthropic upstream (loadtest/mock/anthropic), so that
// it reads the same "#mock:" directives and draws the same tool-call
// arguments as this mock.

// Directives force the behaviour of one request (see the package doc for
// the syntax). The zero value forces nothing.
type Directives struct {
	Status        int  // error status to answer with (400..599), 0 = none
	Quota         bool // a permanent quota/billing failure
	Reset         bool // cut the connection
	StreamError   bool // streams: send an error event after two events
	Tokens        int  // completion length in tokens, 0 = the configured one
	Latency       time.Duration
	HasLatency    bool
	RetryAfter    time.Duration
	HasRetryAfter bool
}

// ErrDirective is returned for a malformed directive.
var ErrDirective = errDirective

// ParseDirectives applies a header-style spec ("status=429;latency=10ms"),
// then every "#mock:..." occurrence in text, as the OpenAI mock does. Either
// may be empty.
func ParseDirectives(header, text string) (Directives, error) {
	var d directives
	if header != "" {
		if err := d.parse(header); err != nil {
			return Directives{}, err
		}
	}
	if err := d.scan(text); err != nil {
		return Directives{}, err
	}
	return Directives{
		Status: d.status, Quota: d.quota, Reset: d.reset, StreamError: d.streamError,
		Tokens: d.tokens, Latency: d.latency, HasLatency: d.hasLatency,
		RetryAfter: d.retryAfter, HasRetryAfter: d.hasRetryAfter,
	}, nil
}

// Mix is the mixing function the mock derives seeds with (splitmix64's
// finalizer): Mix(Seed(text) ^ Seed(name)) seeds the arguments of a call of
// function name, as in the OpenAI mock.
func Mix(x uint64) uint64 { return mix(x) }
