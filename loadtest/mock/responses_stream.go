package mock

import (
	"net/http"
	"time"
)

// A streamed Responses answer is SSE with "event: TYPE" and "data: JSON"
// lines, each event carrying its type and a sequence_number from 0, and no
// [DONE]:
//
//	response.created, response.in_progress
//	reasoning (when on): output_item.added, [reasoning_summary_part.added,
//	    reasoning_summary_text.delta..., reasoning_summary_text.done,
//	    reasoning_summary_part.done], output_item.done
//	each function call: output_item.added, function_call_arguments.delta...,
//	    function_call_arguments.done, output_item.done
//	or the message: output_item.added, content_part.added,
//	    output_text.delta..., output_text.done, content_part.done,
//	    output_item.done
//	response.completed (response.incomplete when cut by max_output_tokens)
//
// A mid-stream error (the stream-error directive) replaces the event after
// the first delta with an "error" event and ends the stream; with
// stream-error=failed it is a response.failed event instead.

// respEventsBeforeFault is how many events a Responses stream sends before
// a reset or a mid-stream error: created, in_progress, output_item.added,
// content_part.added (or summary_part.added) and one delta.
const respEventsBeforeFault = 5

// msgResponsesFailed is the message of an injected mid-stream failure.
const msgResponsesFailed = "An error occurred while processing your request. You can retry your request, or contact us through our help center at help.openai.com if the error persists."

// eventWriter builds the events of one Responses stream and sends them on a
// Stream, numbering them.
type eventWriter struct {
	*Stream
	seq int
	buf *[]byte
}

// begin starts an event of typ: the caller appends its fields, each
// followed by a comma, then emits it.
func (ew *eventWriter) begin(typ string) []byte {
	b := append((*ew.buf)[:0], "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: {\"type\":\""...)
	b = append(b, typ...)
	return append(b, `",`...)
}

// emit ends the event with its sequence number and sends it with the
// tokens it carries; false means stop.
func (ew *eventWriter) emit(b []byte, tokens int) bool {
	b = append(b, `"sequence_number":`...)
	b = appendInt(b, int64(ew.seq))
	b = append(b, "}\n\n"...)
	*ew.buf = b
	if !ew.Send(b, tokens) {
		return false
	}
	ew.seq++
	return true
}

// item starts an event about output item id at index idx.
func (ew *eventWriter) item(typ, id string, idx int) []byte {
	b := ew.begin(typ)
	b = append(b, `"item_id":`...)
	b = appendString(b, id)
	b = append(b, `,"output_index":`...)
	b = appendInt(b, int64(idx))
	return append(b, ',')
}

func (s *Server) streamResponses(w http.ResponseWriter, r *http.Request, start time.Time, st *state, p *respPlan, reset bool, d *Directives) {
	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["Connection"] = hdrKeepAlive
	s.writeHead(w, start, http.StatusOK, p.prompt+p.tokens(), 0)

	ew := &eventWriter{Stream: s.core.Stream(w, r, d.tokensPerSec(st.cfg.TokensPerSec), p.prompt), buf: getBuf()}
	ew.Fault(respEventsBeforeFault, reset, d)
	defer putBuf(ew.buf)

	if s.responsesBody(ew, st, p) {
		typ := "response.completed"
		if p.incomplete {
			typ = "response.incomplete"
		}
		b := ew.begin(typ)
		b = append(b, `"response":`...)
		b = p.appendResponse(b, p.finalStatus(), true)
		ew.emit(append(b, ','), 0)
	}
	var errEvent []byte
	if d.StreamError {
		errEvent = p.appendFault(nil, ew.seq, d.StreamFailed)
	}
	ew.Finish(errEvent)
}

