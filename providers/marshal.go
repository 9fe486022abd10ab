package providers

import (
	"bytes"
	stdjson "encoding/json"

	"github.com/xroute/xroute/internal/jsontext"
)

// MarshalRequest is encoding/json's Marshal of r, byte for byte, with the
// messages written by hand.
//
// Why: encoding/json compacts again whatever a MarshalJSON method returns,
// and every message's Content has one (it is a string or an array). An
// agent's translated turn is hundreds of kilobytes of message text, so that
// second pass was a third of the Messages ingress's Translate. The rest of
// the request (tools, options) still goes through encoding/json, and
// FuzzMarshalRequestMatchesStd holds the whole to its output.
func MarshalRequest(r *OpenAIRequest) ([]byte, error) {
	rest := *r
	rest.Messages = nil
	tail, err := stdjson.Marshal(&rest)
	if err != nil {
		return nil, err
	}
	// The struct's first fields are model and messages: tail starts
	// {"model":"…","messages":null.
	head := jsontext.AppendString([]byte(`{"model":`), r.Model)
	const null = `,"messages":null`
	if !bytes.HasPrefix(tail, head) || !bytes.HasPrefix(tail[len(head):], []byte(null)) {
		return stdjson.Marshal(r) // not reached while the fields keep their order
	}
	// Sized once, with room for escapes: a buffer regrown as it fills
	// copies an agent's turn several times over (it was most of this
	// function's time).
	size := len(tail)
	for i := range r.Messages {
		m := &r.Messages[i]
		size += len(m.Content.Text) + len(m.Name) + len(m.ToolCallID) + 64
		for j := range m.Content.Parts {
			p := &m.Content.Parts[j]
			size += len(p.Text) + 64
			if p.ImageURL != nil {
				size += len(p.ImageURL.URL)
			}
			if p.File != nil {
				size += len(p.File.FileData)
			}
		}
		for j := range m.ToolCalls {
			tc := &m.ToolCalls[j]
			size += len(tc.ID) + len(tc.Function.Name) + len(tc.Function.Arguments) + 64
		}
	}
	out := make([]byte, 0, size+size/4)
	out = append(out, head...)
	out = append(out, `,"messages":`...)
	if out, err = AppendMessages(out, r.Messages); err != nil {
		return nil, err
	}
	return append(out, tail[len(head)+len(null):]...), nil
}

// AppendMessages appends msgs as encoding/json writes them.
func AppendMessages(b []byte, msgs []Message) ([]byte, error) {
	if msgs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	var err error
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		m := &msgs[i]
		b = append(b, `{"role":`...)
		b = jsontext.AppendString(b, m.Role)
		b = append(b, `,"content":`...)
		if b, err = m.Content.appendJSON(b); err != nil {
			return nil, err
		}
		if m.Name != "" {
			b = append(b, `,"name":`...)
			b = jsontext.AppendString(b, m.Name)
		}
		if len(m.ToolCalls) > 0 {
			b = append(b, `,"tool_calls":[`...)
			for j := range m.ToolCalls {
				tc := &m.ToolCalls[j]
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"id":`...)
				b = jsontext.AppendString(b, tc.ID)
				b = append(b, `,"type":`...)
				b = jsontext.AppendString(b, tc.Type)
				b = append(b, `,"function":{"name":`...)
				b = jsontext.AppendString(b, tc.Function.Name)
				b = append(b, `,"arguments":`...)
				b = jsontext.AppendString(b, tc.Function.Arguments)
				b = append(b, "}}"...)
			}
			b = append(b, ']')
		}
		if m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = jsontext.AppendString(b, m.ToolCallID)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendJSON appends what MarshalJSON returns, as encoding/json writes it
// in a message.
func (c *Content) appendJSON(b []byte) ([]byte, error) {
	switch {
	case c.IsParts:
		// Rare and short beside text (images are URLs or ids): encoding/json
		// writes the parts, a plain struct, without a second pass.
		p, err := stdjson.Marshal(c.Parts)
		if err != nil {
			return nil, err
		}
		return append(b, p...), nil
	case c.Text == "" && !c.Explicit:
		return append(b, "null"...), nil
	}
	return jsontext.AppendString(b, c.Text), nil
}
