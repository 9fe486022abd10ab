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
			StopReason   *string `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		} `json:"delta"`
		Usage struct {
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
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

	sw := &eventWriter{Stream: s.core.Stream(w, r, st.cfg.TokensPerSec, p.prompt()), buf: make([]byte, 0, 512)}
	sw.FaultAfter(eventsBeforeFault, reset, streamErr)
	s.streamBody(sw, st, p)
	sw.Finish(overloadedEvent)
}

// streamBody sends the events of p in Anthropic's order; false when the
// stream must stop early.
func (s *Server) streamBody(sw *eventWriter, st *state, p *plan) bool {
	msg := p.message(s.newID("msg_01", 22))
	msg.Content, msg.StopReason, msg.StopSequence = []outBlock{}, nil, nil
	msg.Usage = p.usage(1) // the real API reports a first output token here
	if !sw.event("message_start", evMessageStart{Type: "message_start", Message: msg}, 0) {
		return false
	}
	chunk := st.cfg.ChunkTokens
	index := 0
	pinged := false
	start := func(b outBlock) bool {
		if !sw.event("content_block_start", evBlockStart{Type: "content_block_start", Index: index, ContentBlock: b}, 0) {
			return false
		}
		if !pinged {
			pinged = true
			return sw.event("ping", evPing, 0)
		}
		return true
	}
	stop := func() bool {
		ok := sw.event("content_block_stop", evBlockStop{Type: "content_block_stop", Index: index}, 0)
		index++
		return ok
	}

	if len(p.calls) == 0 || p.preamble {
		empty := ""
		if !start(outBlock{Type: "text", Text: &empty}) {
			return false
		}
		for i := 0; i < len(p.text); i += chunk {
			j := min(i+chunk, len(p.text))
			t := strings.Join(p.text[i:j], "")
			if !sw.event("content_block_delta", evBlockDelta{Type: "content_block_delta", Index: index, Delta: evDelta{Type: "text_delta", Text: &t}}, j-i) {
				return false
			}
		}
		if !stop() {
			return false
		}
	}
	for ci := range p.calls {
		c := &p.calls[ci]
		if !start(outBlock{Type: "tool_use", ID: c.ID, Name: c.Name, Input: emptyInput}) {
			return false
		}
		// The real API opens every tool input with an empty fragment.
		empty := ""
		if !sw.event("content_block_delta", evBlockDelta{Type: "content_block_delta", Index: index, Delta: evDelta{Type: "input_json_delta", PartialJSON: &empty}}, 1) {
			return false
		}
		from := 0
		for i := 0; i < len(c.Frags); i += chunk {
			j := min(i+chunk, len(c.Frags))
			to := c.Frags[j-1]
			frag := c.Args[from:to]
			if !sw.event("content_block_delta", evBlockDelta{Type: "content_block_delta", Index: index, Delta: evDelta{Type: "input_json_delta", PartialJSON: &frag}}, j-i) {
				return false
			}
			from = to
		}
		if !stop() {
			return false
		}
	}
	var md evMessageDelta
	md.Type = "message_delta"
	md.Delta.StopReason, md.Delta.StopSequence = nullable(p.stopReason), nullable(p.stopSequence)
	md.Usage.OutputTokens = sw.Sent()
	if !sw.event("message_delta", md, 0) {
		return false
	}
	return sw.event("message_stop", evMessageStop, 0)
}
