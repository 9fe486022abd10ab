package gemini

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/xroute/xroute/providers"
)

// statusByCode is the HTTP status of each google.rpc.Code name, used when a
// stream breaks after the 200 (the error event has no HTTP status).
var statusByCode = map[string]int{
	"CANCELLED":           499,
	"UNKNOWN":             http.StatusInternalServerError,
	"INVALID_ARGUMENT":    http.StatusBadRequest,
	"DEADLINE_EXCEEDED":   http.StatusGatewayTimeout,
	"NOT_FOUND":           http.StatusNotFound,
	"ALREADY_EXISTS":      http.StatusConflict,
	"PERMISSION_DENIED":   http.StatusForbidden,
	"UNAUTHENTICATED":     http.StatusUnauthorized,
	"RESOURCE_EXHAUSTED":  http.StatusTooManyRequests,
	"FAILED_PRECONDITION": http.StatusBadRequest,
	"ABORTED":             http.StatusConflict,
	"OUT_OF_RANGE":        http.StatusBadRequest,
	"UNIMPLEMENTED":       http.StatusNotImplemented,
	"INTERNAL":            http.StatusInternalServerError,
	"UNAVAILABLE":         http.StatusServiceUnavailable,
	"DATA_LOSS":           http.StatusInternalServerError,
}

// googleKey matches a Google API key. Some Gemini errors quote the caller's
// key ("Consumer 'api_key:AIza...' has been suspended"); it must never reach
// a log or the caller.
var googleKey = regexp.MustCompile(`AIza[0-9A-Za-z_\-]{20,}`)

// scrub removes the provider key from an upstream message.
func scrub(msg, key string) string {
	if key != "" && strings.Contains(msg, key) {
		msg = strings.ReplaceAll(msg, key, "[redacted]")
	}
	if strings.Contains(msg, "AIza") {
		msg = googleKey.ReplaceAllString(msg, "[redacted]")
	}
	return msg
}

// upstreamError turns a non-200 answer into a typed error. Gemini's body
// is {"error":{"code","message","status","details"}} (streaming endpoints
// may wrap it in an array); anything else keeps the status and a generic
// message.
func upstreamError(name string, resp *http.Response, body []byte, key string, now time.Time) *providers.Error {
	var pe *providers.Error
	if e := parseErrorBody(body); e != nil {
		pe = translateError(name, resp.StatusCode, e, key)
	} else {
		pe = &providers.Error{Provider: name, Status: resp.StatusCode, Message: providers.StatusText(resp.StatusCode)}
	}
	if pe.RetryAfter == 0 {
		pe.RetryAfter = providers.ParseRetryAfter(resp.Header, now)
	}
	return pe
}

func parseErrorBody(body []byte) *apiError {
	body = bytes.TrimSpace(body)
	var env struct {
		Error *apiError `json:"error"`
	}
	if len(body) > 0 && body[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(body, &list) != nil || len(list) == 0 {
			return nil
		}
		body = list[0]
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return nil
	}
	return env.Error
}

// translateError maps a Gemini error to OpenAI's vocabulary. status is the
// HTTP status (0 for an error event inside a stream: the error's own code
// or status name decides then).
func translateError(name string, status int, e *apiError, key string) *providers.Error {
	if status == 0 {
		if e.Code >= 400 && e.Code < 600 {
			status = e.Code
		} else {
			status = statusByCode[e.Status]
		}
	}
	code := e.Status
	if code == "" {
		code = statusFromHTTP(status)
	}
	pe := &providers.Error{Provider: name, Status: status, Message: scrub(e.Message, key)}
	if pe.Message == "" {
		pe.Message = providers.StatusText(status)
	}
	reason, perDay := "", false
	for _, d := range e.Details {
		switch {
		case strings.HasSuffix(d.Type, "google.rpc.ErrorInfo"):
			reason = d.Reason
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
			pe.RetryAfter = parseDuration(d.RetryDelay)
		case strings.HasSuffix(d.Type, "google.rpc.QuotaFailure"):
			for _, v := range d.Violations {
				perDay = perDay || strings.Contains(v.QuotaID, "PerDay")
			}
		}
	}
	switch code {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		pe.Type = "invalid_request_error"
		if reason == "API_KEY_INVALID" {
			pe.Code = "invalid_api_key"
		}
	case "UNAUTHENTICATED":
		pe.Type, pe.Code = "invalid_request_error", "invalid_api_key"
	case "PERMISSION_DENIED":
		pe.Type = "permission_error"
	case "NOT_FOUND":
		pe.Type, pe.Code = "invalid_request_error", "model_not_found"
	case "RESOURCE_EXHAUSTED":
		// A per-day quota does not come back within a retry; the gateway
		// tells the caller not to retry (x-should-retry: false).
		if perDay {
			pe.Type, pe.Code = "insufficient_quota", "insufficient_quota"
		} else {
			pe.Type, pe.Code = "requests", "rate_limit_exceeded"
		}
	case "DEADLINE_EXCEEDED":
		pe.Type, pe.Code = "server_error", "timeout"
	default:
		if status >= 500 {
			pe.Type = "server_error"
		} else {
			pe.Type = "invalid_request_error"
		}
	}
	return pe
}

// statusFromHTTP names the google.rpc.Code of an error body without one.
func statusFromHTTP(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return ""
}

// parseDuration reads a google.protobuf.Duration in JSON form ("37s",
// "1.5s", "0.250s").
func parseDuration(s string) time.Duration {
	v, ok := strings.CutSuffix(strings.TrimSpace(s), "s")
	if !ok {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 86400 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
