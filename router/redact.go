package router

import (
	"bytes"
	"errors"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// What leaves the router is clean: an upstream's words never carry a
// secret (its error text may quote the key it was sent, "Incorrect API
// key provided: sk-…"), and never invalid UTF-8. Errors are redacted as
// they come out of an attempt, so the failover loop, the caller's answer,
// the access log and the audit all see the same clean text; answers are
// made valid UTF-8 (a stream's chunks here, one pass and no copy when
// valid; a whole answer as providers.Send reads it), and only an
// upstream's own error event relayed natively is redacted, so that a
// successful stream's chunks are never searched for secrets.

// replacement is U+FFFD, which replaces invalid UTF-8.
var replacement = []byte("\uFFFD")

// scrub returns err with its upstream text redacted.
func (r *Router) scrub(err error) error {
	if err == nil || r == nil || r.redact == nil {
		return err
	}
	if pe, ok := err.(*providers.Error); ok {
		return pe.Redacted(r.redact.Redact)
	}
	var pe *providers.Error
	if errors.As(err, &pe) {
		// A wrapped upstream error: what httpapi reads is the
		// *providers.Error, so that is what must be clean.
		return pe.Redacted(r.redact.Redact)
	}
	if msg := err.Error(); r.redact.Redact(msg) != msg {
		return &redactedErr{msg: r.redact.Redact(msg), cause: err}
	}
	return err
}

type redactedErr struct {
	msg   string
	cause error
}

func (e *redactedErr) Error() string { return e.msg }
func (e *redactedErr) Unwrap() error { return e.cause }

// nativeErrorEvents are the events of a natively relayed stream that carry
// an upstream's error text: the Responses API's error and
// response.failed, the Messages API's error.
func nativeErrorEvent(name string) bool {
	return name == "error" || name == "response.failed"
}

// cleanChunk makes a chunk's bytes valid UTF-8 and redacts a native error
// event.
func (r *Router) cleanChunk(c providers.Chunk) providers.Chunk {
	if len(c.Data) == 0 {
		return c
	}
	if !utf8.Valid(c.Data) {
		c.Data = bytes.ToValidUTF8(c.Data, replacement)
	}
	if c.Native && nativeErrorEvent(c.Name) && r != nil && r.redact != nil {
		c.Data = r.redact.RedactBytes(c.Data)
	}
	return c
}

// cleanResponse redacts a non-streamed native body that reports an error
// (a Responses API response with status failed). Its UTF-8 was made valid
// as it was read (providers.Send).
func (r *Router) cleanResponse(resp *providers.ChatResponse) {
	if resp == nil || len(resp.Body) == 0 {
		return
	}
	if resp.Native && r.redact != nil && gjson.GetBytes(resp.Body, "error").IsObject() {
		resp.Body = r.redact.RedactBytes(resp.Body)
	}
}
