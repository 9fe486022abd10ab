package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// run is the admission pipeline every model endpoint shares (chat
// completions, legacy completions, embeddings, Responses, Messages): an
// ingress parses its request into a modelCall and hands it over, and the
// pipeline does the rest in one order, the same for all of them: the model is
// looked up and the key's model scope checked, the key's limits admit the
// request (concurrency, RPM, TPM), the credits its worst case may cost are
// held, then the request's deadline starts and the caller (its key's
// routing_strategy, its session) is put on the context; the ingress
// serves it (routing, failover, relaying); finish settles it. Routing,
// failover, metering and the usage log do not know which endpoint a
// request came in through.

// modelCall is what an ingress hands the pipeline: what it parsed, and the
// two places where ingresses differ.
type modelCall struct {
	model  string
	stream bool
	// body is what is priced, held and counted against TPM for (the
	// pivot, or the caller's own body).
	body  []byte
	worst Worst
	// prepare, when set, runs after the model, the key's scope,
	// concurrency and RPM admitted the request and before it is priced:
	// work that costs the gateway (reading a stored conversation). It may
	// set body and worst. On refusal it has answered and returns false.
	prepare func(mc *modelCall) bool
	// serve answers the admitted request.
	serve func(a *admitted)
}

// run is the pipeline. Whatever happens, finish settles the request once,
// at the end: one deferred call (a panic included), whose steps run in
// the order written there.
func (s *modelAPI) run(c *gin.Context, mc modelCall) {
	info := infoOf(c)
	info.model, info.stream, info.body = mc.model, mc.stream, mc.body
	var a *admitted
	defer func() { s.finish(info, a) }()
	if a = s.beginModelCall(c, info); a == nil {
		return
	}
	if mc.prepare != nil {
		if !mc.prepare(&mc) {
			return
		}
		info.body = mc.body
	}
	if !s.reserve(c, info, a, mc.body, mc.worst) {
		return
	}
	mc.serve(a)
}

// finish settles a request, in this order: the response cache learns
// whether the answer may be kept; the key's TPM reservation is corrected
// by what was used (before usage is estimated for the record: an unknown
// count keeps the reservation) and the request's context ends; then the
// usage record is written unless the answer committed it already, and
// the credit hold is charged or released (meter). A request refused
// before it was reserved gives its concurrency slot back.
func (s *modelAPI) finish(info *requestInfo, a *admitted) {
	switch {
	case a == nil:
	case a.reserved:
		s.cacheDone(info)
		a.done(info)
	default:
		a.abandon()
	}
	s.meter(info)
}

// readRequest reads a model endpoint's body and parses it with parse (the
// ingress's own parser), then checks the model name model returns. On
// failure it has answered (413, 400 in OpenAI's shape) and ok is false.
func readRequest[T any](s *modelAPI, c *gin.Context, parse func([]byte) (T, error), model func(T) string) (body []byte, req T, ok bool) {
	body, bad := s.readBody(c)
	if bad != nil {
		writeError(c, bad)
		return nil, req, false
	}
	req, err := parse(body)
	if err != nil {
		writeRequestError(c, err)
		return nil, req, false
	}
	if e := checkModelName(model(req)); e != nil {
		writeError(c, e)
		return nil, req, false
	}
	return body, req, true
}

// admitted is a request that passed admission.
type admitted struct {
	m      *router.Model
	adm    *admission
	ctx    context.Context
	cancel context.CancelFunc
	// reserved: TPM and the credit hold are taken, the context runs.
	reserved bool
	// hitTokensFree: a response cache hit that counts 0 against TPM.
	hitTokensFree bool
}

// beginModelCall is the part of admission that needs no body: the model
// exists, the key may use it, and the key's concurrency and RPM admit the
// request. run calls a modelCall's prepare between it and reserve (work
// needed before the request can be priced). On refusal it has answered
// and returns nil.
func (s *modelAPI) beginModelCall(c *gin.Context, info *requestInfo) *admitted {
	s.startCapture(c, info)
	m, ok := s.cfg.Router.Lookup(info.model)
	if !ok {
		writeError(c, modelNotFound(info.model))
		return nil
	}
	if !info.key.AllowsModel(info.model) {
		writeError(c, newError(http.StatusForbidden, "permission_error", "model_not_allowed",
			"This API key is not allowed to use the model `"+info.model+"`.").withParam("model"))
		return nil
	}
	sp := s.child(info, telemetry.SpanLimits)
	adm := s.admitRequest(c, info.key)
	endChild(sp, info, adm == nil)
	if adm == nil {
		return nil
	}
	if !s.admitChild(c, info) { // an ephemeral key's request cap
		adm.release()
		return nil
	}
	return &admitted{m: m, adm: adm}
}

