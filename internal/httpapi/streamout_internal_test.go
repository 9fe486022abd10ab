package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestStreamOutKeepAliveAroundRouting drives streamOut's keep-alive timer
// by hand (tick is its callback; the interval is an hour so that the real
// timer never fires during the test): serveStream arms it before routing,
// suspends it when routing returns, and relayStream resumes it.
func TestStreamOutKeepAliveAroundRouting(t *testing.T) {
	ping := []byte(": ping\n\n")
	newOut := func() (*streamOut, *httptest.ResponseRecorder) {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		o := &streamOut{c: c, rc: http.NewResponseController(unwrapWriter(c.Writer))}
		t.Cleanup(o.close)
		return o, rec
	}
	quiet := func(o *streamOut) {
		o.mu.Lock()
		o.last = time.Now().Add(-2 * time.Hour)
		o.mu.Unlock()
	}

	t.Run("routing ends before the first ping", func(t *testing.T) {
		o, rec := newOut()
		o.keepAlive(ping, time.Hour)
		if o.suspend() {
			t.Fatal("suspend reports a started stream, but no ping went out")
		}
		quiet(o)
		o.tick() // a tick already due when routing returned
		if o.c.Writer.Written() || rec.Body.Len() != 0 {
			t.Fatalf("a suspended keep-alive wrote %q: the handler's error answer could no longer set its status", rec.Body.String())
		}
	})

	t.Run("a ping while routing starts the stream", func(t *testing.T) {
		o, rec := newOut()
		o.keepAlive(ping, time.Hour)
		quiet(o)
		o.tick()
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Body.String() != string(ping) {
			t.Fatalf("after a ping: status %d, type %q, body %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
		if !o.suspend() {
			t.Fatal("suspend does not report the stream the ping started")
		}
		quiet(o)
		o.tick()
		if rec.Body.String() != string(ping) {
			t.Fatalf("a ping went out while suspended: %q", rec.Body.String())
		}
		// relayStream resumes. The last write must be recent here: after
		// quiet, keepAlive would (rightly) arm the real timer at zero and
		// it would race the tick below with a ping of its own.
		o.mu.Lock()
		o.last = time.Now()
		o.mu.Unlock()
		o.keepAlive(ping, time.Hour)
		quiet(o)
		o.tick()
		if rec.Body.String() != string(ping)+string(ping) {
			t.Fatalf("no ping after resuming: %q", rec.Body.String())
		}
	})

	t.Run("no ping after close", func(t *testing.T) {
		o, rec := newOut()
		o.keepAlive(ping, time.Hour)
		o.close()
		quiet(o)
		o.tick()
		if rec.Body.Len() != 0 {
			t.Fatalf("a closed stream wrote %q", rec.Body.String())
		}
	})
}