// appendFault appends the event of a mid-stream failure numbered seq: an
// error event, or with failed a response.failed event.
//
// The error event carries both the fields of the API reference's
// ResponseErrorEvent (type, code, message, param, sequence_number) and the
// nested "error" object the live API sends: the official SDKs raise an
// error on the nested object (openai-go and openai-python on any event with
// an "error" key, openai-node on an "error" event).
func (p *respPlan) appendFault(b []byte, seq int, failed bool) []byte {
	if failed {
		b = append(b, "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":"...)
		b = p.appendResponse(b, "failed", false)
	} else {
		b = append(b, "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":"...)
		b = appendString(b, msgResponsesFailed)
		b = append(b, `,"param":null,"error":{"type":"server_error","code":"server_error","message":`...)
		b = appendString(b, msgResponsesFailed)
		b = append(b, `,"param":null}`...)
	}
	b = append(b, `,"sequence_number":`...)
	b = appendInt(b, int64(seq))
	return append(b, "}\n\n"...)
}

// responsesBody sends the events up to the final one; false means stop.
func (s *Server) responsesBody(ew *eventWriter, st *state, p *respPlan) bool {
	chunk := st.cfg.ChunkTokens
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		b := ew.begin(typ)
		b = append(b, `"response":`...)
		b = p.appendResponse(b, "in_progress", false)
		if !ew.emit(append(b, ','), 0) {
			return false
		}
	}
	idx := 0
	if p.reasoning {
		if !respReasoningEvents(ew, p, idx, chunk) {
			return false
		}
		idx++
	}
	for i := range p.calls {
		if !respCallEvents(ew, p, i, idx, chunk) {
			return false
		}
		idx++
	}
	if p.msgID != "" {
		return respMessageEvents(ew, p, idx, chunk)
	}
	return true
}

func respItemEvent(ew *eventWriter, typ string, idx, tokens int, appendItem func([]byte) []byte) bool {
	b := ew.begin(typ)
	b = append(b, `"output_index":`...)
	b = appendInt(b, int64(idx))
	b = append(b, `,"item":`...)
	b = appendItem(b)
	return ew.emit(append(b, ','), tokens)
}

// respReasoningEvents sends the reasoning item. Its tokens are paced on the
// summary deltas, or (no summary) on its output_item.done: the time spent
// thinking.
func respReasoningEvents(ew *eventWriter, p *respPlan, idx, chunk int) bool {
	if !respItemEvent(ew, "response.output_item.added", idx, 0, func(b []byte) []byte { return p.appendReasoningItem(b, false) }) {
		return false
	}
	doneTokens := p.rsTokens
	if p.summaryOn {
		doneTokens = 0
		b := ew.item("response.reasoning_summary_part.added", p.rsID, idx)
		b = append(b, `"summary_index":0,"part":{"type":"summary_text","text":""},`...)
		if !ew.emit(b, 0) {
			return false
		}
		for i := 0; i < p.summary.n; i += chunk {
			j := min(i+chunk, p.summary.n)
			b = ew.item("response.reasoning_summary_text.delta", p.rsID, idx)
			b = append(b, `"summary_index":0,"delta":"`...)
			b = p.summary.appendRange(b, i, j)
			if !ew.emit(append(b, `",`...), j-i) {
				return false
			}
		}
		b = ew.item("response.reasoning_summary_text.done", p.rsID, idx)
		b = append(b, `"summary_index":0,"text":`...)
		b = p.summary.appendText(b)
		if !ew.emit(append(b, ','), 0) {
			return false
		}
		b = ew.item("response.reasoning_summary_part.done", p.rsID, idx)
		b = append(b, `"summary_index":0,"part":{"type":"summary_text","text":`...)
		b = p.summary.appendText(b)
		if !ew.emit(append(b, "},"...), 0) {
			return false
		}
	}
	return respItemEvent(ew, "response.output_item.done", idx, doneTokens, func(b []byte) []byte { return p.appendReasoningItem(b, true) })
}

// respCallEvents sends function call i; its name counts as a token on
// output_item.added, each piece of the arguments as one.
func respCallEvents(ew *eventWriter, p *respPlan, i, idx, chunk int) bool {
	c := &p.calls[i]
	id := p.callIDs[i]
	if !respItemEvent(ew, "response.output_item.added", idx, 1, func(b []byte) []byte { return p.appendCallItem(b, i, false) }) {
		return false
	}
	from := 0
	for k := 0; k < len(c.Frags); k += chunk {
		j := min(k+chunk, len(c.Frags))
		to := c.Frags[j-1]
		b := ew.item("response.function_call_arguments.delta", id, idx)
		b = append(b, `"delta":`...)
		b = appendString(b, c.Args[from:to])
		if !ew.emit(append(b, ','), j-k) {
			return false
		}
		from = to
	}
	b := ew.item("response.function_call_arguments.done", id, idx)
	b = append(b, `"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"arguments":`...)
	b = appendString(b, c.Args)
	if !ew.emit(append(b, ','), 0) {
		return false
	}
	return respItemEvent(ew, "response.output_item.done", idx, 0, func(b []byte) []byte { return p.appendCallItem(b, i, true) })
}

// respMessageEvents sends the message, its text in deltas of ChunkTokens.
func respMessageEvents(ew *eventWriter, p *respPlan, idx, chunk int) bool {
	if !respItemEvent(ew, "response.output_item.added", idx, 0, func(b []byte) []byte { return p.appendMessageItem(b, false) }) {
		return false
	}
	b := ew.item("response.content_part.added", p.msgID, idx)
	b = append(b, `"content_index":0,"part":`...)
	b = p.appendTextPart(b, false)
	if !ew.emit(append(b, ','), 0) {
		return false
	}
	for i := 0; i < p.text.n; i += chunk {
		j := min(i+chunk, p.text.n)
		b = ew.item("response.output_text.delta", p.msgID, idx)
		b = append(b, `"content_index":0,"delta":"`...)
		b = p.text.appendRange(b, i, j)
		if !ew.emit(append(b, `","logprobs":[],`...), j-i) {
			return false
		}
	}
	b = ew.item("response.output_text.done", p.msgID, idx)
	b = append(b, `"content_index":0,"text":`...)
	b = p.text.appendText(b)
	if !ew.emit(append(b, `,"logprobs":[],`...), 0) {
		return false
	}
	b = ew.item("response.content_part.done", p.msgID, idx)
	b = append(b, `"content_index":0,"part":`...)
	b = p.appendTextPart(b, true)
	if !ew.emit(append(b, ','), 0) {
		return false
	}
	return respItemEvent(ew, "response.output_item.done", idx, 0, func(b []byte) []byte { return p.appendMessageItem(b, true) })
}
