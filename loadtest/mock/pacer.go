package mock

import (
	"context"
	"net/http"
	"time"
)

// Pacer spaces the tokens of a stream at a rate (Config.TokensPerSec)
// counted from its start. The zero rate sends as fast as possible.
type Pacer struct {
	start    time.Time
	perToken time.Duration // 0: no pacing
	timer    *time.Timer
}

// NewPacer returns a Pacer for tokensPerSec starting now.
func NewPacer(tokensPerSec float64) Pacer {
	p := Pacer{start: time.Now()}
	if tokensPerSec > 0 {
		p.perToken = time.Duration(float64(time.Second) / tokensPerSec)
	}
	return p
}

// Wait blocks until n tokens more than sent are due; it reports false when
// ctx is done.
func (p *Pacer) Wait(ctx context.Context, sent, n int) bool {
	if p.perToken > 0 && n > 0 {
		d := time.Until(p.start.Add(time.Duration(sent+n) * p.perToken))
		if d > 0 {
			if p.timer == nil {
				p.timer = time.NewTimer(d)
			} else {
				p.timer.Reset(d)
			}
			select {
			case <-p.timer.C:
				return true
			case <-ctx.Done():
				return false
			}
		}
	}
	return ctx.Err() == nil
}

// Stop releases the timer.
func (p *Pacer) Stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

type outcome int

const (
	outcomeDone outcome = iota
	outcomeCanceled
	outcomeCut
	outcomeError
	outcomeStall
	outcomeMalformed
)

// malformedEvent is a stream event whose data is cut off mid-JSON.
var malformedEvent = []byte("data: {\"id\":\"mock\",\"choices\":[{\"delta\":{\"content\":\"trunc\n\n")

// Stream writes the events of one streamed answer in any wire format: it
// paces them (Pacer), flushes each one, counts the tokens sent, and can
// fail on purpose after a number of events (FaultAfter). Finish counts
// the stream's end in the Core's Stats.
type Stream struct {
	core  *Core
	w     http.ResponseWriter
	rc    *http.ResponseController
	ctx   context.Context
	pacer Pacer

	events, sent int
	faultAt      int // the fault replaces the event after this many; -1 = none
	fault        outcome
	outcome      outcome
}

// Stream starts a stream whose 200 and headers are written: it counts it
// in Streams and its prompt tokens in PromptTokens, and paces it at
// tokensPerSec.
func (c *Core) Stream(w http.ResponseWriter, r *http.Request, tokensPerSec float64, prompt int) *Stream {
	c.Streams.Add(1)
	c.PromptTokens.Add(int64(prompt))
	return &Stream{core: c, w: w, rc: http.NewResponseController(w), ctx: r.Context(), pacer: NewPacer(tokensPerSec), faultAt: -1}
}

// FaultAfter makes the stream stop after n events (n may be 0): Finish then
// cuts the connection when reset is true, else sends its error event when
// streamErr is true. With neither it does nothing.
func (s *Stream) FaultAfter(n int, reset, streamErr bool) {
	switch {
	case reset:
		s.faultAt, s.fault = n, outcomeCut
	case streamErr:
		s.faultAt, s.fault = n, outcomeError
	}
}

// Fault is FaultAfter with the directives' faults too: a stall (after
// d.Stall events, its own count) or a malformed event (after n) win over
// a reset or an error event.
func (s *Stream) Fault(n int, reset bool, d *Directives) {
	switch {
	case d.HasStall:
		s.faultAt, s.fault = d.Stall, outcomeStall
	case d.Malformed:
		s.faultAt, s.fault = n, outcomeMalformed
	default:
		s.FaultAfter(n, reset, d.StreamError)
	}
}

// Send paces the tokens that event b carries, writes it and flushes. It
// reports false when the stream must stop: the client left, or the fault
// is due.
func (s *Stream) Send(b []byte, tokens int) bool {
	if s.events == s.faultAt {
		s.outcome = s.fault
		return false
	}
	if !s.write(b, tokens) {
		return false
	}
	s.events++
	return true
}

// Ping sends b like Send, but it is not an event: it carries no tokens and
// neither counts towards nor triggers the fault (Anthropic's ping).
func (s *Stream) Ping(b []byte) bool { return s.write(b, 0) }

func (s *Stream) write(b []byte, tokens int) bool {
	if !s.pacer.Wait(s.ctx, s.sent, tokens) {
		s.outcome = outcomeCanceled
		return false
	}
	_, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.outcome = outcomeCanceled
		return false
	}
	s.sent += tokens
	return true
}

// Events is the number of events sent.
func (s *Stream) Events() int { return s.events }

// Sent is the number of tokens sent.
func (s *Stream) Sent() int { return s.sent }

// Cancel marks the stream as given up by the client.
func (s *Stream) Cancel() { s.outcome = outcomeCanceled }

// Finish ends the stream's bookkeeping: it counts the tokens sent in
// CompletionTokens and the end in Completed or Canceled; for a fault, it
// cuts the connection (Resets) or writes and flushes errEvent.
func (s *Stream) Finish(errEvent []byte) {
	s.pacer.Stop()
	s.core.CompletionTokens.Add(int64(s.sent))
	switch s.outcome {
	case outcomeDone:
		s.core.Completed.Add(1)
	case outcomeCanceled:
		s.core.Canceled.Add(1)
	case outcomeCut:
		s.core.Cut(s.w)
	case outcomeError:
		if _, err := s.w.Write(errEvent); err == nil {
			_ = s.rc.Flush()
		}
	case outcomeMalformed:
		if _, err := s.w.Write(malformedEvent); err == nil {
			_ = s.rc.Flush()
		}
	case outcomeStall:
		// The headers and the events so far are out; then nothing, until
		// the client gives up.
		_ = s.rc.Flush()
		<-s.ctx.Done()
		s.core.Canceled.Add(1)
	}
}
