package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// SSEReader splits a text/event-stream body into events and returns the
// data (and name) of each one. It follows the parts of the SSE grammar that
// OpenAI-style streams use: "data:" lines (several are joined with "\n"), an
// "event:" line naming the event, comment lines starting with ":", other
// fields ignored, an event ends at a blank line, and LF, CRLF or CR line
// endings.
type SSEReader struct {
	br    *bufio.Reader
	data  []byte
	event []byte
	line  []byte
	// Scanning state, kept here so that pooled readers reuse buffers.
	scan  scanner
	chunk chunkFields
	resp  respEventFields
	msg   msgEventFields
}

// NewSSEReader returns a reader of the events in r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{br: bufio.NewReaderSize(r, 4096)}
}

var sseReaders = sync.Pool{New: func() any { return NewSSEReader(nil) }}

// reset points a pooled reader at a new body.
func (s *SSEReader) reset(r io.Reader) {
	s.br.Reset(r)
	s.data = s.data[:0]
	s.event = s.event[:0]
	s.line = s.line[:0]
}

// readLine returns the next line without its terminator. The slice is valid
// until the next call.
func (s *SSEReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		chunk, err := s.br.ReadSlice('\n')
		s.line = append(s.line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(s.line) > 0 && err == io.EOF {
				// Last line without a terminator: return it, EOF on the next call.
				return trimEOL(s.line), nil
			}
			return nil, err
		}
		return trimEOL(s.line), nil
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// Next returns the data of the next event that has any. The slice is valid
// until the next call. At the end of the body it returns io.EOF, after
// returning a final event that was not closed by a blank line.
func (s *SSEReader) Next() ([]byte, error) {
	_, data, err := s.NextEvent()
	return data, err
}

// NextEvent is Next that also returns the event's name, the value of its
// "event:" line ("" when it has none). Both slices are valid until the
// next call.
func (s *SSEReader) NextEvent() (name, data []byte, err error) {
	s.data = s.data[:0]
	s.event = s.event[:0]
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && hasData {
				return s.event, s.data, nil
			}
			return nil, nil, err
		}
		if len(line) == 0 { // blank line: dispatch
			if hasData {
				return s.event, s.data, nil
			}
			s.event = s.event[:0] // an event without data is not dispatched
			continue
		}
		if line[0] == ':' { // comment / keep-alive
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			hasData = true
		case "event":
			s.event = append(s.event[:0], value...)
		}
		// id: and retry: are not used by OpenAI streams.
	}
}

// StreamCheck says what a well-formed stream must show beyond its framing
// (a chat completion stream ending with "data: [DONE]", a Responses stream's
// events in order ending with response.completed, a Messages stream's
// events in order ending with message_stop).
type StreamCheck struct {
	// ExpectUsage requires usage (a chat stream's usage chunk, from
	// stream_options.include_usage; a Responses stream's usage in
	// response.completed; a Messages stream's in message_delta) and
	// compares its completion (output) tokens with the content chunks
	// (output_text deltas, text_deltas) received.
	ExpectUsage bool `json:"expect_usage"`
	// TokensPerChunk is how many completion tokens the upstream puts in one
	// content chunk; with ExpectUsage the stream must have exactly
	// ceil(completion_tokens / TokensPerChunk) content chunks (deltas). 0
	// skips the comparison.
	TokensPerChunk int `json:"tokens_per_chunk"`
	// ExpectContent, when set, is the exact text the stream must spell out;
	// a reordered, dropped or duplicated chunk changes it.
	ExpectContent string `json:"-"`
	// CollectContent keeps the streamed text in StreamResult.Content.
	CollectContent bool `json:"-"`
}

// StreamResult is what one streamed response showed. A chat completion
// stream (ReadChatStream), a Responses stream (ReadResponsesStream) and a
// Messages stream (ReadMessagesStream) fill the common fields alike: a
// content chunk is a Responses output_text.delta or a Messages text_delta,
// Done is response.completed or message_stop, the usage tokens are
// output_tokens, the finish reason a Messages stop_reason.
type StreamResult struct {
	Events        int           // data events, [DONE] excluded
	ContentChunks int           // events whose delta carried non-empty content
	ContentBytes  int           // total content length
	TTFT          time.Duration // start to first content chunk; 0 when none
	Gaps          []time.Duration
	Done          bool // "data: [DONE]" seen; Responses: response.completed seen
	AfterDone     bool // data arrived after [DONE] (after response.completed)
	FinishReason  string
	UsageSeen     bool
	UsageTokens   int    // usage.completion_tokens of the usage chunk (Responses: output_tokens)
	ErrorEvent    bool   // a chunk carried an "error" object; Responses: an error or response.failed event
	IDChanged     bool   // the chunk id (Responses: the response id) changed within the stream
	BadJSON       bool   // a data event was not valid JSON
	ContentWrong  bool   // content diverged from StreamCheck.ExpectContent
	Content       []byte // the text, with StreamCheck.CollectContent

	// Responses and Messages streams.
	BadEvent   bool // an event without a type, or whose "event:" line differs from its type
	OrderWrong bool // an event out of the API's order (see ReadResponsesStream, ReadMessagesStream)
	// Unexpected describes the first event out of order, e.g.
	// "response.output_text.delta after response.in_progress".
	Unexpected string

	// Responses streams only.
	Status    string // status of the final response object (completed, incomplete, failed)
	SeqWrong  bool   // a sequence_number missing, or not above the previous one
	TextWrong bool   // output_text.done or the final response's text differs from the deltas

	// Messages streams only.
	BlockUnpaired bool // content_block_start/_delta/_stop not paired by index, or a block left open

	contentOffset int
	id            []byte
	lastContent   time.Time
	resp          respState // Responses stream state; resp.on marks a Responses stream
	msg           msgState  // Messages stream state; msg.on marks a Messages stream
}

