package bedrock

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/xroute/xroute/loadtest/mock"
)

// eventsBeforeFault is how many events a stream sends before a reset or a
// mid-stream exception (messageStart and the first delta).
const eventsBeforeFault = 2

// padding imitates the "p" field Bedrock adds to stream events so that
// their sizes do not reveal the content.
const padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// eventWriter frames event-stream messages and sends them on a
// mock.Stream.
type eventWriter struct {
	*mock.Stream
	enc *eventstream.Encoder
	buf bytes.Buffer
}

func newEventWriter(st *mock.Stream) *eventWriter {
	return &eventWriter{Stream: st, enc: eventstream.NewEncoder()}
}

// encode frames one message: kind is "event" or "exception", typeHeader
// names its type (":event-type" or ":exception-type"). The bytes are valid
// until the next call.
func (ew *eventWriter) encode(kind, typeHeader, typ string, payload any) []byte {
	body, _ := json.Marshal(payload)
	var msg eventstream.Message
	msg.Headers.Set(typeHeader, eventstream.StringValue(typ))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Headers.Set(":message-type", eventstream.StringValue(kind))
	msg.Payload = body
	ew.buf.Reset()
	_ = ew.enc.Encode(&ew.buf, msg) // fails only for oversized headers
	return ew.buf.Bytes()
}

// emit sends one event carrying tokens; false means stop. payload is a
// JSON object; the padding field is added to it.
func (ew *eventWriter) emit(eventType string, payload map[string]any, tokens int) bool {
	payload["p"] = padding[:1+ew.Events()%len(padding)]
	return ew.Send(ew.encode("event", ":event-type", eventType, payload), tokens)
}

// finish ends the stream (see mock.Stream.Finish); a stream-error ends
// with a modelStreamErrorException.
func (ew *eventWriter) finish() {
	ew.Finish(ew.encode("exception", ":exception-type", "modelStreamErrorException", map[string]any{
		"message":            "The model stream failed. Try your request again.",
		"originalStatusCode": 500,
		"originalMessage":    "mock: stream-error forced by directive",
	}))
}

func (s *Server) streamConverse(w http.ResponseWriter, r *http.Request, start time.Time, st *state, p *plan, reset, streamErr bool) {
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	h.Set("X-Amzn-Requestid", s.requestID())
	w.WriteHeader(http.StatusOK)

	ew := newEventWriter(s.core.Stream(w, r, st.cfg.TokensPerSec, p.input+p.cacheRead+p.cacheWrite))
	ew.FaultAfter(eventsBeforeFault, reset, streamErr)
	defer ew.finish()

	if !ew.emit("messageStart", map[string]any{"role": "assistant"}, 0) {
		return
	}
	block := 0
	if len(p.calls) == 0 || p.preamble {
		chunk := st.cfg.ChunkTokens
		for i := 0; i < len(p.text); i += chunk {
			piece := strings.Join(p.text[i:min(i+chunk, len(p.text))], "")
			if !ew.emit("contentBlockDelta", map[string]any{"contentBlockIndex": block, "delta": map[string]any{"text": piece}}, min(chunk, len(p.text)-i)) {
				return
			}
		}
		if !ew.emit("contentBlockStop", map[string]any{"contentBlockIndex": block}, 0) {
			return
		}
		block++
	}
	for _, c := range p.calls {
		start := map[string]any{"toolUse": map[string]any{"toolUseId": c.ID, "name": c.Name}}
		if !ew.emit("contentBlockStart", map[string]any{"contentBlockIndex": block, "start": start}, 1) {
			return
		}
		from := 0
		for _, end := range c.Frags {
			delta := map[string]any{"toolUse": map[string]any{"input": c.Args[from:end]}}
			if !ew.emit("contentBlockDelta", map[string]any{"contentBlockIndex": block, "delta": delta}, 1) {
				return
			}
			from = end
		}
		if !ew.emit("contentBlockStop", map[string]any{"contentBlockIndex": block}, 0) {
			return
		}
		block++
	}
	if !ew.emit("messageStop", map[string]any{"stopReason": p.stopReason}, 0) {
		return
	}
	ew.emit("metadata", map[string]any{
		"usage":   p.usage(p.outputTokens()),
		"metrics": map[string]any{"latencyMs": time.Since(start).Milliseconds()},
	}, 0)
}