// reserve is the rest of admission: the key's TPM and the credit hold for
// the worst case; then the request's deadline starts. On refusal it has
// answered, released what beginModelCall took, and returns false.
func (s *modelAPI) reserve(c *gin.Context, info *requestInfo, a *admitted, body []byte, w Worst) bool {
	w.Fallbacks = s.fallbacks(info, a.m, body)
	// TPM reserves every answer's worth of output, each at most what the
	// deployments that may serve it can write (as the credit hold does),
	// or the default reserve when that is unknown: n answers reserve n
	// times as much.
	per := a.m.CapOutput(w.MaxTokens)
	for _, fm := range w.Fallbacks {
		per = max(per, fm.CapOutput(w.MaxTokens))
	}
	if per <= 0 {
		per = defaultCompletionReserve
	}
	sp := s.child(info, telemetry.SpanTokenLimit)
	ok := s.admitTokens(c, a.adm, body, per*max(w.Choices, 1))
	endChild(sp, info, !ok)
	if !ok {
		return false
	}
	sp = s.child(info, telemetry.SpanCreditHold)
	ok = s.hold(c, info, a.m, body, w)
	endChild(sp, info, !ok)
	if !ok {
		a.adm.settle(0)
		return false
	}
	// The request context ends when the caller disconnects, which cancels
	// the upstream call; the timeout bounds the whole request, failover
	// included.
	a.ctx, a.cancel = context.WithTimeout(c.Request.Context(), s.own.RequestTimeout)
	a.ctx = router.WithCaller(a.ctx, router.Caller{Strategy: info.key.Metadata["routing_strategy"], AllowModel: info.key.AllowsModel, KeyID: info.key.ID, RequestID: info.id,
		Account: info.key.AccountID, Session: c.GetHeader("X-Session-Id"), AgentSession: agentSession(c.Request.Header)})
	a.reserved = true
	return true
}

// agentSession is a coding agent's own session header: Claude Code's
// x-claude-code-session-id (v2.1.86 on), Codex CLI's session-id (older
// versions: session_id). The router keeps a session on the deployment
// whose prompt cache it warmed.
func agentSession(h http.Header) string {
	for _, name := range [...]string{"X-Claude-Code-Session-Id", "Session-Id", "Session_id"} {
		if v := h.Get(name); v != "" {
			return v
		}
	}
	return ""
}

// fallbacks are the models a request's "models" list names that it may
// fall back to: those that exist and the key may use, as the router reads
// them (at most maxFallbacks; the router refuses longer lists).
func (s *modelAPI) fallbacks(info *requestInfo, m *router.Model, body []byte) []*router.Model {
	if !bytes.Contains(body, modelsKey) {
		return nil
	}
	list := gjson.GetBytes(body, "models")
	if !list.IsArray() {
		return nil
	}
	var out []*router.Model
	list.ForEach(func(_, v gjson.Result) bool {
		if v.Type != gjson.String {
			return true
		}
		fm, ok := s.cfg.Router.Lookup(v.Str)
		if ok && fm != m && info.key.AllowsModel(v.Str) && !slices.Contains(out, fm) {
			out = append(out, fm)
		}
		return len(out) < maxFallbacks
	})
	return out
}

// maxFallbacks bounds the fallback models priced for one request (the
// router accepts at most 8).
const maxFallbacks = 8

var modelsKey = []byte(`"models"`)

// abandon releases a request begun but never reserved (refused in
// between); releasing twice is harmless.
func (a *admitted) abandon() { a.adm.release() }

// done settles the key's token reservation with what was used and ends
// the request's context.
func (a *admitted) done(info *requestInfo) {
	used := -1 // unknown: keep the reservation
	switch {
	case info.usageSeen:
		used = info.prompt + info.complete
	case info.ttft == 0 && info.status >= 400:
		used = 0 // failed before any output: nothing was spent
	}
	if a.hitTokensFree {
		used = 0
	}
	a.adm.settle(used)
	a.cancel()
}

// answerer is what an ingress adds to serve: its stream encoder and the
// body of a non-streamed answer.
type answerer interface {
	encoder
	// render is the body of a non-streamed answer in the caller's format.
	render(resp *providers.ChatResponse) []byte
}

// routedHook is told which deployment serves the request, before any
// byte of the answer (the Responses API names the built-in tools a
// translating deployment left out).
type routedHook interface {
	routed(c *gin.Context, info *requestInfo)
}

