package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
)

// Capture of request and response bodies, per account, off by default
// (PUT /admin/v1/accounts/{id}/capture). For an account with capture on,
// the request body as received and the answer as sent (a stream's SSE
// text) are handed to a CaptureSink when the request ends; the sink
// redacts them (keys.Redactor: provider keys and every key shape), cuts
// them at the account's max bytes and writes them off the request path.
// Headers are never captured. Every other account pays one map lookup per
// request: no body is copied.

// CaptureSink takes a finished request's capture; it must not block.
type CaptureSink interface {
	Capture(c billing.Capture)
}

// CaptureSettingsSource lists the accounts whose capture is on.
type CaptureSettingsSource interface {
	CaptureSettings(ctx context.Context) ([]books.CaptureSetting, error)
}

// captureTTL is how long a replica trusts its copy of the capture
// settings: a change made through another replica takes effect here
// within it (one made here, at once).
const captureTTL = 10 * time.Second

// captureSettings is the replica's copy of the accounts with capture on,
// read on the request path without a lock; it is reloaded by the first
// request that finds it older than captureTTL (the others meanwhile use
// the copy they have).
type captureSettings struct {
	src CaptureSettingsSource
	log *zap.Logger

	mu   sync.Mutex // one reload at a time
	snap atomic.Pointer[captureSnapshot]
}

type captureSnapshot struct {
	at time.Time // zero: stale
	on map[string]books.CaptureSetting
}

// lookup returns accountID's setting when its capture is on.
func (cs *captureSettings) lookup(accountID string, now time.Time) (books.CaptureSetting, bool) {
	sn := cs.snap.Load()
	if sn == nil || now.Sub(sn.at) >= captureTTL {
		sn = cs.reload(sn, now)
	}
	if len(sn.on) == 0 {
		return books.CaptureSetting{}, false
	}
	set, ok := sn.on[accountID]
	return set, ok
}

// reload reads the settings, unless another request is doing so and
// there is a copy to use meanwhile. A read that fails keeps the old
// copy for another captureTTL.
func (cs *captureSettings) reload(old *captureSnapshot, now time.Time) *captureSnapshot {
	if old != nil {
		if !cs.mu.TryLock() {
			return old
		}
	} else {
		cs.mu.Lock()
	}
	defer cs.mu.Unlock()
	if cur := cs.snap.Load(); cur != old {
		return cur // reloaded while this one waited
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	next := &captureSnapshot{at: now, on: map[string]books.CaptureSetting{}}
	list, err := cs.src.CaptureSettings(ctx)
	switch {
	case err != nil:
		cs.log.Warn("reading capture settings; keeping the last ones", zap.Error(err))
		if old != nil {
			next.on = old.on
		}
	default:
		for _, s := range list {
			next.on[s.AccountID] = s
		}
	}
	cs.snap.Store(next)
	return next
}

// invalidate makes the next lookup read the settings again.
func (cs *captureSettings) invalidate() {
	on := map[string]books.CaptureSetting{}
	if sn := cs.snap.Load(); sn != nil {
		on = sn.on
	}
	cs.snap.Store(&captureSnapshot{on: on})
}

// captureSlack is kept of an answer beyond the account's max bytes, so
// that a secret straddling the cut is still whole when the sink redacts
// it (and is replaced, not half kept).
const captureSlack = 512

// requestCapture is a request being captured.
type requestCapture struct {
	setting books.CaptureSetting
	w       *captureWriter
}

// startCapture begins capturing the answer of a request whose account has
// capture on: its writer is wrapped to keep what is written. It runs at
// admission, once the key (and so the account) is known.
func (s *base) startCapture(c *gin.Context, info *requestInfo) {
	// Only the requests the log records (not token counts).
	if s.cfg.Captures == nil || info.capture != nil || info.key == nil || info.endpoint == "" {
		return
	}
	set, ok := s.captureOn.lookup(info.key.AccountID, s.now())
	if !ok {
		return
	}
	w := &captureWriter{ResponseWriter: c.Writer, limit: set.MaxBytes + captureSlack}
	c.Writer = w
	info.capture = &requestCapture{setting: set, w: w}
}

// finishCapture hands a captured request to the sink; it runs when the
// request has ended, its answer written.
func (s *base) finishCapture(info *requestInfo) {
	rc := info.capture
	if rc == nil {
		return
	}
	info.capture = nil
	s.cfg.Captures.Capture(billing.Capture{
		RequestID: info.id, AccountID: info.key.AccountID,
		Request: info.received, Response: rc.w.buf, Truncated: rc.w.over,
		MaxBytes: rc.setting.MaxBytes, CreatedAt: info.start, ExpiresAt: info.start.Add(rc.setting.Retention),
	})
}

// captureWriter keeps a copy of what the answer writes, up to limit
// bytes, keep-alive pings left out. Unwrap lets a ResponseController reach
// the connection under it (deadlines, flushes).
type captureWriter struct {
	gin.ResponseWriter
	limit int
	buf   []byte
	over  bool // more was written than buf keeps
}

func (w *captureWriter) keep(b []byte) {
	if isPing(b) {
		return
	}
	room := w.limit - len(w.buf)
	if len(b) > room {
		b, w.over = b[:max(room, 0)], true
	}
	w.buf = append(w.buf, b...)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.keep(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) {
	w.keep([]byte(s))
	return w.ResponseWriter.WriteString(s)
}

func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var messagesPing = []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n")

// isPing reports whether b is a stream's keep-alive (nothing the caller
// was answered).
func isPing(b []byte) bool {
	return bytes.Equal(b, ssePing) || bytes.Equal(b, messagesPing)
}
