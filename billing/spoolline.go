package billing

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/jsontext"
)

// A spool line is the JSON of a books.UsageRecord, as encoding/json writes
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
func appendRecordJSON(b []byte, r *books.UsageRecord) (_ []byte, ok bool) {
	if y := r.CreatedAt.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"RequestID":`...)
	b = jsontext.AppendString(b, r.RequestID)
	b = append(b, `,"AccountID":`...)
	b = jsontext.AppendString(b, r.AccountID)
	b = append(b, `,"KeyID":`...)
	b = jsontext.AppendString(b, r.KeyID)
	b = append(b, `,"Model":`...)
	b = jsontext.AppendString(b, r.Model)
	b = append(b, `,"Provider":`...)
	b = jsontext.AppendString(b, r.Provider)
	b = append(b, `,"UpstreamModel":`...)
	b = jsontext.AppendString(b, r.UpstreamModel)
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
	b = jsontext.AppendString(b, r.ErrorCode)
	b = append(b, `,"CreatedAt":"`...)
	b = r.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","CostNano":`...)
	b = strconv.AppendInt(b, r.CostNano, 10)
	b = append(b, `,"Estimated":`...)
	b = strconv.AppendBool(b, r.Estimated)
	b = append(b, `,"Deployment":`...)
	b = jsontext.AppendString(b, r.Deployment)
	b = append(b, `,"Endpoint":`...)
	b = jsontext.AppendString(b, r.Endpoint)
	b = append(b, `,"TraceID":`...)
	b = jsontext.AppendString(b, r.TraceID)
	b = append(b, `,"CacheHit":`...)
	b = strconv.AppendBool(b, r.CacheHit)
	b = append(b, `,"PromptCacheSavedNano":`...)
	b = strconv.AppendInt(b, r.PromptCacheSavedNano, 10)
	b = append(b, `,"ResponseCacheSavedNano":`...)
	b = strconv.AppendInt(b, r.ResponseCacheSavedNano, 10)
	return append(b, '}'), true
}

// marshalLine is the spool line of rec, newline included, in a pooled
// buffer the caller puts back (putLine) once written.
func marshalLine(rec *books.UsageRecord) (*[]byte, error) {
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
