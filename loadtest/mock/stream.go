package mock

import (
	"net/http"
	"time"
)

// eventsBeforeFault is how many data events a stream sends before a reset
// or a mid-stream error (the role chunk and one content chunk).
const eventsBeforeFault = 2

var midStreamError = []byte("data: " + `{"error":{"message":"` + msg500 + `","type":"server_error","param":null,"code":null}}` + "\n\n")

// chunkWriter builds the chat.completion.chunk events of one stream and
// sends them on a Stream.
type chunkWriter struct {
	*Stream
	head      []byte // `data: {...,"choices":[`
	usageNull bool
	buf       *[]byte
}

// begin starts a chunk with one choice; the caller appends the delta.
func (cw *chunkWriter) begin() []byte {
	b := append((*cw.buf)[:0], cw.head...)
	return append(b, `{"index":0,"delta":`...)
}

// end closes a chunk started by begin.
func (cw *chunkWriter) end(b []byte, finish string) []byte {
	return cw.endChoice(append(b, `,"logprobs":null`...), finish)
}

// endChoice closes a chunk whose choice is written up to its logprobs.
func (cw *chunkWriter) endChoice(b []byte, finish string) []byte {
	b = append(b, `,"finish_reason":`...)
	b = appendNullableString(b, finish)
	b = append(b, "}]"...)
	if cw.usageNull {
		b = append(b, `,"usage":null`...)
	}
	return append(b, "}\n\n"...)
}

// emit sends one event carrying tokens; false means stop.
func (cw *chunkWriter) emit(b []byte, tokens int) bool {
	*cw.buf = b
	return cw.Send(b, tokens)
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, start time.Time, st *state, p *chatPlan, reset bool, d *Directives) {
	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["Connection"] = hdrKeepAlive
	s.writeHead(w, start, http.StatusOK, p.prompt+p.tokens(), 0)

	id := s.newID("chatcmpl-")
	head := make([]byte, 0, 160+len(p.model))
	head = append(head, `data: {"id":`...)
	head = appendString(head, id)
	head = append(head, `,"object":"chat.completion.chunk","created":`...)
	head = appendInt(head, start.Unix())
	head = append(head, `,"model":`...)
	head = appendString(head, p.model)
	head = append(head, `,"service_tier":"default","system_fingerprint":"fp_mock","choices":[`...)

	cw := &chunkWriter{
		Stream: s.core.Stream(w, r, st.cfg.TokensPerSec, p.prompt),
		head:   head, usageNull: p.includeUsage, buf: getBuf(),
	}
	cw.Fault(eventsBeforeFault, reset, d)
	defer putBuf(cw.buf)

	if s.streamBody(cw, st, p) {
		b := append((*cw.buf)[:0], cw.head...)
		if p.includeUsage && p.usage != "omit" {
			b = append(b, `],"usage":`...)
			b = appendUsageAs(b, p.usage, p.prompt, p.cached, cw.Sent())
			b = append(b, "}\n\n"...)
			b = append(b, "data: [DONE]\n\n"...)
		} else {
			b = append(b[:0], "data: [DONE]\n\n"...)
		}
		cw.emit(b, 0)
	}
	cw.Finish(midStreamError)
}

func (s *Server) streamBody(sw *chunkWriter, st *state, p *chatPlan) bool {
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
		for i := 0; i < p.text.n; i += chunk {
			j := min(i+chunk, p.text.n)
			b = sw.begin()
			b = append(b, `{"content":"`...)
			b = p.text.appendRange(b, i, j)
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
			b = appendString(b, c.ID)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendString(b, c.Name)
			b = append(b, `,"arguments":""}}]}`...)
			if !sw.emit(sw.end(b, ""), 1) {
				return false
			}
			from := 0
			for i := 0; i < len(c.Frags); i += chunk {
				j := min(i+chunk, len(c.Frags))
				to := c.Frags[j-1]
				b = sw.begin()
				b = append(b, `{"tool_calls":[{"index":`...)
				b = appendInt(b, int64(ci))
				b = append(b, `,"function":{"arguments":`...)
				b = appendString(b, c.Args[from:to])
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
