package bedrock

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/xroute/xroute/providers"
)

// ConverseStream answers with AWS event-stream framing
// (application/vnd.amazon.eventstream): binary messages whose headers name
// the event (:message-type event, :event-type messageStart, ...) or the
// exception (:message-type exception, :exception-type throttlingException,
// ...), and whose payload is the event's JSON.

// Limits of one event-stream message (the framing's own maxima): a broken
// upstream must not make us buffer without bound.
const (
	preludeBytes     = 12
	minMessageBytes  = preludeBytes + 4 // prelude + message CRC
	maxMessageBytes  = 16 << 20
	maxHeadersLength = 128 << 10
)

var errMalformedPrelude = errors.New("malformed event-stream message prelude")

// messageReader reads event-stream messages with the AWS decoder, checking
// each prelude's lengths first (the decoder trusts them).
type messageReader struct {
	r   *bufio.Reader
	dec *eventstream.Decoder
	buf []byte
}

func newMessageReader(r io.Reader) *messageReader {
	return &messageReader{r: bufio.NewReaderSize(r, 4<<10), dec: eventstream.NewDecoder()}
}

// next returns the next message; io.EOF only at a message boundary. The
// payload is valid until the next call.
func (m *messageReader) next() (eventstream.Message, error) {
	pre, err := m.r.Peek(8)
	if err != nil {
		if errors.Is(err, io.EOF) && len(pre) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return eventstream.Message{}, err
	}
	total := binary.BigEndian.Uint32(pre[0:4])
	headers := binary.BigEndian.Uint32(pre[4:8])
	if total < minMessageBytes || total > maxMessageBytes || headers > maxHeadersLength || headers > total-minMessageBytes {
		return eventstream.Message{}, errMalformedPrelude
	}
	msg, err := m.dec.Decode(m.r, m.buf[:0])
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // EOF inside a message
		}
		return eventstream.Message{}, err
	}
	m.buf = msg.Payload
	return msg, nil
}

func headerString(h eventstream.Headers, name string) string {
	if v := h.Get(name); v != nil {
		if s, ok := v.(eventstream.StringValue); ok {
			return string(s)
		}
		return v.String()
	}
	return ""
}

// translator turns ConverseStream events into OpenAI chunks. It holds no
// I/O, so it can be driven by tests and the fuzzer directly.
type translator struct {
	name     string
	b        providers.ChunkBuilder
	jsonTool string // forced json_object tool: its input is streamed as text

	started  bool        // role chunk sent
	calls    map[int]int // contentBlockIndex -> OpenAI tool_calls index
	jsonBlk  map[int]bool
	nCalls   int
	finished bool // messageStop seen (finish chunk sent)
	usage    *providers.Usage
	sentUse  bool
}

func newTranslator(name string, b providers.ChunkBuilder, jsonTool string) *translator {
	return &translator{name: name, b: b, jsonTool: jsonTool}
}

// protocolError is a stream the adapter cannot make sense of.
func (t *translator) protocolError(format string, args ...any) *providers.Error {
	return providers.Malformed(t.name, true, "upstream sent a malformed stream", fmt.Errorf(format, args...))
}

// start sends the role chunk once, before anything else.
func (t *translator) start(out []providers.Chunk) []providers.Chunk {
	if !t.started {
		t.started = true
		out = append(out, t.b.Role())
	}
	return out
}

