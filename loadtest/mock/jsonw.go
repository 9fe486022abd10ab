package mock

import (
	"strconv"
	"sync"

	"github.com/xroute/xroute/internal/jsontext"
)

// Responses are built by appending to byte slices: the shapes are fixed and
// small, and the mock is the baseline in benchmarks, so it avoids reflection
// on the hot path.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD and U+2028/U+2029 are escaped, like encoding/json.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends s escaped for the inside of a JSON string literal
// (see appendString), HTML characters as they are, as the providers write.
func appendEscaped(b []byte, s string) []byte { return jsontext.AppendEscaped(b, s) }

// appendNullableString appends s quoted, or null when s is empty.
func appendNullableString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// appendErrorBody appends OpenAI's error envelope:
// {"error":{"message":...,"type":...,"param":...,"code":...}}; empty param or
// code become null.
func appendErrorBody(b []byte, message, typ, param, code string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = appendString(b, message)
	b = append(b, `,"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"param":`...)
	b = appendNullableString(b, param)
	b = append(b, `,"code":`...)
	b = appendNullableString(b, code)
	return append(b, "}}"...)
}

// appendUsage appends the usage object of chat completions.
func appendUsage(b []byte, prompt, cached, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = appendInt(b, int64(prompt))
	b = append(b, `,"completion_tokens":`...)
	b = appendInt(b, int64(completion))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(prompt+completion))
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
	b = appendInt(b, int64(cached))
	b = append(b, `,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`...)
	return b
}

// Broken usage counts of the usage= directive.
const (
	negativeTokens = -1_000_000_000
	hugeTokens     = 1_000_000_000_000
)

// appendUsageAs appends the usage object of chat completions as the
// usage= directive shapes it ("": the real counts; "omit" is the caller's).
func appendUsageAs(b []byte, mode string, prompt, cached, completion int) []byte {
	switch mode {
	case "negative":
		return appendUsage(b, negativeTokens, 0, completion)
	case "huge":
		return appendUsage(b, hugeTokens, 0, completion)
	case "text":
		return append(b, `{"prompt_tokens":"lots","completion_tokens":"many","total_tokens":"all"}`...)
	}
	return appendUsage(b, prompt, cached, completion)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(p *[]byte) {
	if cap(*p) > 1<<20 {
		return
	}
	*p = (*p)[:0]
	bufPool.Put(p)
}
