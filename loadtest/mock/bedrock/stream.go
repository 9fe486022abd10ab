package bedrock

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

type outcome int

const (
	outcomeDone outcome = iota
	outcomeCanceled
	outcomeCut
	outcomeError
)

// eventsBeforeFault is how many events a stream sends before a reset or a
// mid-stream exception (messageStart and the first delta).
const eventsBeforeFault = 2

// padding imitates the "p" field Bedrock adds to stream events so that
// their sizes do not reveal the content.
const padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// eventWriter writes the event-stream messages of one stream.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	ctx context.Context
	enc *eventstream.Encoder
	buf bytes.Buffer

	start    time.Time
	perToken time.Duration
	timer    *time.Timer

	events, sent int
	faultAfter   int
	fault        outcome
	outcome      outcome
}

func (ew *eventWriter) pace(tokens int) bool {
	if ew.perToken > 0 && tokens > 0 {
		d := time.Until(ew.start.Add(time.Duration(ew.sent+tokens) * ew.perToken))
		if d > 0 {
			if ew.timer == nil {
				ew.timer = time.NewTimer(d)
			} else {
				ew.timer.Reset(d)
			}
			select {
			case <-ew.timer.C:
			case <-ew.ctx.Done():
				return false
			}
		}
	}
	return ew.ctx.Err() == nil
}

// write encodes and flushes one message.
func (ew *eventWriter) write(msg eventstream.Message) bool {
	ew.buf.Reset()
	if err := ew.enc.Encode(&ew.buf, msg); err != nil {
		ew.outcome = outcomeCanceled
		return false
	}
	_, err := ew.w.Write(ew.buf.Bytes())
	if err == nil {
		err = ew.rc.Flush()
	}
	if err != nil {
		ew.outcome = outcomeCanceled
		return false
	}
	return true
}

// emit sends one event carrying tokens; false means stop (see outcome).
// payload is a JSON object; the padding field is added to it.
func (ew *eventWriter) emit(eventType string, payload map[string]any, tokens int) bool {
	if !ew.pace(tokens) {
		ew.outcome = outcomeCanceled
		return false
	}
	payload["p"] = padding[:1+ew.events%len(padding)]
	body, _ := json.Marshal(payload)
	var msg eventstream.Message
	msg.Headers.Set(":event-type", eventstream.StringValue(eventType))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Headers.Set(":message-type", eventstream.StringValue("event"))
	msg.Payload = body
	if !ew.write(msg) {
		return false
	}
	ew.events++
	ew.sent += tokens
	if ew.faultAfter > 0 && ew.events >= ew.faultAfter {
		ew.outcome = ew.fault
		return false
	}
	return true
}

// exception sends an exception message (the stream ends after it).
func (ew *eventWriter) exception(exceptionType string, payload any) {
	body, _ := json.Marshal(payload)
	var msg eventstream.Message
	msg.Headers.Set(":exception-type", eventstream.StringValue(exceptionType))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
	msg.Payload = body
	ew.write(msg)
}

func (s *Server) streamConverse(w http.ResponseWriter, r *http.Request, start time.Time, st *state, p *plan, reset, streamErr bool) {
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	h.Set("X-Amzn-Requestid", s.requestID())
	w.WriteHeader(http.StatusOK)
	s.stats.streams.Add(1)
	s.stats.promptTokens.Add(int64(p.input + p.cacheRead))

	ew := &eventWriter{w: w, rc: http.NewResponseController(w), ctx: r.Context(), enc: eventstream.NewEncoder(), start: time.Now()}
	if st.cfg.TokensPerSec > 0 {
		ew.perToken = time.Duration(float64(time.Second) / st.cfg.TokensPerSec)
	}
	switch {
	case reset:
		ew.faultAfter, ew.fault = eventsBeforeFault, outcomeCut
	case streamErr:
		ew.faultAfter, ew.fault = eventsBeforeFault, outcomeError
	}
	defer func() {
		if ew.timer != nil {
			ew.timer.Stop()
		}
		s.stats.completionTokens.Add(int64(ew.sent))
		switch ew.outcome {
		case outcomeDone:
			s.stats.completed.Add(1)
		case outcomeCanceled:
			s.stats.canceled.Add(1)
		case outcomeCut:
			s.cut(w)
		case outcomeError:
			ew.exception("modelStreamErrorException", map[string]any{
				"message":            "The model stream failed. Try your request again.",
				"originalStatusCode": 500,
				"originalMessage":    "mock: stream-error forced by directive",
			})
		}
	}()

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
		start := map[string]any{"toolUse": map[string]any{"toolUseId": c.id, "name": c.name}}
		if !ew.emit("contentBlockStart", map[string]any{"contentBlockIndex": block, "start": start}, 1) {
			return
		}
		from := 0
		for _, end := range c.frags {
			delta := map[string]any{"toolUse": map[string]any{"input": c.args[from:end]}}
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
