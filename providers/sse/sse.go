// Package sse reads and writes Server-Sent Events as LLM APIs use them:
// `event:` and `data:` fields, events separated by a blank line, comments
// (lines starting with ':') ignored. Every adapter shares this one reader.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Event is one dispatched event. Data is only valid until the next call to
// Next; copy it to keep it.
type Event struct {
	Name string
	Data []byte
}

// MaxLineBytes bounds one line so a broken upstream cannot make us buffer
// without limit.
const MaxLineBytes = 4 << 20

// ErrLineTooLong is returned when an upstream sends a line over MaxLineBytes.
var ErrLineTooLong = errors.New("sse: line too long")

// Reader parses an SSE stream.
type Reader struct {
	r      *bufio.Reader
	data   []byte
	name   []byte
	long   []byte
	onWait func()
}

// OnWait makes the reader call f before each read that may wait for the
// network (its buffer holds no whole line), so that its user can flush
// what it wrote from the events it has: see providers.WaitNotifier.
func (s *Reader) OnWait(f func()) { s.onWait = f }

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4<<10)} // longer lines spill into Reader.long
}

// Next returns the next event. It returns io.EOF when the stream ends at an
// event boundary and io.ErrUnexpectedEOF when it ends inside an event.
func (s *Reader) Next() (Event, error) {
	s.data = s.data[:0]
	s.name = s.name[:0]
	haveData := false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if haveData {
					// A final event without its blank line: deliver it, as
					// browsers do not but every LLM SDK does.
					return Event{Name: string(s.name), Data: s.data}, nil
				}
				if len(s.name) > 0 {
					return Event{}, io.ErrUnexpectedEOF
				}
				return Event{}, io.EOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if haveData {
				return Event{Name: string(s.name), Data: s.data}, nil
			}
			s.name = s.name[:0] // an event without data is not dispatched
			continue
		}
		if line[0] == ':' {
			continue // comment / keep-alive
		}
		field, value, found := bytes.Cut(line, []byte{':'})
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "data":
			if haveData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			haveData = true
		case "event":
			s.name = append(s.name[:0], value...)
		default:
			// id, retry and unknown fields are not used by LLM APIs.
		}
	}
}

// readLine returns one line without its terminator (\n or \r\n).
func (s *Reader) readLine() ([]byte, error) {
	if s.onWait != nil && !s.lineBuffered() {
		s.onWait()
	}
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(s.long) <= MaxLineBytes {
			line, err = s.r.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		if len(s.long) > MaxLineBytes {
			return nil, ErrLineTooLong
		}
		line = s.long
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("sse: read: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, nil
}

// lineBuffered reports whether a whole line is in the buffer already, so
// that reading it cannot wait.
func (s *Reader) lineBuffered() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// AppendTypedEvent appends one event as the Responses and Messages APIs
// write theirs: `event: typ`, and data that is the JSON object fields
// (an encoded object) with "type" (and, when seq >= 0, "sequence_number")
// first, so that a person reading the stream sees what each event is.
func AppendTypedEvent(dst []byte, typ string, seq int, fields []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, typ...)
	dst = append(dst, '"')
	if seq >= 0 {
		dst = append(dst, `,"sequence_number":`...)
		dst = strconv.AppendInt(dst, int64(seq), 10)
	}
	if len(fields) > 2 { // more than {}
		dst = append(dst, ',')
	}
	if len(fields) > 0 {
		dst = append(dst, fields[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return append(dst, "\n\n"...)
}
