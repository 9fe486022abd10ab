package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
	"github.com/xroute/xroute/router"
)

// apiError is OpenAI's error object. Param and Code are null when unset, as
// OpenAI sends them; every SDK can parse this shape.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
	// RetryAfter, when set, becomes Retry-After and retry-after-ms headers.
	RetryAfter time.Duration `json:"-"`
	// NoRetry sends x-should-retry: false (permanent refusals).
	NoRetry bool `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

// codeOr is the error's code, else its type.
func (e *apiError) codeOr() string {
	if code, ok := e.Code.(string); ok && code != "" {
		return code
	}
	return e.Type
}

func newError(status int, typ, code, message string) *apiError {
	e := &apiError{Status: status, Type: typ, Message: message}
	if code != "" {
		e.Code = code
	}
	return e
}

func (e *apiError) withParam(p string) *apiError {
	if p != "" {
		e.Param = p
	}
	return e
}

// writeError sends an OpenAI-shaped error with the right status and headers.
func writeError(c *gin.Context, e *apiError) {
	h := c.Writer.Header()
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
		h.Set("retry-after-ms", strconv.FormatInt(e.RetryAfter.Milliseconds(), 10))
	}
	if e.NoRetry {
		h.Set("x-should-retry", "false")
	}
	info := infoOf(c)
	if info != nil && info.reqBody != nil {
		info.reqBody.refuse(h)
	}
	if info != nil {
		info.status = e.Status
		if code, ok := e.Code.(string); ok {
			info.errCode = code
		} else {
			info.errCode = e.Type
		}
		info.errMsg = e.Message
	}
	if info != nil && info.anthropic {
		status, body := anthropicError(e)
		info.status = status
		c.Data(status, "application/json", body)
		c.Abort()
		return
	}
	body, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{e})
	c.Data(e.Status, "application/json", body)
	c.Abort()
}

// anthropicError renders e in Anthropic's shape,
// {"type":"error","error":{"type","message"}}, with the status Anthropic
// uses for that type, so that the Anthropic SDKs raise their typed errors
// and Claude Code retries as it does against Anthropic (429, 529).
func anthropicError(e *apiError) (int, []byte) {
	status, typ := e.Status, "api_error"
	code, _ := e.Code.(string)
	switch {
	case code == "insufficient_quota" || code == "budget_exceeded" || code == "upstream_quota_exceeded":
		status, typ = http.StatusPaymentRequired, "billing_error"
	case status == http.StatusBadRequest, status == http.StatusMethodNotAllowed, status == http.StatusUnprocessableEntity:
		typ = "invalid_request_error"
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status == http.StatusPaymentRequired:
		typ = "billing_error"
	case status == http.StatusForbidden:
		typ = "permission_error"
	case status == http.StatusNotFound:
		typ = "not_found_error"
	case status == http.StatusRequestEntityTooLarge:
		typ = "request_too_large"
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status == http.StatusServiceUnavailable || status == 529:
		status, typ = 529, "overloaded_error"
	case status == http.StatusGatewayTimeout:
		typ = "timeout_error"
	}
	body, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": e.Message}})
	return status, body
}

// upstreamError maps a routing failure to what the caller sees. Upstream
// messages pass through only for errors about the caller's request; for
// everything else xroute speaks for itself, so that a provider's words
// (which may name its account or key) never reach the caller.
func upstreamError(err error) *apiError {
	var pe *providers.Error
	var ce *router.CapabilityError
	var re *providers.RequestError
	switch {
	case errors.As(err, &ce):
		return newError(http.StatusBadRequest, "invalid_request_error", "unsupported_by_model", ce.Error())
	case errors.As(err, &re):
		// The deployment's adapter could not express the request.
		return newError(http.StatusBadRequest, "invalid_request_error", "unsupported_by_model", re.Message).withParam(re.Param)
	case errors.Is(err, providers.ErrStalled):
		msg := "The upstream provider went silent."
		if errors.As(err, &pe) {
			msg = "The upstream provider went silent: " + pe.Message + "."
		}
		return newError(http.StatusGatewayTimeout, "timeout", "upstream_stalled", msg)
	case errors.Is(err, providers.ErrMalformed), errors.Is(err, sse.ErrLineTooLong):
		// It answered, so it is neither unreachable nor overloaded.
		return newError(http.StatusBadGateway, "server_error", "upstream_malformed", "The upstream provider sent a malformed answer.")
	case errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusGatewayTimeout, "timeout", "upstream_timeout", "The upstream provider did not answer in time.")
	case errors.Is(err, router.ErrNoDeployment):
		return newError(http.StatusServiceUnavailable, "server_error", "no_healthy_deployment", "No healthy deployment can serve this model right now. Please retry later.")
	case !errors.As(err, &pe):
		return newError(http.StatusBadGateway, "server_error", "upstream_error", "The upstream provider failed.")
	}
	switch s := pe.Status; {
	case s == 0 && pe.Timeout():
		return newError(http.StatusGatewayTimeout, "timeout", "upstream_timeout", "The upstream provider did not answer in time.")
	case s == 0 && pe.MidStream && pe.Err == nil:
		// An error event of the upstream's own, with no status.
		return newError(http.StatusBadGateway, "server_error", "upstream_error", "The upstream provider failed while streaming.")
	case s == 0 && pe.MidStream:
		return newError(http.StatusBadGateway, "server_error", "upstream_disconnected", "The upstream provider closed the stream before it finished.")
	case s == 0:
		return newError(http.StatusBadGateway, "server_error", "upstream_unreachable", "The upstream provider could not be reached.")
	case pe.KeyRejected():
		return newError(http.StatusBadGateway, "server_error", "upstream_auth_failed", "The upstream provider rejected the gateway's credentials.")
	case s == http.StatusForbidden:
		// The upstream refused this request (a model or a region the
		// account may not use), not the gateway's key: the caller is told
		// why, in the upstream's words (redacted by the router).
		return newError(http.StatusForbidden, "permission_error", "upstream_permission_denied", "The upstream provider refused this request: "+pe.Message).withParam(pe.Param)
	case s == http.StatusTooManyRequests:
		e := newError(http.StatusTooManyRequests, "rate_limit_error", "upstream_rate_limited", "The upstream provider is rate limiting requests. Please retry later.")
		e.RetryAfter = pe.RetryAfter
		if pe.Code == "insufficient_quota" {
			e.Code, e.NoRetry = "upstream_quota_exceeded", true
			e.Message = "The upstream provider's quota is exhausted."
		}
		return e
	case s >= 400 && s < 500:
		typ := pe.Type
		if typ == "" {
			typ = "invalid_request_error"
		}
		return newError(s, typ, pe.Code, pe.Message).withParam(pe.Param)
	case s == http.StatusGatewayTimeout:
		return newError(http.StatusGatewayTimeout, "timeout", "upstream_timeout", "The upstream provider timed out.")
	case s == http.StatusServiceUnavailable || s == 529 || s == http.StatusBadGateway:
		e := newError(http.StatusServiceUnavailable, "server_error", "upstream_unavailable", "The upstream provider is overloaded or unavailable. Please retry later.")
		e.RetryAfter = pe.RetryAfter
		return e
	default:
		return newError(http.StatusBadGateway, "server_error", "upstream_error", "The upstream provider failed.")
	}
}

// ErrShutdown is the cause with which the server's base context is
// canceled when its shutdown deadline passes: the requests still running
// are cut by the server, and are answered and recorded so (503
// server_shutdown), not as callers that went away.
var ErrShutdown = errors.New("server shut down")

// cutByShutdown reports whether c's request was cut by the shutdown.
func cutByShutdown(c *gin.Context) bool {
	return errors.Is(context.Cause(c.Request.Context()), ErrShutdown)
}

func errShutdown() *apiError {
	e := newError(http.StatusServiceUnavailable, "server_error", "server_shutdown", "The gateway shut down before the request finished. Please retry.")
	e.RetryAfter = time.Second
	return e
}

// streamErrorEvent is the SSE event sent when a stream breaks after it
// started: `error` is the first key, as go-openai expects.
func streamErrorEvent(e *apiError) []byte {
	body, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{e})
	out := make([]byte, 0, len(body)+8)
	out = append(out, "data: "...)
	out = append(out, body...)
	return append(out, "\n\n"...)
}
