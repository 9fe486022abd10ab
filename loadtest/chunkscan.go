package loadtest

import (
	"encoding/json"
)

// chunkFields is what the stream checks read from one chat.completion.chunk.
// The load generator shares the CPU with the servers it measures, so chunks
// are read by a small allocation-free scanner rather than encoding/json
// (which is kept as the reference in the tests).
type chunkFields struct {
	ID           []byte // raw (ids carry no escapes in practice; compared raw)
	Content      []byte // decoded content of the choices' deltas, concatenated
	FinishReason []byte // raw, last non-null finish_reason
	HasUsage     bool
	Completion   int // usage.completion_tokens
	HasError     bool
}

// scanner walks one JSON document. Every method leaves s.bad set on malformed
// input; callers check it once at the end.
type scanner struct {
	b   []byte
	i   int
	bad bool
	buf []byte // decoded strings with escapes
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		s.bad = true
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) bool {
	if s.peek() != c {
		s.bad = true
		return false
	}
	s.i++
	return true
}

// literal consumes null, true or false.
func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// isNull consumes a null value if one is next.
func (s *scanner) isNull() bool {
	return s.peek() == 'n' && s.literal("null")
}

// str reads a string and returns its raw bytes (between the quotes) and
// whether it has escapes.
func (s *scanner) str() (raw []byte, escaped bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			s.bad = true
			return nil, false
		default:
			s.i++
		}
	}
	s.bad = true
	return nil, false
}

// decodedStr reads a string and returns it decoded; the slice is valid until
// the next call.
func (s *scanner) decodedStr() []byte {
	start := s.i
	raw, escaped := s.str()
	if s.bad || !escaped {
		return raw
	}
	var v string
	if err := json.Unmarshal(s.b[s.peekStart(start):s.i], &v); err != nil {
		s.bad = true
		return nil
	}
	s.buf = append(s.buf[:0], v...)
	return s.buf
}

// peekStart returns the index of the opening quote at or after start.
func (s *scanner) peekStart(start int) int {
	for start < len(s.b) && s.b[start] != '"' {
		start++
	}
	return start
}

// num reads a non-negative integer (fractions and exponents are skipped).
func (s *scanner) num() int {
	s.ws()
	start, n := s.i, 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int(s.b[s.i]-'0')
		s.i++
	}
	if s.i == start {
		s.skip()
		return 0
	}
	s.skipNumberRest()
	return n
}

func (s *scanner) skipNumberRest() {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c >= '0' && c <= '9', c == '.', c == 'e', c == 'E', c == '+', c == '-':
			s.i++
		default:
			return
		}
	}
}

// skip skips one value of any type.
func (s *scanner) skip() {
	switch c := s.peek(); {
	case s.bad:
	case c == '"':
		s.str()
	case c == '{':
		s.i++
		for first := true; s.nextKey(&first) != nil && !s.bad; {
			s.skip()
		}
	case c == '[':
		s.i++
		for first := true; s.nextElem(&first) && !s.bad; {
			s.skip()
		}
	case c == '-' || (c >= '0' && c <= '9'):
		s.i++
		s.skipNumberRest()
	case s.literal("null"), s.literal("true"), s.literal("false"):
	default:
		s.bad = true
	}
}

// nextKey moves to the next member of an object whose '{' was consumed and
// returns its key (raw) with the ':' consumed, or nil at the closing '}'.
func (s *scanner) nextKey(first *bool) []byte {
	c := s.peek()
	if s.bad {
		return nil
	}
	if c == '}' {
		s.i++
		return nil
	}
	if !*first && !s.expect(',') {
		return nil
	}
	*first = false
	key, _ := s.str()
	if s.bad || !s.expect(':') {
		return nil
	}
	if key == nil {
		key = []byte{} // an empty key is still a key
	}
	return key
}

// nextElem moves to the next element of an array whose '[' was consumed; it
// reports false at the closing ']'.
func (s *scanner) nextElem(first *bool) bool {
	c := s.peek()
	if s.bad {
		return false
	}
	if c == ']' {
		s.i++
		return false
	}
	if !*first && !s.expect(',') {
		return false
	}
	*first = false
	return true
}

// scanChunk reads the fields the checks need from one chunk. It reports
// false when data is not a JSON object.
func scanChunk(data []byte, s *scanner, out *chunkFields) bool {
	*s = scanner{b: data, buf: s.buf}
	content := out.Content[:0]
	*out = chunkFields{Content: content}
	if !s.expect('{') {
		return false
	}
	for first := true; ; {
		key := s.nextKey(&first)
		if key == nil {
			break
		}
		switch string(key) {
		case "id":
			if !s.isNull() {
				out.ID, _ = s.str()
			}
		case "choices":
			s.scanChoices(out)
		case "usage":
			if s.isNull() {
				break
			}
			if !s.expect('{') {
				break
			}
			out.HasUsage = true
			for f := true; ; {
				k := s.nextKey(&f)
				if k == nil {
					break
				}
				if string(k) == "completion_tokens" {
					out.Completion = s.num()
				} else {
					s.skip()
				}
			}
		case "error":
			out.HasError = s.present()
		default:
			s.skip()
		}
		if s.bad {
			return false
		}
	}
	return s.end()
}

// present reports whether the value at the cursor is not null, and skips
// it (used for "error": only its presence matters).
func (s *scanner) present() bool {
	if s.isNull() {
		return false
	}
	s.skip()
	return true
}

// end reports whether the scan went without fault and only white space
// follows the object.
func (s *scanner) end() bool {
	if s.bad {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) scanChoices(out *chunkFields) {
	if s.isNull() || !s.expect('[') {
		return
	}
	for first := true; s.nextElem(&first); {
		if s.isNull() {
			continue
		}
		if !s.expect('{') {
			return
		}
		for f := true; ; {
			k := s.nextKey(&f)
			if k == nil {
				break
			}
			switch string(k) {
			case "delta":
				if s.isNull() || !s.expect('{') {
					break
				}
				for g := true; ; {
					dk := s.nextKey(&g)
					if dk == nil {
						break
					}
					switch {
					case string(dk) != "content":
						s.skip()
					case s.isNull():
					default:
						out.Content = append(out.Content, s.decodedStr()...)
					}
				}
			case "finish_reason":
				if !s.isNull() {
					out.FinishReason, _ = s.str()
				}
			default:
				s.skip()
			}
			if s.bad {
				return
			}
		}
	}
}
