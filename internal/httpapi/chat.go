package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// statusClientClosed is logged and metered when the caller went away.
const statusClientClosed = 499

// chat is POST /v1/chat/completions: read and check the request, admit
// it, route it, relay the answer, meter it. Auth already happened in the
// middleware. The caller's body is the pivot: it goes upstream untouched
// but for the model (and whatever a provider's quirks require).
func (s *Server) chat(c *gin.Context) {
	info := infoOf(c)
	info.endpoint = "chat"
	body, req, ok := readRequest(s, c, providers.ParseChatRequest, func(r *providers.ChatRequest) string { return r.Model })
	if !ok {
		return
	}
	info.model, info.stream, info.body = req.Model, req.Stream, body
	defer s.meter(info)
	a := s.admitModelCall(c, info, body, Worst{MaxTokens: req.MaxTokens, Choices: req.Choices, Hedgeable: true})
	if a == nil {
		return
	}
	defer a.done(info)
	s.serve(c, a, req, &chatEncoder{includeUsage: req.IncludeUsage})
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
func (s *Server) readBody(c *gin.Context) ([]byte, *apiError) {
	tooLarge := func() *apiError { // built only when refused: not on every request
		return newError(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
			"Request body too large: the limit is "+strconv.FormatInt(s.maxBody, 10)+" bytes.")
	}
	if c.Request.ContentLength > s.maxBody {
		return nil, tooLarge()
	}
	r := http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody)
	body, err := readAllSized(r, c.Request.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, newError(http.StatusRequestTimeout, "invalid_request_error", "body_read_timeout",
				"The request body was not received within "+s.bodyTimeout.String()+".")
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

func noteRoute(info *requestInfo, res router.Result) {
	info.attempts = res.Attempts
	info.tried = res.Tried
	if res.Deployment != nil {
		info.deployment = res.Deployment
		info.provider, info.upstream = res.Deployment.Provider, res.Deployment.Model
	}
}

func setRouteHeaders(h http.Header, info *requestInfo) {
	h.Set("x-xroute-provider", info.provider)
	h.Set("x-xroute-model", info.upstream)
	h.Set("x-xroute-attempts", strconv.Itoa(info.attempts))
}

// routeFailed answers a request that no deployment served.
func (s *Server) routeFailed(c *gin.Context, err error) {
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

// usageRecord is the record of a request as it stands.
func (s *Server) usageRecord(info *requestInfo) books.UsageRecord {
	status := info.status
	if status == 0 {
		status = http.StatusOK
	}
	return books.UsageRecord{
		RequestID:              info.id,
		AccountID:              info.key.AccountID,
		KeyID:                  info.key.ID,
		Model:                  info.model,
		Provider:               info.provider,
		UpstreamModel:          info.upstream,
		Stream:                 info.stream,
		PromptTokens:           info.prompt,
		CompletionTokens:       info.complete,
		CachedTokens:           info.cached,
		CacheWriteTokens:       info.cacheWrite,
		Latency:                s.now().Sub(info.start),
		TTFT:                   info.ttft,
		Status:                 status,
		Attempts:               info.attempts,
		ErrorCode:              info.errCode,
		CreatedAt:              info.start,
		CostNano:               info.cost,
		Estimated:              info.estimated,
		Deployment:             deploymentName(info),
		Endpoint:               info.endpoint,
		TraceID:                info.traceID,
		CacheHit:               info.cacheHit,
		PromptCacheSavedNano:   info.cacheSaved,
		ResponseCacheSavedNano: info.hitSaved,
	}
}

// deploymentName names the deployment that served the request, or the
// last one tried when none did ("" when routing never ran).
func deploymentName(info *requestInfo) string {
	if info.deployment != nil {
		return info.deployment.Name()
	}
	if n := len(info.tried); n > 0 && info.tried[n-1].Deployment != nil {
		return info.tried[n-1].Deployment.Name()
	}
	return ""
}

// commitUsage prices and writes a successful request's record (with its
// ledger debit) and waits for the commit, so that a response whose last
// byte was sent always has its record and its charge, even if the process
// is killed right after. Then the reservation is settled.
//
// It returns false when the record could not be kept at all (the database
// is down and the usage spool full): the request is then not charged, and
// a caller that has not sent its answer yet refuses it instead.
func (s *Server) commitUsage(c *gin.Context, info *requestInfo) bool {
	info.metered = true
	s.price(info, info.body)
	rec := s.usageRecord(info)
	sp := s.child(info, telemetry.SpanUsageWrite)
	err := s.usage.Commit(c.Request.Context(), rec)
	endUsageWrite(sp, err)
	kept := !errors.Is(err, billing.ErrSpoolFull)
	switch {
	case !kept:
		// The log line is the only trace left of this request's usage.
		s.log.Error("usage record not kept: database down and usage spool full", zapReq(info), zap.Reflect("usage", rec))
		info.cost = 0
	case err != nil:
		s.log.Error("usage record not committed", zapReq(info), zap.Error(err))
	}
	s.settle(info)
	s.observeDone(info)
	return kept
}

// meter writes the record of a request that ended without commitUsage
// (errors, refusals, a caller that left, a stream that broke); it runs
// deferred. A part that was delivered is still charged.
func (s *Server) meter(info *requestInfo) {
	if info.metered {
		return
	}
	info.metered = true
	s.price(info, info.body)
	rec := s.usageRecord(info)
	sp := s.child(info, telemetry.SpanUsageWrite)
	var err error
	if info.cost > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err = s.usage.Commit(ctx, rec); err != nil {
			s.log.Error("usage record not committed", zapReq(info), zap.Error(err))
		}
		cancel()
	} else if err = s.usage.Record(rec); err != nil {
		s.log.Error("usage record not queued", zapReq(info), zap.Error(err))
	}
	endUsageWrite(sp, err)
	s.settle(info)
	s.observeDone(info)
}

// settle charges the reservation what the request cost (0 releases it).
func (s *Server) settle(info *requestInfo) {
	if info.hold == nil {
		return
	}
	sp := s.child(info, telemetry.SpanSettle)
	if info.cost > 0 {
		info.hold.Settle(info.cost)
	} else {
		info.hold.Release()
	}
	info.hold = nil
	endSettle(sp, info.cost)
}

func (s *Server) observeDone(info *requestInfo) {
	if s.observe == nil {
		return
	}
	status := info.status
	if status == 0 {
		status = http.StatusOK
	}
	s.observe(Observation{KeyID: info.key.ID, AccountID: info.key.AccountID, IP: info.clientAddr, Status: status, Tokens: info.prompt + info.complete})
}
