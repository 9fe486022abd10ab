package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/providers"
)

// statusClientClosed is logged and metered when the caller went away.
const statusClientClosed = 499

// chat is POST /v1/chat/completions: read and check the request, admit
// it, route it, relay the answer, meter it. Auth already happened in the
// middleware. The caller's body is the pivot: it goes upstream untouched
// but for the model (and whatever a provider's quirks require).
func (s *modelAPI) chat(c *gin.Context) {
	info := infoOf(c)
	info.endpoint = "chat"
	body, req, ok := readRequest(s, c, providers.ParseChatRequest, func(r *providers.ChatRequest) string { return r.Model })
	if !ok {
		return
	}
	s.run(c, modelCall{model: req.Model, stream: req.Stream, body: body,
		worst: Worst{MaxTokens: req.MaxTokens, Choices: req.Choices, Hedgeable: true},
		serve: func(a *admitted) { s.serve(c, a, req, &chatEncoder{includeUsage: req.IncludeUsage}) }})
}

// chatEncoder writes chat.completion.chunk events as SSE data lines.
type chatEncoder struct {
	includeUsage bool
	buf          []byte
}

func (e *chatEncoder) chunk(ch providers.Chunk) []byte {
	if len(ch.Data) == 0 || (ch.UsageOnly && !e.includeUsage) {
		return nil // xroute asked for usage; the caller did not
	}
	e.buf = append(e.buf[:0], "data: "...)
	e.buf = append(e.buf, ch.Data...)
	return append(e.buf, "\n\n"...)
}

// render implements answerer: the chat.completion as it came.
func (e *chatEncoder) render(resp *providers.ChatResponse) []byte { return resp.Body }

func (e *chatEncoder) finish(context.Context, *requestInfo) []byte {
	return []byte("data: [DONE]\n\n")
}

func (e *chatEncoder) fail(ae *apiError, _ *requestInfo) []byte { return streamErrorEvent(ae) }

// keepalive implements keepaliver: an SSE comment.
func (e *chatEncoder) keepalive() []byte { return ssePing }

// readBody reads the body up to the configured limit, within the body
// read timeout (set by begin). A Content-Length over the limit is refused
// before a byte of the body is read.
func (s *base) readBody(c *gin.Context) ([]byte, *apiError) {
	tooLarge := func() *apiError { // built only when refused: not on every request
		return newError(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
			"Request body too large: the limit is "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes.")
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge()
	}
	r := http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	body, err := readAllSized(r, c.Request.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, newError(http.StatusRequestTimeout, "invalid_request_error", "body_read_timeout",
				"The request body was not received within "+s.cfg.BodyReadTimeout.String()+".")
		}
		return nil, newError(http.StatusBadRequest, "invalid_request_error", "", "Could not read the request body.")
	}
	if info := infoOf(c); info != nil {
		info.received = body // for a capture, should the account have one
	}
	return body, nil
}

// readAllSized is io.ReadAll with its buffer sized from the body's
// Content-Length (already bounded by the caller's limit), so that a body
// is read into one allocation instead of a doubling series from 512
// bytes. A length that lies costs only growth: the reader's own limits
// and errors apply as with io.ReadAll.
func readAllSized(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, n+1) // +1: the read that finds EOF needs room
	for {
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow
		}
	}
}

func setRouteHeaders(h http.Header, info *requestInfo) {
	h.Set("x-xroute-provider", info.provider)
	h.Set("x-xroute-model", info.upstream)
	h.Set("x-xroute-attempts", strconv.Itoa(info.attempts))
}

// routeFailed answers a request that no deployment served.
func (s *modelAPI) routeFailed(c *gin.Context, err error) {
	info := infoOf(c)
	if info.provider != "" {
		setRouteHeaders(c.Writer.Header(), info)
	}
	switch {
	case cutByShutdown(c):
		writeError(c, errShutdown()) // the caller is still there: it hears why
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		info.status, info.errCode = statusClientClosed, "client_closed" // nobody is listening
	default:
		writeError(c, upstreamError(err))
	}
}

// safeErr drops upstream words from errors about credentials before they
// are logged: a provider's 401 message may quote part of the key (the
// router redacts known keys and key shapes; this also drops a fragment).
func safeErr(err error) error {
	var pe *providers.Error
	if errors.As(err, &pe) && (pe.KeyRejected() || pe.Status == http.StatusForbidden) {
		return errors.New(pe.Provider + ": upstream rejected credentials")
	}
	return err
}