// event translates one message. It returns io.EOF never; errors are
// *providers.Error with MidStream set.
func (t *translator) event(msg eventstream.Message) ([]providers.Chunk, error) {
	switch mt := headerString(msg.Headers, ":message-type"); mt {
	case "event":
	case "exception":
		return nil, t.exception(headerString(msg.Headers, ":exception-type"), msg.Payload)
	case "error":
		return nil, &providers.Error{Provider: t.name, MidStream: true, Type: "server_error", Code: headerString(msg.Headers, ":error-code"),
			Message: nonEmpty(headerString(msg.Headers, ":error-message"), "upstream stream failed")}
	default:
		return nil, t.protocolError("unknown :message-type %q", mt)
	}
	var ev streamEvent
	if len(msg.Payload) > 0 {
		if err := json.Unmarshal(msg.Payload, &ev); err != nil {
			return nil, t.protocolError("decode %s event: %w", headerString(msg.Headers, ":event-type"), err)
		}
	}
	var out []providers.Chunk
	switch et := headerString(msg.Headers, ":event-type"); et {
	case "messageStart":
		out = t.start(out)
	case "contentBlockStart":
		out = t.start(out)
		if ev.Start == nil || ev.Start.ToolUse == nil {
			break // other block kinds (toolResult, image) carry nothing for OpenAI
		}
		if _, dup := t.calls[ev.ContentBlockIndex]; dup || t.jsonBlk[ev.ContentBlockIndex] {
			return nil, t.protocolError("content block %d started twice", ev.ContentBlockIndex)
		}
		if t.jsonTool != "" && ev.Start.ToolUse.Name == t.jsonTool {
			if t.jsonBlk == nil {
				t.jsonBlk = map[int]bool{}
			}
			t.jsonBlk[ev.ContentBlockIndex] = true
			break
		}
		if t.calls == nil {
			t.calls = map[int]int{}
		}
		idx := t.nCalls
		t.nCalls++
		t.calls[ev.ContentBlockIndex] = idx
		out = append(out, t.b.ToolCallStart(idx, ev.Start.ToolUse.ToolUseID, ev.Start.ToolUse.Name))
	case "contentBlockDelta":
		out = t.start(out)
		if ev.Delta == nil {
			break
		}
		switch {
		case ev.Delta.Text != nil:
			if *ev.Delta.Text != "" {
				out = append(out, t.b.Text(*ev.Delta.Text))
			}
		case ev.Delta.ToolUse != nil:
			if t.jsonBlk[ev.ContentBlockIndex] {
				if ev.Delta.ToolUse.Input != "" {
					out = append(out, t.b.Text(ev.Delta.ToolUse.Input))
				}
				break
			}
			idx, ok := t.calls[ev.ContentBlockIndex]
			if !ok {
				return nil, t.protocolError("toolUse delta for content block %d that never started", ev.ContentBlockIndex)
			}
			if ev.Delta.ToolUse.Input != "" {
				out = append(out, t.b.ToolCallArgs(idx, ev.Delta.ToolUse.Input))
			}
		}
		// reasoningContent, citation and other deltas have no OpenAI form.
	case "contentBlockStop":
	case "messageStop":
		if t.finished {
			return nil, t.protocolError("messageStop sent twice")
		}
		out = t.start(out)
		t.finished = true
		reason := finishReason(ev.StopReason)
		switch {
		case reason == "stop" && t.nCalls > 0:
			reason = "tool_calls"
		case reason == "tool_calls" && t.nCalls == 0:
			reason = "stop" // the forced json_object tool
		}
		out = append(out, t.b.Finish(reason))
		if t.usage != nil && !t.sentUse {
			t.sentUse = true
			out = append(out, t.b.Usage(*t.usage))
		}
	case "metadata":
		if ev.Usage == nil {
			break
		}
		u := usage(ev.Usage)
		t.usage = &u
		// The usage chunk comes after the finish chunk, as OpenAI sends it.
		if t.finished && !t.sentUse {
			t.sentUse = true
			out = append(out, t.b.Usage(u))
		}
	default:
		// Event kinds added after this adapter was written carry nothing it
		// could translate.
	}
	return out, nil
}

// end is called at the upstream's clean end of stream.
func (t *translator) end() error {
	if !t.finished {
		return &providers.Error{Provider: t.name, MidStream: true, Message: "upstream stream ended before messageStop", Err: io.ErrUnexpectedEOF}
	}
	return io.EOF
}

// exceptionStatus gives the HTTP status the service model assigns to an
// exception (aws-sdk-go-v2 service/bedrockruntime schemas).
var exceptionStatus = map[string]int{
	"ValidationException":           http.StatusBadRequest,
	"ConflictException":             http.StatusBadRequest,
	"ServiceQuotaExceededException": http.StatusBadRequest,
	"AccessDeniedException":         http.StatusForbidden,
	"ResourceNotFoundException":     http.StatusNotFound,
	"ModelTimeoutException":         http.StatusRequestTimeout,
	"ModelErrorException":           http.StatusFailedDependency,
	"ModelStreamErrorException":     http.StatusFailedDependency,
	"ThrottlingException":           http.StatusTooManyRequests,
	"ModelNotReadyException":        http.StatusTooManyRequests,
	"InternalServerException":       http.StatusInternalServerError,
	"ServiceUnavailableException":   http.StatusServiceUnavailable,
}

// exception turns a mid-stream exception event into a typed error.
func (t *translator) exception(typ string, payload []byte) *providers.Error {
	var body struct {
		Message            string `json:"message"`
		OriginalStatusCode int    `json:"originalStatusCode"`
	}
	_ = json.Unmarshal(payload, &body)
	name := exceptionName(typ)
	status, ok := exceptionStatus[name]
	if !ok {
		status = http.StatusInternalServerError
	}
	pe := translateError(t.name, status, name, body.Message)
	pe.MidStream = true
	return pe
}

// exceptionName turns an event-stream member name (throttlingException)
// into the shape name (ThrottlingException).
func exceptionName(typ string) string {
	if typ == "" {
		return ""
	}
	if c := typ[0]; c >= 'a' && c <= 'z' {
		return string(c-'a'+'A') + typ[1:]
	}
	return typ
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// stream is the ConverseStream reader behind a TranslatedStream.
type stream struct {
	name string
	mr   *messageReader
	tr   *translator
	done bool
}

func (s *stream) next() ([]providers.Chunk, error) {
	if s.done {
		return nil, io.EOF
	}
	msg, err := s.mr.next()
	if err != nil {
		s.done = true
		if errors.Is(err, io.EOF) {
			return nil, s.tr.end()
		}
		return nil, &providers.Error{Provider: s.name, MidStream: true, Message: "upstream stream broke", Err: err}
	}
	chunks, err := s.tr.event(msg)
	if err != nil {
		s.done = true
	}
	return chunks, err
}
