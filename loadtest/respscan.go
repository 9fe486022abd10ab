package loadtest

// respEventFields is what the stream checks read from one Responses API
// stream event, by the allocation-free scanner of chunkscan.go (the tests
// compare it with encoding/json). Raw slices point into the event's data;
// decoded ones into the struct's own buffers.
type respEventFields struct {
	Type     []byte // raw "type"
	Seq      int    // "sequence_number"
	HasSeq   bool
	Delta    []byte // decoded string "delta"
	HasDelta bool
	Text     []byte // decoded string "text" (output_text.done)
	HasText  bool
	ItemType []byte // raw item.type (output_item.added / .done)
	PartType []byte // raw part.type (content_part.added / .done)
	HasError bool   // a non-null top-level "error"

	// The "response" object (response.created, .in_progress, .completed…).
	Resp         bool
	RespID       []byte // raw
	Status       []byte // raw
	OutputText   []byte // decoded: the output_text parts of its message items, concatenated
	HasUsage     bool
	OutputTokens int // usage.output_tokens
}

func (f *respEventFields) reset() {
	*f = respEventFields{Delta: f.Delta[:0], Text: f.Text[:0], OutputText: f.OutputText[:0]}
}

// optStr reads a string, or null (nil).
func (s *scanner) optStr() []byte {
	if s.isNull() {
		return nil
	}
	raw, _ := s.str()
	return raw
}

// objType reads an object, or null, and returns its raw "type".
func (s *scanner) objType() []byte {
	if s.isNull() || !s.expect('{') {
		return nil
	}
	var typ []byte
	for first := true; ; {
		k := s.nextKey(&first)
		if k == nil {
			return typ
		}
		if string(k) == "type" {
			typ = s.optStr()
		} else {
			s.skip()
		}
	}
}

// scanRespEvent reads the fields the checks need from one event's data. It
// reports false when data is not a JSON object.
func scanRespEvent(data []byte, s *scanner, out *respEventFields) bool {
	*s = scanner{b: data, buf: s.buf}
	out.reset()
	if !s.expect('{') {
		return false
	}
	for first := true; ; {
		key := s.nextKey(&first)
		if key == nil {
			break
		}
		switch string(key) {
		case "type":
			out.Type = s.optStr()
		case "sequence_number":
			if c := s.peek(); c >= '0' && c <= '9' {
				out.Seq, out.HasSeq = s.num(), true
			} else {
				s.skip()
			}
		case "delta":
			if s.peek() == '"' {
				out.Delta, out.HasDelta = append(out.Delta[:0], s.decodedStr()...), true
			} else {
				s.skip()
			}
		case "text":
			if s.peek() == '"' {
				out.Text, out.HasText = append(out.Text[:0], s.decodedStr()...), true
			} else {
				s.skip()
			}
		case "item":
			out.ItemType = s.objType()
		case "part":
			out.PartType = s.objType()
		case "response":
			s.scanResponse(out)
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

// scanResponse reads a response object (or null).
func (s *scanner) scanResponse(out *respEventFields) {
	if s.isNull() || !s.expect('{') {
		return
	}
	out.Resp = true
	for first := true; ; {
		k := s.nextKey(&first)
		if k == nil {
			return
		}
		switch string(k) {
		case "id":
			out.RespID = s.optStr()
		case "status":
			out.Status = s.optStr()
		case "output":
			s.scanOutput(out)
		case "usage":
			if s.isNull() || !s.expect('{') {
				break
			}
			out.HasUsage = true
			for f := true; ; {
				uk := s.nextKey(&f)
				if uk == nil {
					break
				}
				if string(uk) == "output_tokens" {
					out.OutputTokens = s.num()
				} else {
					s.skip()
				}
			}
		default:
			s.skip()
		}
		if s.bad {
			return
		}
	}
}

// scanOutput reads a response's output items and keeps the text of the
// output_text parts of its message items. Keys come in any order: an item's
// or a part's text is taken back when its type turns out to be another.
func (s *scanner) scanOutput(out *respEventFields) {
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
		mark := len(out.OutputText)
		var typ []byte
		for f := true; ; {
			k := s.nextKey(&f)
			if k == nil {
				break
			}
			switch string(k) {
			case "type":
				typ = s.optStr()
			case "content":
				s.scanParts(out)
			default:
				s.skip()
			}
			if s.bad {
				return
			}
		}
		if string(typ) != "message" {
			out.OutputText = out.OutputText[:mark]
		}
	}
}

// scanParts reads a message's content parts, keeping output_text texts.
func (s *scanner) scanParts(out *respEventFields) {
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
		mark := len(out.OutputText)
		var typ []byte
		for f := true; ; {
			k := s.nextKey(&f)
			if k == nil {
				break
			}
			switch {
			case string(k) == "type":
				typ = s.optStr()
			case string(k) == "text" && s.peek() == '"':
				out.OutputText = append(out.OutputText, s.decodedStr()...)
			default:
				s.skip()
			}
			if s.bad {
				return
			}
		}
		if string(typ) != "output_text" {
			out.OutputText = out.OutputText[:mark]
		}
	}
}
