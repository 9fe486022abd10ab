package loadtest

import (
	"bytes"
	"io"
	"time"
)

// A Responses API stream (POST /v1/responses with "stream": true) is SSE
// with an "event: TYPE" and a "data: JSON" line per event, the JSON
// repeating the type and carrying a sequence_number, and no [DONE]:
//
//	response.created, response.in_progress,
//	then each output item: response.output_item.added, for a message
//	    response.content_part.added, response.output_text.delta…,
//	    response.output_text.done, response.content_part.done,
//	    then response.output_item.done,
//	response.completed (the whole response, with usage) last.
//
// Other items (reasoning, function calls) have events of their own, which
// the check lets pass between an item's added and done.

// respStage is how far a Responses stream has got.
type respStage uint8

const (
	stageStart    respStage = iota // nothing yet
	stageCreated                   // response.created
	stageRunning                   // response.in_progress: output items may follow
	stageFinished                  // response.completed, .incomplete or .failed
)

// partStage is where the open output item is, for a message.
type partStage uint8

const (
	partNone     partStage = iota // no item open
	partItem                      // a message's output_item.added
	partOpen                      // content_part.added: deltas may follow
	partTextDone                  // output_text.done (or refusal.done)
	partDone                      // content_part.done: another part, or output_item.done
	partOther                     // an item other than a message is open
)

// respState is a Responses stream's checking state.
type respState struct {
	on        bool // the stream is a Responses stream
	stage     respStage
	part      partStage
	last      []byte // type of the previous event, for Unexpected
	seq       int
	seqSeen   bool
	text      []byte // every delta's text
	partStart int    // where the open part's text begins in text
}

// ReadResponsesStream reads a Responses API SSE body to its end, filling
// res. start is when the request began (TTFT is measured from it, to the
// first non-empty response.output_text.delta) and now is the clock. It
// returns the first read error other than io.EOF; the stream's defects are
// in res (see StreamResult.Problem): events out of order, sequence numbers
// not increasing, the deltas' text differing from output_text.done's or
// the final response's, usage missing from response.completed or its
// output_tokens differing from the deltas' count.
func ReadResponsesStream(body io.Reader, start time.Time, now func() time.Time, check StreamCheck, res *StreamResult) error {
	res.resp.on = true
	return readEvents(body, now, func(sr *SSEReader, name, data []byte, at time.Time) {
		res.Events++
		if res.resp.stage == stageFinished {
			res.AfterDone = true
		}
		if !scanRespEvent(data, &sr.scan, &sr.resp) {
			res.BadJSON = true
			return
		}
		res.observeEvent(name, &sr.resp, at, start, check)
	})
}

// observeEvent checks one event against the stream so far.
func (r *StreamResult) observeEvent(name []byte, e *respEventFields, at, start time.Time, check StreamCheck) {
	st := &r.resp
	if len(e.Type) == 0 || !bytes.Equal(name, e.Type) {
		r.BadEvent = true
	}
	if !e.HasSeq || (st.seqSeen && e.Seq <= st.seq) {
		r.SeqWrong = true
	}
	if e.HasSeq {
		st.seq, st.seqSeen = e.Seq, true
	}
	if e.Resp && len(e.RespID) > 0 {
		if len(r.id) == 0 {
			r.id = append(r.id, e.RespID...)
		} else if !bytes.Equal(r.id, e.RespID) {
			r.IDChanged = true
		}
	}

	running := st.stage == stageRunning
	ok := true
	switch typ := string(e.Type); typ {
	case "response.created":
		ok = st.stage == stageStart
		st.stage = stageCreated
	case "response.in_progress":
		ok = st.stage == stageCreated
		st.stage = stageRunning
	case "response.output_item.added":
		ok = running && st.part == partNone
		st.part = partOther
		if string(e.ItemType) == "message" {
			st.part = partItem
		}
	case "response.content_part.added":
		ok = running && (st.part == partItem || st.part == partDone)
		st.part, st.partStart = partOpen, len(st.text)
	case "response.output_text.delta":
		ok = running && st.part == partOpen
		st.text = append(st.text, e.Delta...)
		r.addContent(e.Delta, at, start, check)
	case "response.output_text.done":
		ok = running && st.part == partOpen
		st.part = partTextDone
		if !e.HasText || !bytes.Equal(e.Text, st.text[min(st.partStart, len(st.text)):]) {
			r.TextWrong = true
		}
	case "response.refusal.delta":
		ok = running && st.part == partOpen
	case "response.refusal.done":
		ok = running && st.part == partOpen
		st.part = partTextDone
	case "response.content_part.done":
		ok = running && st.part == partTextDone
		st.part = partDone
	case "response.output_item.done":
		ok = running && (st.part == partOther || st.part == partItem || st.part == partDone)
		st.part = partNone
	case "response.completed", "response.incomplete", "response.failed":
		// A failed response may cut an item short; the others close theirs.
		ok = running && (st.part == partNone || typ == "response.failed")
		st.stage = stageFinished
		r.Done = typ == "response.completed"
		r.ErrorEvent = r.ErrorEvent || typ == "response.failed"
		r.Status = string(e.Status)
		if e.HasUsage {
			r.UsageSeen, r.UsageTokens = true, e.OutputTokens
		}
		if typ != "response.failed" && !bytes.Equal(e.OutputText, st.text) {
			r.TextWrong = true
		}
	case "error":
		r.ErrorEvent = true
	default:
		// Another item's events (reasoning, function call arguments…) or
		// a newer event: only inside a running response.
		ok = running
	}
	if e.HasError {
		r.ErrorEvent = true
	}
	if !ok && !r.OrderWrong {
		r.OrderWrong = true
		prev := string(st.last)
		if prev == "" {
			prev = "the start"
		}
		r.Unexpected = string(e.Type) + " after " + prev
	}
	st.last = append(st.last[:0], e.Type...)
}

// responsesProblem is Problem for a Responses stream.
func (r *StreamResult) responsesProblem(check StreamCheck) string {
	switch {
	case r.ErrorEvent:
		return "stream_error_event"
	case r.BadJSON:
		return "stream_bad_json"
	case r.BadEvent:
		return "stream_bad_event"
	case !r.Done && r.Status == "incomplete":
		return "stream_incomplete"
	case !r.Done:
		return "stream_no_completed"
	case r.AfterDone:
		return "stream_event_after_completed"
	case r.OrderWrong:
		return "stream_event_order"
	case r.SeqWrong:
		return "stream_sequence"
	case r.IDChanged:
		return "stream_id_changed"
	case r.TextWrong:
		return "stream_text_mismatch"
	case check.ExpectUsage && !r.UsageSeen:
		return "stream_no_usage"
	case check.ExpectUsage && check.TokensPerChunk > 0 &&
		r.ContentChunks != (r.UsageTokens+check.TokensPerChunk-1)/check.TokensPerChunk:
		return "stream_chunks_mismatch"
	case check.ExpectContent != "" && (r.ContentWrong || r.contentOffset != len(check.ExpectContent)):
		return "stream_content_mismatch"
	}
	return ""
}