// keeper keeps a non-streamed answer once its usage is committed and
// before it leaves (the Responses API's stored responses).
type keeper interface {
	keep(c *gin.Context, info *requestInfo, body []byte, resp *providers.ChatResponse)
}

// serve routes an admitted request and answers it through ans: a stream
// (with keep-alives when ans can ping), or one body whose usage is
// committed before it leaves.
func (s *modelAPI) serve(c *gin.Context, a *admitted, req *providers.ChatRequest, ans answerer) {
	info := infoOf(c)
	if s.cacheLookup(c, a, req, ans) {
		return // answered from the response cache
	}
	if req.Stream {
		s.serveStream(c, a, req, ans)
		return
	}
	resp, res, err := s.cfg.Router.Chat(a.ctx, a.m, req)
	noteRoute(info, res)
	if err != nil {
		s.routeFailed(c, err)
		return
	}
	if h, ok := ans.(routedHook); ok {
		h.routed(c, info)
	}
	s.noteAnswer(info, resp)
	noteFinishAnswer(info, resp)
	if info.usageBad {
		s.saneUsage(info, req.Format, resp)
	}
	body := withModel(nil, ans.render(resp), quoteModel(info.model))
	setRouteHeaders(c.Writer.Header(), info)
	if !s.commitUsage(c, info) { // durable before the answer leaves
		writeError(c, errSpoolFull())
		return
	}
	if info.cache != nil {
		info.cache.resp = resp // committed: cacheDone may keep it
	}
	if k, ok := ans.(keeper); ok {
		k.keep(c, info, body, resp)
	}
	s.setWriteDeadline(c)
	c.Data(http.StatusOK, "application/json", body)
}

// encoder writes a routed stream in the caller's format. Each method
// returns the bytes to send (nil: nothing now).
type encoder interface {
	// chunk renders one upstream chunk.
	chunk(ch providers.Chunk) []byte
	// finish renders the end of a stream that completed; its usage is
	// committed already. It may keep state (a stored response) first.
	finish(ctx context.Context, info *requestInfo) []byte
	// fail renders the end of a stream that broke after it started.
	fail(e *apiError, info *requestInfo) []byte
}

// startStream writes a stream's headers (the route's, when known; info
// is nil before routing ended).
func startStream(c *gin.Context, info *requestInfo) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // keep nginx in front from buffering
	if info != nil && info.provider != "" {
		setRouteHeaders(h, info)
	}
	c.Writer.WriteHeader(http.StatusOK)
}

// relayStream sends a routed stream to the caller through out and enc,
// flushing every event: nothing is buffered whole. The answer's usage is
// committed before its final byte. A stream that breaks ends with an
// error event in the caller's format (streamBroke).
func (s *modelAPI) relayStream(c *gin.Context, st providers.Stream, enc encoder, out *streamOut) {
	info := infoOf(c)
	// Routed: the upstream has read the prompt, whatever it delivers.
	info.served = true
	defer st.Close()
	sp := s.child(info, telemetry.SpanStream)
	defer func() { endChild(sp, info, info.status >= 400) }()
	s.metrics.streamOpened()
	defer s.metrics.streamClosed()

	model := quoteModel(info.model)
	var named []byte // a chunk's data, naming the public model

	out.start(info)
	if k, ok := enc.(keepaliver); ok && s.own.StreamKeepAlive > 0 {
		out.keepAlive(k.keepalive(), s.own.StreamKeepAlive)
	}
	// A stream that says when it is about to wait for the upstream gets
	// its chunks flushed then: what arrived together leaves together.
	// Others flush every chunk.
	flushEach := true
	if w, ok := st.(providers.WaitNotifier); ok && w.OnWait(out.flushPending) {
		flushEach = false
	}

	for {
		chunk, err := st.Recv()
		if errors.Is(err, io.EOF) {
			if !s.commitUsage(c, info) { // durable before the final byte
				// Not kept (database down, usage spool full), so not charged:
				// the answer ends as failed rather than complete.
				e := errSpoolFull()
				info.status, info.errCode, info.errMsg = e.Status, "usage_spool_full", e.Message
				out.write(enc.fail(e, info))
				return
			}
			if b := enc.finish(c.Request.Context(), info); len(b) > 0 {
				out.write(b) // committed and charged: the answer is complete
			}
			if info.cache != nil {
				info.cache.clean = true // cacheDone may keep it
			}
			return
		}
		if err != nil {
			s.streamBroke(c, enc, out, err)
			return
		}
		if !s.noteChunkUsage(info, &chunk) {
			continue // a count that cannot be right: as if none came
		}
		noteFinish(info, chunk)
		if info.cache != nil {
			info.cache.col.Chunk(chunk)
		}
		noteDelivered(info, &chunk)
		if len(chunk.Data) > 0 {
			d := withModel(named, chunk.Data, model)
			if len(d) > 0 && &d[0] != &chunk.Data[0] {
				named = d // rewritten: its buffer is reused
			}
			chunk.Data = d
		}
		b := enc.chunk(chunk)
		if len(b) == 0 {
			continue
		}
		if info.ttft == 0 {
			info.ttft = s.now().Sub(info.start)
			traceFirstToken(sp, info.ttft)
		}
		if out.send(b, flushEach) != nil {
			s.callerGone(info, out)
			return
		}
	}
}

