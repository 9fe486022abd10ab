package billing

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xroute/xroute/internal/store"
)

// A spool line is the JSON of a store.UsageRecord, as encoding/json writes
// it (and reads it back at replay), written by hand: Append runs on every
// paid request before its final byte, and reflection there cost an
// interface conversion, a walk of the struct's fields and a copy of the
// result per record. spoolline_test.go holds this encoder to
// encoding/json's output, field for field, so a field added to
// UsageRecord and not here fails the test rather than the replay.

// lineBufs are the buffers lines are encoded into, outside the spool's
// lock.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 768); return &b }}

// appendRecordJSON appends r as encoding/json would marshal it. ok is
// false for what encoding/json refuses (a time outside years 0-9999).
func appendRecordJSON(b []byte, r *store.UsageRecord) (_ []byte, ok bool) {
	if y := r.CreatedAt.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"RequestID":`...)
	b = appendJSONString(b, r.RequestID)
	b = append(b, `,"AccountID":`...)
	b = appendJSONString(b, r.AccountID)
	b = append(b, `,"KeyID":`...)
	b = appendJSONString(b, r.KeyID)
	b = append(b, `,"Model":`...)
	b = appendJSONString(b, r.Model)
	b = append(b, `,"Provider":`...)
	b = appendJSONString(b, r.Provider)
	b = append(b, `,"UpstreamModel":`...)
	b = appendJSONString(b, r.UpstreamModel)
	b = append(b, `,"Stream":`...)
	b = strconv.AppendBool(b, r.Stream)
	b = append(b, `,"PromptTokens":`...)
	b = strconv.AppendInt(b, int64(r.PromptTokens), 10)
	b = append(b, `,"CompletionTokens":`...)
	b = strconv.AppendInt(b, int64(r.CompletionTokens), 10)
	b = append(b, `,"CachedTokens":`...)
	b = strconv.AppendInt(b, int64(r.CachedTokens), 10)
	b = append(b, `,"CacheWriteTokens":`...)
	b = strconv.AppendInt(b, int64(r.CacheWriteTokens), 10)
	b = append(b, `,"Latency":`...)
	b = strconv.AppendInt(b, int64(r.Latency), 10)
	b = append(b, `,"TTFT":`...)
	b = strconv.AppendInt(b, int64(r.TTFT), 10)
	b = append(b, `,"Status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"Attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"ErrorCode":`...)
	b = appendJSONString(b, r.ErrorCode)
	b = append(b, `,"CreatedAt":"`...)
	b = r.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","CostNano":`...)
	b = strconv.AppendInt(b, r.CostNano, 10)
	b = append(b, `,"Estimated":`...)
	b = strconv.AppendBool(b, r.Estimated)
	b = append(b, `,"Deployment":`...)
	b = appendJSONString(b, r.Deployment)
	b = append(b, `,"Endpoint":`...)
	b = appendJSONString(b, r.Endpoint)
	b = append(b, `,"TraceID":`...)
	b = appendJSONString(b, r.TraceID)
	b = append(b, `,"CacheHit":`...)
	b = strconv.AppendBool(b, r.CacheHit)
	return append(b, '}'), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes it: HTML
// characters and U+2028/U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// marshalLine is the spool line of rec, newline included, in a pooled
// buffer the caller puts back (putLine) once written.
func marshalLine(rec *store.UsageRecord) (*[]byte, error) {
	p := lineBufs.Get().(*[]byte)
	b, ok := appendRecordJSON((*p)[:0], rec)
	if !ok {
		j, err := json.Marshal(*rec) // what it refuses, in its words (a copy: rec stays on the stack)
		if err != nil {
			lineBufs.Put(p)
			return nil, err
		}
		b = append(b[:0], j...)
	}
	*p = append(b, '\n')
	return p, nil
}

func putLine(p *[]byte) {
	if cap(*p) <= 64<<10 { // a rare huge record does not pin its buffer
		lineBufs.Put(p)
	}
}
