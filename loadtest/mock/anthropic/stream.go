package anthropic

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

// eventsBeforeFault is how many events (pings aside) a stream sends before a
// reset or an error event: message_start, content_block_start and the first
// content delta.
const eventsBeforeFault = 3

var overloadedEvent = []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")

// eventWriter writes the SSE events of one stream on a mock.Stream.
type eventWriter struct {
	*mock.Stream
	buf []byte
}

// event sends "event: name" with data (any JSON value) carrying tokens;
// false means stop. Pings do not count as events.
func (sw *eventWriter) event(name string, data any, tokens int) bool {
	js, _ := json.Marshal(data)
	b := append(sw.buf[:0], "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, js...)
	b = append(b, "\n\n"...)
	sw.buf = b
	if name == "ping" {
		return sw.Ping(b)
	}
	return sw.Send(b, tokens)
}

type (
	evMessageStart struct {
		Type    string  `json:"type"`
		Message message `json:"message"`
	}
	evBlockStart struct {
		Type         string   `json:"type"`
		Index        int      `json:"index"`
		ContentBlock outBlock `json:"content_block"`
	}
	evDelta struct {
		Type        string  `json:"type"`
		Text        *string `json:"text,omitempty"`
		Thinking    *string `json:"thinking,omitempty"`
		Signature   *string `json:"signature,omitempty"`
		PartialJSON *string `json:"partial_json,omitempty"`
	}
	evBlockDelta struct {
		Type  string  `json:"type"`
		Index int     `json:"index"`
		Delta evDelta `json:"delta"`
	}
	evBlockStop struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}
	evMessageDelta struct {
		Type  string `json:"type"`
		Delta struct {
			StopReason   *string         `json:"stop_reason"`
			StopSequence *string         `json:"stop_sequence"`
			StopDetails  json.RawMessage `json:"stop_details"`
		} `json:"delta"`
		ContextManagement *contextManagement `json:"context_management,omitempty"`
		Usage             usage              `json:"usage"`
	}
	evType struct {
		Type string `json:"type"`
	}
)

var (
	evPing        = evType{Type: "ping"}
	evMessageStop = evType{Type: "message_stop"}
	emptyInput    = json.RawMessage(`{}`)
)

func (s *Server) stream(w http.ResponseWriter, r *http.Request, st *state, p *plan, reset, streamErr bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Request-Id", s.requestID())
	w.WriteHeader(http.StatusOK)

	sw := &eventWriter{Stream: s.core.Stream(w, r, st.cfg.TokensPerSec, p.prompt), buf: make([]byte, 0, 512)}
	sw.FaultAfter(eventsBeforeFault, reset, streamErr)
	s.streamBody(sw, st, p)
	sw.Finish(overloadedEvent)
}

// streamBody sends the events of p in Anthropic's order; false when the
// stream must stop early.
func (s *Server) streamBody(sw *eventWriter, st *state, p *plan) bool {
	msg := p.message(s.newID("msg_01", 22))
	msg.Content, msg.StopReason, msg.StopSequence = []outBlock{}, nil, nil
	msg.Usage = p.usage(1, 0) // the real API reports a first output token here
	if !sw.event("message_start", evMessageStart{Type: "message_start", Message: msg}, 0) {
		return false
	}
	chunk := st.cfg.ChunkTokens
	pinged := false
	thinking := 0
	for index := range p.parts {
		o := &p.parts[index]
		// content_block_start carries the block with its fields empty.
		var start outBlock
		empty := ""
		switch o.typ {
		case "thinking":
			start = outBlock{Type: "thinking", Thinking: &empty, Signature: &empty}
		case "tool_use":
			start = outBlock{Type: "tool_use", ID: o.call.ID, Name: o.call.Name, Input: emptyInput}
		default:
			start = outBlock{Type: "text", Text: &empty}
		}
		if !sw.event("content_block_start", evBlockStart{Type: "content_block_start", Index: index, ContentBlock: start}, 0) {
			return false
		}
		if !pinged {
			pinged = true
			if !sw.event("ping", evPing, 0) {
				return false
			}
		}
		delta := func(d evDelta, tokens int) bool {
			return sw.event("content_block_delta", evBlockDelta{Type: "content_block_delta", Index: index, Delta: d}, tokens)
		}
		switch o.typ {
		case "thinking":
			// Omitted thinking sends only the signature, which then carries
			// the thinking's tokens.
			sigTokens := o.tokens
			if o.shown {
				sigTokens = 0
				for i := 0; i < len(o.pieces); i += chunk {
					j := min(i+chunk, len(o.pieces))
					t := strings.Join(o.pieces[i:j], "")
					if !delta(evDelta{Type: "thinking_delta", Thinking: &t}, j-i) {
						return false
					}
				}
			}
			sig := o.sig
			if !delta(evDelta{Type: "signature_delta", Signature: &sig}, sigTokens) {
				return false
			}
			thinking += o.tokens
		case "tool_use":
			// The real API opens every tool input with an empty fragment;
			// it carries the token of the tool's name.
			c := o.call
			if !delta(evDelta{Type: "input_json_delta", PartialJSON: &empty}, 1) {
				return false
			}
			from := 0
			for i := 0; i < len(c.Frags); i += chunk {
				j := min(i+chunk, len(c.Frags))
				to := c.Frags[j-1]
				frag := c.Args[from:to]
				if !delta(evDelta{Type: "input_json_delta", PartialJSON: &frag}, j-i) {
					return false
				}
				from = to
			}
		default:
			for i := 0; i < len(o.pieces); i += chunk {
				j := min(i+chunk, len(o.pieces))
				t := strings.Join(o.pieces[i:j], "")
				if !delta(evDelta{Type: "text_delta", Text: &t}, j-i) {
					return false
				}
			}
		}
		if !sw.event("content_block_stop", evBlockStop{Type: "content_block_stop", Index: index}, 0) {
			return false
		}
	}
	if !pinged && !sw.event("ping", evPing, 0) {
		return false
	}
	var md evMessageDelta
	md.Type = "message_delta"
	md.Delta.StopReason, md.Delta.StopSequence, md.Delta.StopDetails = nullable(p.stopReason), nullable(p.stopSequence), jsonNull
	md.ContextManagement = p.contextManagement()
	md.Usage = p.deltaUsage(sw.Sent(), thinking)
	if !sw.event("message_delta", md, 0) {
		return false
	}
	return sw.event("message_stop", evMessageStop, 0)
}