// streamBroke ends a stream that failed after its headers went out: the
// caller gets an error event in its format while it can still hear one,
// and the request is recorded with what really happened (what was
// delivered is metered all the same).
func (s *modelAPI) streamBroke(c *gin.Context, enc encoder, out *streamOut, err error) {
	info := infoOf(c)
	var e *apiError
	switch {
	case cutByShutdown(c):
		e = errShutdown()
	case c.Request.Context().Err() != nil:
		s.callerGone(info, out)
		return
	default:
		e = upstreamError(err)
		switch {
		case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, providers.ErrStalled):
			e = newError(http.StatusGatewayTimeout, "timeout", "upstream_timeout", "The request timed out while streaming.")
		default:
			e.Message = "The upstream stream was interrupted: " + e.Message
		}
		s.log.Warn("stream interrupted", zapReq(info), zap.String("provider", info.provider), zap.String("error_code", e.codeOr()), zap.Error(safeErr(err)))
	}
	info.status, info.errCode, info.errMsg = e.Status, e.codeOr(), e.Message
	out.write(enc.fail(e, info))
}

// callerGone records a stream whose caller cannot hear it any more: it
// hung up (499 client_closed), or it stopped reading and a write missed
// the write timeout (499 client_write_timeout).
func (s *modelAPI) callerGone(info *requestInfo, out *streamOut) {
	info.status, info.errCode = statusClientClosed, "client_closed"
	if _, timedOut := out.failed(); timedOut {
		info.errCode = "client_write_timeout"
		info.errMsg = "The caller read nothing for server.write_timeout (" + s.cfg.WriteTimeout.String() + ")."
	}
}

// keepaliver is an encoder that can write a keep-alive event, sent when
// the caller has heard nothing for the server's keep-alive interval (a
// model thinking for a minute before its first token), so that clients
// and proxies with idle timeouts do not hang up.
type keepaliver interface {
	keepalive() []byte
}

// ssePing is the keep-alive of the SSE formats without one of their own
// (chat, Responses, legacy completions): a comment, which SSE clients
// skip.
var ssePing = []byte(": ping\n\n")

// serveStream routes a stream and relays it. Routing waits for the first
// chunk (so that a failing deployment is replaced before the caller sees
// a byte), and a model that thinks for a minute first would leave the
// caller with nothing: when the encoder can ping, after the keep-alive
// interval the stream's headers go out with a ping, then one per interval
// until the first chunk. A failure after that ends the stream with an
// error event instead of an error status.
func (s *modelAPI) serveStream(c *gin.Context, a *admitted, req *providers.ChatRequest, enc encoder) {
	info := infoOf(c)
	out := s.newStreamOut(c)
	defer out.close()
	// Routing waits for the first byte, a minute when a model thinks
	// first: meanwhile a keep-alive goes out (starting the stream)
	// whenever the caller has heard nothing for the interval. The
	// keep-alives come from out's timer, so routing runs here, in the
	// handler's goroutine: a goroutine of its own per stream, with a
	// stack grown anew each time for the router's calls, cost more than
	// the relay's own work per stream.
	if k, ok := enc.(keepaliver); ok && s.own.StreamKeepAlive > 0 {
		out.keepAlive(k.keepalive(), s.own.StreamKeepAlive)
	}
	st, res, err := s.cfg.Router.ChatStream(a.ctx, a.m, req)
	// From here the handler alone writes until relayStream resumes the
	// keep-alives.
	started := out.suspend()
	noteRoute(info, res)
	switch {
	case err == nil:
		if h, ok := enc.(routedHook); ok && !started {
			h.routed(c, info)
		}
		s.relayStream(c, st, enc, out)
	case !started:
		s.routeFailed(c, err)
	default:
		s.streamBroke(c, enc, out, err)
	}
}
