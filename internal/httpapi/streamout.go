package httpapi

import (
	"errors"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// streamOut is the caller's end of a stream. Every write (an event, a
// keep-alive) is flushed at once and must complete within the server's
// write timeout: a caller that stops reading is cut instead of holding
// the stream, its upstream call and its credit hold until the request
// deadline. Once the stream relays, a keep-alive goes out whenever the
// caller has heard nothing for the keep-alive interval; it comes from a
// timer, so writes are serialised, and the relay's hot path pays a mutex
// per chunk, nothing more: the connection's write deadline is moved only
// when less than 7/8 of the write timeout is left of it (moving it resets
// a runtime timer, a few per cent of a stream's CPU when done per chunk),
// so a write that cannot complete is cut after 7/8 to all of the timeout.
type streamOut struct {
	c       *gin.Context
	rc      *http.ResponseController // of the connection's own writer: its Flush reports errors
	timeout time.Duration

	mu       sync.Mutex
	started  bool
	err      error // the first failed write: nothing more goes out
	timedOut bool  // err is the write timeout
	closed   bool
	// suspended: no keep-alive goes out (suspend) until keepAlive
	// resumes them.
	suspended bool
	last      time.Time // of the last write
	deadline  time.Time // the connection's write deadline, as last set
	unsent    bool      // written, not yet flushed (send with flush false)
	ping      []byte
	every     time.Duration
	timer     *time.Timer
}

func (s *modelAPI) newStreamOut(c *gin.Context) *streamOut {
	return &streamOut{c: c, rc: http.NewResponseController(unwrapWriter(c.Writer)), timeout: s.cfg.WriteTimeout}
}

// unwrapWriter is the writer under gin's, whose Flush reports errors
// (gin's swallows them).
func unwrapWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// start writes the stream's headers, once (the route's when known).
func (o *streamOut) start(info *requestInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.startLocked(info)
}

func (o *streamOut) startLocked(info *requestInfo) {
	if !o.started {
		o.started = true
		startStream(o.c, info)
	}
}

// write sends b and flushes it within the write timeout. After a failed
// write every later one fails at once with the same error.
func (o *streamOut) write(b []byte) error { return o.send(b, true) }

// send writes b, and flushes it unless flush is false: then it leaves
// with the next flush (flushPending, called by the relay before it waits
// for the upstream, or the next write that flushes).
func (o *streamOut) send(b []byte, flush bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writeLocked(b, flush)
}

// flushPending flushes what send left unflushed. A failure is kept for
// the next write to report.
func (o *streamOut) flushPending() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.unsent {
		o.writeLocked(nil, true)
	}
}

func (o *streamOut) writeLocked(b []byte, flush bool) error {
	if o.err != nil {
		return o.err
	}
	now := time.Now()
	if o.timeout > 0 && o.deadline.Sub(now) < o.timeout-o.timeout/8 {
		// Not supported under a test recorder: no deadline there.
		o.deadline = now.Add(o.timeout)
		_ = o.rc.SetWriteDeadline(o.deadline)
	}
	var err error
	if len(b) > 0 {
		_, err = o.c.Writer.Write(b)
	}
	switch {
	case err != nil:
	case flush:
		err = o.rc.Flush()
		o.unsent = false
	default:
		o.unsent = true
	}
	if err != nil {
		o.err = err
		o.timedOut = errors.Is(err, os.ErrDeadlineExceeded)
	}
	o.last = now
	return err
}

// failed reports the write error that ended the stream, and whether it
// was the write timeout (the caller stopped reading) rather than a caller
// that hung up.
func (o *streamOut) failed() (err error, timedOut bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err, o.timedOut
}

// keepAlive starts sending ping after every interval of silence toward
// the caller, until close or suspend; called again after suspend, it
// resumes them. A ping before start starts the stream, without route
// headers (serveStream arms the keep-alives before routing, which may
// wait a minute for a model's first byte).
func (o *streamOut) keepAlive(ping []byte, every time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || every <= 0 {
		return
	}
	o.ping, o.every, o.suspended = ping, every, false
	if o.last.IsZero() {
		o.last = time.Now()
	}
	if o.timer == nil {
		o.timer = time.AfterFunc(every, o.tick)
		return
	}
	o.timer.Reset(max(every-time.Since(o.last), 0))
}

// suspend stops the keep-alives until keepAlive resumes them, so that the
// handler alone writes (an error answer when routing failed before any
// ping went out, the route's hook), and reports whether the stream
// started: a ping went out.
func (o *streamOut) suspend() (started bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.suspended = true
	if o.timer != nil {
		o.timer.Stop()
	}
	return o.started
}

func (o *streamOut) tick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.suspended || o.err != nil {
		return
	}
	quiet := time.Since(o.last)
	if quiet >= o.every {
		o.startLocked(nil) // a ping while routing: no route headers yet
		o.writeLocked(o.ping, true)
		quiet = 0
	}
	o.timer.Reset(o.every - quiet)
}

// close stops the keep-alives; nothing is written after it returns (the
// handler may end).
func (o *streamOut) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
	}
}

// setWriteDeadline bounds the write of a non-streamed answer (an answer
// of 32 MiB to a caller that does not read). The next request on the
// connection clears it (begin).
func (s *modelAPI) setWriteDeadline(c *gin.Context) {
	if s.cfg.WriteTimeout > 0 {
		_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
}
