package openai

import (
	"bytes"
	"errors"
	"io"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// responsesStream reads a native Responses API stream: named events whose
// data carries its own type, ending with response.completed,
// response.incomplete or response.failed (there is no [DONE]). Each event
// is relayed as it is (Chunk.Native); the adapter reads only what xroute
// needs: usage from the final event, and the delivered text, arguments and
// reasoning as Events, to meter a stream that breaks before its usage.
type responsesStream struct {
	*stream
	sent    bool  // an event went to the caller: errors are relayed
	pending error // the failure behind an error event already returned
}

// Responses API events xroute looks into.
const (
	evCompleted  = "response.completed"
	evIncomplete = "response.incomplete"
	evFailed     = "response.failed"
	evError      = "error"
)

func (s *responsesStream) Recv() (providers.Chunk, error) {
	if s.pending != nil {
		err := s.pending
		s.pending = nil
		return providers.Chunk{}, err
	}
	if s.done {
		return providers.Chunk{}, io.EOF
	}
	c, err := s.next()
	if err == nil {
		s.sent = true
	}
	return c, err
}

func (s *responsesStream) next() (providers.Chunk, error) {
	name := s.a.name
	for {
		ev, err := s.r.Next()
		if err != nil {
			s.done = true
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the upstream hung up before its final event
			}
			return providers.Chunk{}, &providers.Error{Provider: name, MidStream: true, Message: "upstream stream broke", Err: err}
		}
		data := bytes.TrimSpace(ev.Data)
		if len(data) == 0 || bytes.Equal(data, doneMarker) {
			continue
		}
		if !gjson.ValidBytes(data) {
			s.done = true
			return providers.Chunk{}, providers.Malformed(name, true, "upstream sent a malformed stream", errors.New("event is not JSON"))
		}
		typ := ev.Name
		if typ == "" {
			typ = gjson.GetBytes(data, "type").Str
		}
		c := providers.Chunk{Data: data, Native: true, Name: typ}
		switch typ {
		case evError:
			s.done = true
			e := gjson.ParseBytes(data)
			if n := e.Get("error"); n.IsObject() {
				e = n // the live API nests the error object
			}
			pe := s.a.opts.ErrorFromJSON(name, 0, e)
			pe.MidStream = true
			if !s.sent {
				return providers.Chunk{}, pe // nothing sent yet: another deployment may serve it
			}
			// The upstream's own error event goes to the caller as it is
			// (the SDKs raise on it), then the stream ends with the failure.
			s.pending = pe
			return c, nil
		case evCompleted, evIncomplete, evFailed:
			// The final event: nothing useful follows it, and some clients
			// hang up right after it (Codex does).
			s.done = true
			if u, ok := parseResponsesUsage(gjson.GetBytes(data, "response.usage")); ok {
				c.Usage = &u
				c.Events = []providers.Event{{Kind: providers.EventUsage}}
			}
		case "response.output_text.delta":
			c.Events = deltaEvent(providers.EventText, data)
		case "response.refusal.delta":
			c.Events = deltaEvent(providers.EventRefusal, data)
		case "response.function_call_arguments.delta", "response.custom_tool_call_input.delta":
			c.Events = deltaEvent(providers.EventToolArgs, data)
		case "response.reasoning_summary_text.delta", "response.reasoning_text.delta":
			c.Events = deltaEvent(providers.EventReasoning, data)
		case "response.output_item.added":
			if n := gjson.GetBytes(data, "item.name"); n.Type == gjson.String {
				c.Events = []providers.Event{{Kind: providers.EventToolStart, Name: n.Str}}
			}
		}
		return c, nil
	}
}

func deltaEvent(kind providers.EventKind, data []byte) []providers.Event {
	if d := gjson.GetBytes(data, "delta"); d.Type == gjson.String && d.Str != "" {
		return []providers.Event{{Kind: kind, Text: d.Str}}
	}
	return nil
}

// parseResponsesUsage reads the Responses API's usage object.
func parseResponsesUsage(u gjson.Result) (providers.Usage, bool) { return usageAt(u, responsesUsage) }
