package mock

import (
	"context"
	"net/http"
	"time"
)

type outcome int

const (
	outcomeDone outcome = iota
	outcomeCanceled
	outcomeCut
	outcomeError
)

// eventsBeforeFault is how many data events a stream sends before a reset
// or a mid-stream error (the role chunk and one content chunk).
const eventsBeforeFault = 2

const midStreamError = "data: " + `{"error":{"message":"` + msg500 + `","type":"server_error","param":null,"code":null}}` + "\n\n"

// streamWriter writes the SSE events of one stream.
type streamWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	ctx       context.Context
	head      []byte // `data: {...,"choices":[`
	usageNull bool
	buf       *[]byte

	start    time.Time
	perToken time.Duration // 0: no pacing
	timer    *time.Timer

	events, sent int
	faultAfter   int // cut or error after this many events; 0 = never
	fault        outcome
	outcome      outcome
}

// begin starts a chunk with one choice; the caller appends the delta.
func (sw *streamWriter) begin() []byte {
	b := append((*sw.buf)[:0], sw.head...)
	return append(b, `{"index":0,"delta":`...)
}

// end closes a chunk started by begin.
func (sw *streamWriter) end(b []byte, finish string) []byte {
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	b = appendNullableString(b, finish)
	b = append(b, "}]"...)
	if sw.usageNull {
		b = append(b, `,"usage":null`...)
	}
	return append(b, "}\n\n"...)
}

// pace waits until tokens more tokens are due; false when the client left.
func (sw *streamWriter) pace(tokens int) bool {
	if sw.perToken > 0 && tokens > 0 {
		d := time.Until(sw.start.Add(time.Duration(sw.sent+tokens) * sw.perToken))
		if d > 0 {
			if sw.timer == nil {
				sw.timer = time.NewTimer(d)
			} else {
				sw.timer.Reset(d)
			}
			select {
			case <-sw.timer.C:
				return true
			case <-sw.ctx.Done():
				return false
			}
		}
	}
	return sw.ctx.Err() == nil
}

// emit sends one event carrying tokens; false means stop (see sw.outcome).
func (sw *streamWriter) emit(b []byte, tokens int) bool {
	*sw.buf = b
	if !sw.pace(tokens) {
		sw.outcome = outcomeCanceled
		return false
	}
	_, err := sw.w.Write(b)
	if err == nil {
		err = sw.rc.Flush()
	}
	if err != nil {
		sw.outcome = outcomeCanceled
		return false
	}
	sw.events++
	sw.sent += tokens
	if sw.faultAfter > 0 && sw.events >= sw.faultAfter {
		sw.outcome = sw.fault
		return false
	}
	return true
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, start time.Time, st *state, p *chatPlan, reset, streamErr bool) {
	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["Connection"] = hdrKeepAlive
	s.writeHead(w, start, http.StatusOK, p.prompt+p.tokens(), 0)
	s.stats.streams.Add(1)
	s.stats.promptTokens.Add(int64(p.prompt))

	id := s.newID("chatcmpl-")
	head := make([]byte, 0, 160+len(p.model))
	head = append(head, `data: {"id":`...)
	head = appendString(head, id)
	head = append(head, `,"object":"chat.completion.chunk","created":`...)
	head = appendInt(head, start.Unix())
	head = append(head, `,"model":`...)
	head = appendString(head, p.model)
	head = append(head, `,"service_tier":"default","system_fingerprint":"fp_mock","choices":[`...)

	sw := &streamWriter{
		w: w, rc: http.NewResponseController(w), ctx: r.Context(),
		head: head, usageNull: p.includeUsage, buf: getBuf(),
		start: time.Now(),
	}
	if tps := st.cfg.TokensPerSec; tps > 0 {
		sw.perToken = time.Duration(float64(time.Second) / tps)
	}
	switch {
	case reset:
		sw.faultAfter, sw.fault = eventsBeforeFault, outcomeCut
	case streamErr:
		sw.faultAfter, sw.fault = eventsBeforeFault, outcomeError
	}
	defer func() {
		if sw.timer != nil {
			sw.timer.Stop()
		}
		putBuf(sw.buf)
	}()

	if s.streamBody(sw, st, p) {
		b := append((*sw.buf)[:0], sw.head...)
		if p.includeUsage {
			b = append(b, `],"usage":`...)
			b = appendUsage(b, p.prompt, sw.sent)
			b = append(b, "}\n\n"...)
			b = append(b, "data: [DONE]\n\n"...)
		} else {
			b = append(b[:0], "data: [DONE]\n\n"...)
		}
		if sw.emit(b, 0) {
			sw.outcome = outcomeDone
		}
	}
	s.stats.completionTokens.Add(int64(sw.sent))
	switch sw.outcome {
	case outcomeDone:
		s.stats.completed.Add(1)
	case outcomeCanceled:
		s.stats.canceled.Add(1)
	case outcomeCut:
		s.cut(w)
	case outcomeError:
		if _, err := w.Write([]byte(midStreamError)); err == nil {
			_ = sw.rc.Flush()
		}
	}
}

// streamBody sends the role chunk, the content or tool-call chunks and the
// finish chunk; false when the stream must stop early.
func (s *Server) streamBody(sw *streamWriter, st *state, p *chatPlan) bool {
	chunk := st.cfg.ChunkTokens
	b := sw.begin()
	if len(p.calls) > 0 {
		b = append(b, `{"role":"assistant","content":null,"refusal":null}`...)
	} else {
		b = append(b, `{"role":"assistant","content":"","refusal":null}`...)
	}
	if !sw.emit(sw.end(b, ""), 0) {
		return false
	}

	if len(p.calls) == 0 {
		stop := p.finish == "stop"
		for i := 0; i < p.n; i += chunk {
			j := min(i+chunk, p.n)
			b = sw.begin()
			b = append(b, `{"content":"`...)
			for k := i; k < j; k++ {
				b = appendTokenRaw(b, p.seed, k, p.n, stop)
			}
			b = append(b, `"}`...)
			if !sw.emit(sw.end(b, ""), j-i) {
				return false
			}
		}
	} else {
		for ci := range p.calls {
			c := &p.calls[ci]
			b = sw.begin()
			b = append(b, `{"tool_calls":[{"index":`...)
			b = appendInt(b, int64(ci))
			b = append(b, `,"id":`...)
			b = appendString(b, c.id)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendString(b, c.name)
			b = append(b, `,"arguments":""}}]}`...)
			if !sw.emit(sw.end(b, ""), 1) {
				return false
			}
			from := 0
			for i := 0; i < len(c.frags); i += chunk {
				j := min(i+chunk, len(c.frags))
				to := c.frags[j-1]
				b = sw.begin()
				b = append(b, `{"tool_calls":[{"index":`...)
				b = appendInt(b, int64(ci))
				b = append(b, `,"function":{"arguments":`...)
				b = appendString(b, c.args[from:to])
				b = append(b, `}}]}`...)
				if !sw.emit(sw.end(b, ""), j-i) {
					return false
				}
				from = to
			}
		}
	}

	b = sw.begin()
	b = append(b, "{}"...)
	return sw.emit(sw.end(b, p.finish), 0)
}
