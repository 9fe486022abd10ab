package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a failed upstream call. Status is the upstream's HTTP status, or
// 0 when no answer came (connect error, reset, timeout). The router branches
// on Retryable; httpapi maps it to the caller's status.
type Error struct {
	Provider string
	Status   int
	// Type, Code, Param and Message come from the upstream's error body,
	// translated to OpenAI's vocabulary by the adapter.
	Type, Code, Param, Message string
	// RetryAfter is the upstream's Retry-After, when it sent one.
	RetryAfter time.Duration
	// MidStream is true when the failure came after the stream started.
	MidStream bool
	// Err is the transport cause, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.Status != 0 {
		b.WriteString(": status ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether another deployment might succeed where this one
// failed: no answer at all, timeouts, 408, 409, 429, 5xx and 529.
func (e *Error) Retryable() bool {
	if e.Status == 0 {
		return !errors.Is(e.Err, context.Canceled)
	}
	switch {
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusConflict,
		e.Status == http.StatusTooManyRequests, e.Status >= 500:
		return true
	}
	return false
}

// Timeout reports whether the upstream did not answer in time.
func (e *Error) Timeout() bool {
	if e.Status == http.StatusGatewayTimeout || e.Status == http.StatusRequestTimeout {
		return true
	}
	return errors.Is(e.Err, context.DeadlineExceeded)
}

// TransportError wraps a failure to get any answer from the upstream.
func TransportError(provider string, err error) *Error {
	return &Error{Provider: provider, Err: err, Message: "upstream request failed"}
}

// ParseRetryAfter reads retry-after-ms (float milliseconds) or Retry-After
// (seconds or an HTTP date), as the OpenAI SDKs do.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// ErrMalformed marks an upstream answer or stream event the adapter could
// not parse (not JSON, not the wire format's shape): the upstream answered,
// so it is neither unreachable nor overloaded. Match it with errors.Is.
var ErrMalformed = errors.New("malformed upstream answer")

// Malformed is the error of an answer (midStream false: a 502) or a stream
// event (midStream true) the adapter cannot make sense of; msg says what,
// cause why.
func Malformed(provider string, midStream bool, msg string, cause error) *Error {
	e := &Error{Provider: provider, MidStream: midStream, Message: msg, Err: ErrMalformed}
	if !midStream {
		e.Status = http.StatusBadGateway
	}
	if cause != nil {
		e.Err = fmt.Errorf("%w: %w", ErrMalformed, cause)
	}
	return e
}

// ErrStalled marks an upstream that sent nothing within a stream timeout
// (router.first_byte_timeout before its first chunk,
// router.stream_idle_timeout between chunks). It is a deadline: a stalled
// attempt fails over like a timeout when nothing reached the caller yet.
var ErrStalled = fmt.Errorf("upstream went silent: %w", context.DeadlineExceeded)

// ErrNoUsage is returned when a response carried no usage object.
var ErrNoUsage = errors.New("response carried no usage")

// StatusText gives a short reason for an upstream status without echoing
// the upstream's own words (which may name the provider key).
func StatusText(status int) string {
	return fmt.Sprintf("upstream answered %d %s", status, http.StatusText(status))
}

// KeyRejected reports whether the upstream refused the credential itself:
// a 401, or an error naming the key invalid (Gemini answers 400
// API_KEY_INVALID, Bedrock 403 UnrecognizedClientException). A 403 for a
// model, a feature or a region the account may not use is about the
// request, not the key: another request with the same key may succeed.
func (e *Error) KeyRejected() bool {
	return e.Status == http.StatusUnauthorized || e.Code == "invalid_api_key"
}

// Redacted returns e with every text the upstream wrote (Message, Type,
// Code, Param, the transport cause's text) passed through redact, or e
// itself when nothing changed. The cause stays reachable with errors.Is
// and errors.As; only its text is replaced.
func (e *Error) Redacted(redact func(string) string) *Error {
	c := *e
	c.Message, c.Type, c.Code, c.Param = redact(e.Message), redact(e.Type), redact(e.Code), redact(e.Param)
	changed := c.Message != e.Message || c.Type != e.Type || c.Code != e.Code || c.Param != e.Param
	if e.Err != nil {
		if msg := e.Err.Error(); redact(msg) != msg {
			c.Err, changed = &redactedCause{msg: redact(msg), cause: e.Err}, true
		}
	}
	if !changed {
		return e
	}
	return &c
}

// redactedCause is a transport error whose text was redacted.
type redactedCause struct {
	msg   string
	cause error
}

func (e *redactedCause) Error() string { return e.msg }
func (e *redactedCause) Unwrap() error { return e.cause }
