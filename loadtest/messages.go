package loadtest

import (
	"bytes"
	"io"
	"strconv"
	"time"
)

// An Anthropic Messages stream (POST /v1/messages with "stream": true) is
// SSE with an "event: TYPE" and a "data: JSON" line per event, the JSON
// repeating the type, and no [DONE]:
//
//	message_start (the message, content empty),
//	then each content block: content_block_start {index, content_block},
//	    content_block_delta {index, delta}…, content_block_stop {index},
//	message_delta (stop_reason, usage with output_tokens),
//	message_stop last.
//
// ping events may come anywhere after message_start, and an error event
// ends a failed stream. Blocks are numbered from 0 and come one after the
// other. A text block's deltas are text_delta; thinking, tool_use and
// other blocks have deltas of their own, which the check lets pass.
// Event types the check does not know are let through inside the message,
// as the API asks of clients.

// msgStage is how far a Messages stream has got.
type msgStage uint8

const (
	msgStart   msgStage = iota // nothing yet
	msgStarted                 // message_start: content blocks may follow
	msgDelta                   // message_delta: message_stop must follow
	msgStopped                 // message_stop
)

// msgState is a Messages stream's checking state.
type msgState struct {
	on        bool // the stream is a Messages stream
	stage     msgStage
	blockOpen bool   // a content block is open
	block     int    // index of the open block
	blockText bool   // the open block is a text block
	next      int    // index the next content_block_start must carry
	last      []byte // type of the previous event, for Unexpected
}

// ReadMessagesStream reads an Anthropic Messages SSE body to its end,
// filling res. start is when the request began (TTFT is measured from it,
// to the first non-empty text_delta) and now is the clock. It returns the
// first read error other than io.EOF; the stream's defects are in res (see
// StreamResult.Problem): message_start not first or message_stop not
// last, content_block_start and content_block_stop not paired by index, an
// "event:" line that differs from the type, no stop_reason or no usage in
// message_delta, usage.output_tokens that differs from the text_deltas'
// count, text that differs from the expected one.
func ReadMessagesStream(body io.Reader, start time.Time, now func() time.Time, check StreamCheck, res *StreamResult) error {
	res.msg.on = true
	return readEvents(body, now, func(sr *SSEReader, name, data []byte, at time.Time) {
		res.Events++
		if res.msg.stage == msgStopped {
			res.AfterDone = true
		}
		if !scanMsgEvent(data, &sr.scan, &sr.msg) {
			res.BadJSON = true
			return
		}
		res.observeMsgEvent(name, &sr.msg, at, start, check)
	})
}

// observeMsgEvent checks one event against the stream so far.
func (r *StreamResult) observeMsgEvent(name []byte, e *msgEventFields, at, start time.Time, check StreamCheck) {
	st := &r.msg
	if len(e.Type) == 0 || !bytes.Equal(name, e.Type) {
		r.BadEvent = true
	}
	if e.HasError {
		r.ErrorEvent = true
	}
	started := st.stage == msgStarted
	ok := true
	unpaired := "" // why the event breaks the pairing of blocks, if it does
	switch typ := string(e.Type); typ {
	case "message_start":
		ok = st.stage == msgStart
		st.stage = msgStarted
	case "ping":
		ok = st.stage == msgStarted || st.stage == msgDelta
	case "content_block_start":
		ok = started
		switch {
		case st.blockOpen:
			unpaired = "block " + strconv.Itoa(st.block) + " still open"
		case !e.HasIndex || e.Index != st.next:
			unpaired = "want index " + strconv.Itoa(st.next)
		}
		st.blockOpen, st.block, st.blockText = true, e.Index, string(e.BlockType) == "text"
		st.next = e.Index + 1
	case "content_block_delta":
		ok = started
		switch {
		case !st.blockOpen:
			unpaired = "no block open"
		case !e.HasIndex || e.Index != st.block:
			unpaired = "block " + strconv.Itoa(st.block) + " open"
		}
		if string(e.DeltaType) == "text_delta" {
			if !st.blockText && unpaired == "" {
				ok = false // text in a thinking or tool_use block
			}
			r.addContent(e.Text, at, start, check)
		}
	case "content_block_stop":
		ok = started
		switch {
		case !st.blockOpen:
			unpaired = "no block open"
		case !e.HasIndex || e.Index != st.block:
			unpaired = "block " + strconv.Itoa(st.block) + " open"
		}
		st.blockOpen = false
	case "message_delta":
		ok = started
		if st.blockOpen {
			unpaired = "block " + strconv.Itoa(st.block) + " never stopped"
		}
		st.stage = msgDelta
		if len(e.StopReason) > 0 {
			r.FinishReason = string(e.StopReason)
		}
		if e.HasUsage {
			r.UsageSeen, r.UsageTokens = true, e.OutputTokens
		}
	case "message_stop":
		ok = st.stage == msgDelta
		if st.blockOpen {
			unpaired = "block " + strconv.Itoa(st.block) + " never stopped"
		}
		st.stage = msgStopped
		r.Done = true
	case "error":
		r.ErrorEvent = true
	default:
		// A newer event type: only inside the message.
		ok = started
	}
	if (!ok || unpaired != "") && r.Unexpected == "" {
		prev := string(st.last)
		if prev == "" {
			prev = "the start"
		}
		r.Unexpected = string(e.Type) + " after " + prev
		if e.HasIndex {
			r.Unexpected = string(e.Type) + " (index " + strconv.Itoa(e.Index) + ") after " + prev
		}
		if unpaired != "" {
			r.Unexpected += ": " + unpaired
		}
	}
	r.OrderWrong = r.OrderWrong || !ok
	r.BlockUnpaired = r.BlockUnpaired || unpaired != ""
	st.last = append(st.last[:0], e.Type...)
}

// messagesProblem is Problem for a Messages stream.
func (r *StreamResult) messagesProblem(check StreamCheck) string {
	switch {
	case r.ErrorEvent:
		return "stream_error_event"
	case r.BadJSON:
		return "stream_bad_json"
	case r.BadEvent:
		return "stream_bad_event"
	case !r.Done:
		return "stream_no_message_stop"
	case r.AfterDone:
		return "stream_event_after_message_stop"
	case r.OrderWrong:
		return "stream_event_order"
	case r.BlockUnpaired:
		return "stream_block_unpaired"
	case r.FinishReason == "":
		return "stream_no_stop_reason"
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