// Reset empties r for reuse, keeping the Gaps storage.
func (r *StreamResult) Reset() {
	gaps, id, content := r.Gaps[:0], r.id[:0], r.Content[:0]
	text, last, msgLast := r.resp.text[:0], r.resp.last[:0], r.msg.last[:0]
	*r = StreamResult{Gaps: gaps, id: id, Content: content, resp: respState{text: text, last: last}, msg: msgState{last: msgLast}}
}

// Problem names the first defect of the stream under check, or returns ""
// for a well-formed stream. The names are stable: they become error kinds in
// results.
func (r *StreamResult) Problem(check StreamCheck) string {
	if r.resp.on {
		return r.responsesProblem(check)
	}
	if r.msg.on {
		return r.messagesProblem(check)
	}
	switch {
	case r.ErrorEvent:
		return "stream_error_event"
	case r.BadJSON:
		return "stream_bad_json"
	case !r.Done:
		return "stream_no_done"
	case r.AfterDone:
		return "stream_data_after_done"
	case r.IDChanged:
		return "stream_id_changed"
	case r.FinishReason == "":
		return "stream_no_finish_reason"
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

// ReadChatStream reads an OpenAI chat completion SSE body to its end,
// filling res. start is when the request began (TTFT is measured from it) and
// now is the clock. It returns the first read error other than io.EOF; the
// stream's defects are in res (see StreamResult.Problem).
func ReadChatStream(body io.Reader, start time.Time, now func() time.Time, check StreamCheck, res *StreamResult) error {
	return readEvents(body, now, func(sr *SSEReader, _, data []byte, at time.Time) {
		if string(bytes.TrimSpace(data)) == "[DONE]" {
			res.Done = true
			return
		}
		if res.Done {
			res.AfterDone = true
		}
		res.Events++
		if !scanChunk(data, &sr.scan, &sr.chunk) {
			res.BadJSON = true
			return
		}
		res.observe(&sr.chunk, at, start, check)
	})
}

// readEvents reads an SSE body to its end with a pooled reader, handing
// each event, with the time now gave when it arrived, to handle (which
// may use the reader's scan buffers). It returns the first read error
// other than io.EOF.
func readEvents(body io.Reader, now func() time.Time, handle func(sr *SSEReader, name, data []byte, at time.Time)) error {
	sr := sseReaders.Get().(*SSEReader)
	sr.reset(body)
	defer func() {
		sr.reset(nil)
		sseReaders.Put(sr)
	}()
	for {
		name, data, err := sr.NextEvent()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read stream: %w", err)
		}
		handle(sr, name, data, now())
	}
}

func (r *StreamResult) observe(c *chunkFields, at, start time.Time, check StreamCheck) {
	if c.HasError {
		r.ErrorEvent = true
	}
	if len(c.ID) > 0 {
		if len(r.id) == 0 {
			r.id = append(r.id, c.ID...)
		} else if !bytes.Equal(r.id, c.ID) {
			r.IDChanged = true
		}
	}
	if c.HasUsage {
		r.UsageSeen = true
		r.UsageTokens = c.Completion
	}
	if len(c.FinishReason) > 0 {
		r.FinishReason = string(c.FinishReason)
	}
	r.addContent(c.Content, at, start, check)
}

// addContent counts one content piece (a chat chunk's delta content, a
// Responses output_text.delta, a Messages text_delta) received at at: TTFT, gaps, the expected
// text.
func (r *StreamResult) addContent(content []byte, at, start time.Time, check StreamCheck) {
	if len(content) == 0 {
		return
	}
	if r.ContentChunks == 0 {
		r.TTFT = at.Sub(start)
	} else {
		r.Gaps = append(r.Gaps, at.Sub(r.lastContent))
	}
	r.lastContent = at
	r.ContentChunks++
	r.ContentBytes += len(content)
	if check.CollectContent {
		r.Content = append(r.Content, content...)
	}
	if check.ExpectContent != "" && !r.ContentWrong {
		rest := check.ExpectContent[r.contentOffset:]
		if len(rest) >= len(content) && rest[:len(content)] == string(content) {
			r.contentOffset += len(content)
		} else {
			r.ContentWrong = true
		}
	}
}
