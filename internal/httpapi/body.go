package httpapi

import (
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// guardConn bounds what one request may cost the connection before it is
// answered. The body must arrive within server.body_read_timeout: the
// read deadline is set now (after the headers) and lifted once the body
// is read to its end, since the connection then reads on in the
// background to notice a caller that leaves, which must not time out. A
// write deadline a previous answer on this connection left is cleared.
func (s *base) guardConn(c *gin.Context, info *requestInfo) {
	rc := http.NewResponseController(c.Writer)
	if s.cfg.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Time{}) // not supported under a test recorder
	}
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	if s.cfg.BodyReadTimeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	}
	b := &guardedBody{ReadCloser: r.Body, rc: rc}
	r.Body = b
	info.reqBody = b
}

// guardedBody is a request body that knows whether it was read to its
// end, and lifts the read deadline then.
type guardedBody struct {
	io.ReadCloser
	rc  *http.ResponseController
	eof bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// refuse is called before a refusal is written (h are its headers): when
// the body was not read to its end, it never will be. net/http would
// otherwise read up to 256 KiB of it before writing the answer, at
// whatever pace the caller sends it (an unknown key sending a byte every
// 5 s held its socket and goroutine for as long); instead the connection
// closes after the answer and reads nothing more.
func (b *guardedBody) refuse(h http.Header) {
	if b.eof {
		return
	}
	h.Set("Connection", "close")
	_ = b.rc.SetReadDeadline(time.Now())
}
