package loadtest

// msgEventFields is what the stream checks read from one Anthropic
// Messages stream event, by the allocation-free scanner of chunkscan.go
// (the tests compare it with encoding/json). Raw slices point into the
// event's data; decoded ones into the struct's own buffers.
type msgEventFields struct {
	Type      []byte // raw "type"
	Index     int    // "index" (content_block_start, _delta, _stop)
	HasIndex  bool
	BlockType []byte // raw content_block.type (content_block_start)
	DeltaType []byte // raw delta.type (content_block_delta)
	Text      []byte // decoded delta.text (text_delta)
	HasText   bool
	// StopReason is the raw delta.stop_reason (message_delta); nil when
	// null or absent.
	StopReason   []byte
	HasUsage     bool // a top-level usage object with output_tokens (message_delta)
	OutputTokens int  // usage.output_tokens
	HasError     bool // a non-null top-level "error"
}

func (f *msgEventFields) reset() {
	*f = msgEventFields{Text: f.Text[:0]}
}

// scanMsgEvent reads the fields the checks need from one event's data. It
// reports false when data is not a JSON object.
func scanMsgEvent(data []byte, s *scanner, out *msgEventFields) bool {
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
		case "index":
			if c := s.peek(); c >= '0' && c <= '9' {
				out.Index, out.HasIndex = s.num(), true
			} else {
				s.skip()
			}
		case "content_block":
			out.BlockType = s.objType()
		case "delta":
			s.scanMsgDelta(out)
		case "usage":
			if s.isNull() || !s.expect('{') {
				break
			}
			for f := true; ; {
				uk := s.nextKey(&f)
				if uk == nil {
					break
				}
				if string(uk) == "output_tokens" && s.peek() >= '0' && s.peek() <= '9' {
					out.OutputTokens, out.HasUsage = s.num(), true
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

// scanMsgDelta reads the delta object of a content_block_delta (type,
// text) or of a message_delta (stop_reason); its keys come in any order.
func (s *scanner) scanMsgDelta(out *msgEventFields) {
	if s.isNull() || !s.expect('{') {
		return
	}
	for first := true; ; {
		k := s.nextKey(&first)
		if k == nil {
			return
		}
		switch {
		case string(k) == "type":
			out.DeltaType = s.optStr()
		case string(k) == "text" && s.peek() == '"':
			out.Text, out.HasText = append(out.Text[:0], s.decodedStr()...), true
		case string(k) == "stop_reason":
			out.StopReason = s.optStr()
		default:
			s.skip()
		}
		if s.bad {
			return
		}
	}
}
