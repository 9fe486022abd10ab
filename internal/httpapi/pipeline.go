package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// The admission pipeline every model endpoint shares (chat, Responses,
// legacy completions, embeddings), in one order: the model is looked up
// and the key's model scope checked, the key's limits admit the request
// (concurrency, RPM, TPM), the credits its worst case may cost are held,
// then the request's deadline starts and the caller's routing wishes are
// attached. Routing, failover, metering and the usage log do not know
// which endpoint a request came in through.

// readRequest reads a model endpoint's body and parses it with parse (the
// ingress's own parser), then checks the model name model returns. On
// failure it has answered (413, 400 in OpenAI's shape) and ok is false.
func readRequest[T any](s *Server, c *gin.Context, parse func([]byte) (T, error), model func(T) string) (body []byte, req T, ok bool) {
	body, err := s.readBody(c)
	if err != nil {
		writeError(c, err.(*apiError))
		return nil, req, false
	}
	if req, err = parse(body); err != nil {
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
}

// admitModelCall runs admission for a request to info.model whose pivot
// (or embeddings) body is body; w says what multiplies its worst case (the
// output cap, the number of answers, hedging). On refusal it has answered
// and returns nil; otherwise the caller must defer done. The caller has
// deferred s.meter(info) before, so refusals are recorded too.
func (s *Server) admitModelCall(c *gin.Context, info *requestInfo, body []byte, w Worst) *admitted {
	a := s.beginModelCall(c, info)
	if a == nil || !s.reserve(c, info, a, body, w) {
		return nil
	}
	return a
}

// beginModelCall is the part of admission that needs no body: the model
// exists, the key may use it, and the key's concurrency and RPM admit the
// request. An ingress with work to do before it can price the request
// (reading a stored conversation) runs it first, then reserve. On refusal
// it has answered and returns nil.
func (s *Server) beginModelCall(c *gin.Context, info *requestInfo) *admitted {
	m, ok := s.router.Lookup(info.model)
	if !ok {
		writeError(c, modelNotFound(info.model))
		return nil
	}
	if !info.key.AllowsModel(info.model) {
		writeError(c, newError(http.StatusForbidden, "permission_error", "model_not_allowed",
			"This API key is not allowed to use the model `"+info.model+"`.").withParam("model"))
		return nil
	}
	adm := s.admitRequest(c, info.key)
	if adm == nil {
		return nil
	}
	return &admitted{m: m, adm: adm}
}

// reserve is the rest of admission: the key's TPM and the credit hold for
// the worst case; then the request's deadline starts. On refusal it has
// answered, released what beginModelCall took, and returns false;
// otherwise the caller must defer a.done.
func (s *Server) reserve(c *gin.Context, info *requestInfo, a *admitted, body []byte, w Worst) bool {
	// TPM reserves every answer's worth of output, each at most what the
	// model's deployments can write (as the credit hold does).
	if !s.admitTokens(c, a.adm, body, a.m.CapOutput(w.MaxTokens)*max(w.Choices, 1)) {
		return false
	}
	if !s.hold(c, info, a.m, body, w) {
		a.adm.settle(0)
		return false
	}
	// The request context ends when the caller disconnects, which cancels
	// the upstream call; the timeout bounds the whole request, failover
	// included.
	a.ctx, a.cancel = context.WithTimeout(c.Request.Context(), s.timeout)
	a.ctx = router.WithCaller(a.ctx, router.Caller{Strategy: info.key.Metadata["routing_strategy"], AllowModel: info.key.AllowsModel, KeyID: info.key.ID, RequestID: info.id})
	return true
}

// abandon releases a request begun but never reserved (refused in
// between).
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
	a.adm.settle(used)
	a.cancel()
}

// noteUsage records an answer's usage.
func noteUsage(info *requestInfo, u providers.Usage) {
	info.prompt, info.complete, info.cached, info.cacheWrite, info.cacheW1h, info.usageSeen = u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens, true
	info.searches = u.WebSearches
}

// noteAnswer records a non-streamed answer's usage. An upstream that
// reported none (or nothing but zeros) is counted from the prompt and the
// answer's text instead, marked estimated: never billed 0.
func noteAnswer(info *requestInfo, resp *providers.ChatResponse) {
	if u := resp.Usage; u.PromptTokens+u.CompletionTokens > 0 {
		noteUsage(info, u)
		return
	}
	info.served = true
	c := resp.Completion
	if c == nil && !resp.Native {
		c, _ = providers.DecodeChatCompletion(resp.Body)
	}
	if c == nil {
		// A native answer: the text wherever its format keeps it.
		for _, path := range [...]string{"output.#.content.#.text", "output.#.arguments", "choices.#.text"} {
			gjson.GetBytes(resp.Body, path).ForEach(func(_, v gjson.Result) bool {
				if v.IsArray() {
					v.ForEach(func(_, t gjson.Result) bool { info.delivered = append(info.delivered, t.String()...); return true })
				} else {
					info.delivered = append(info.delivered, v.String()...)
				}
				return true
			})
		}
		return
	}
	for _, ev := range c.Events() {
		switch ev.Kind {
		case providers.EventText, providers.EventRefusal, providers.EventReasoning, providers.EventToolArgs:
			info.delivered = append(info.delivered, ev.Text...)
		case providers.EventToolStart:
			info.delivered = append(info.delivered, ev.Name...)
		}
	}
}

var (
	toolCallsKey = []byte(`"tool_calls"`)
	reasoningKey = []byte(`"reasoning`)
)

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
func (s *Server) serve(c *gin.Context, a *admitted, req *providers.ChatRequest, ans answerer) {
	info := infoOf(c)
	if req.Stream {
		s.routeKeepAlive(c, a, req, ans)
		return
	}
	resp, res, err := s.router.Chat(a.ctx, a.m, req)
	noteRoute(info, res)
	if err != nil {
		s.routeFailed(c, err)
		return
	}
	if h, ok := ans.(routedHook); ok {
		h.routed(c, info)
	}
	noteAnswer(info, resp)
	body := ans.render(resp)
	setRouteHeaders(c.Writer.Header(), info)
	if !s.commitUsage(c, info) { // durable before the answer leaves
		writeError(c, errSpoolFull())
		return
	}
	if k, ok := ans.(keeper); ok {
		k.keep(c, info, body, resp)
	}
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

// relayStream sends a routed stream to the caller through enc, flushing
// every event: nothing is buffered whole. The answer's usage is committed
// before its final byte.
func (s *Server) relayStream(c *gin.Context, st providers.Stream, enc encoder) {
	s.relayStarted(c, st, enc, false)
}

// startStream writes a stream's headers (the route's, when known).
func startStream(c *gin.Context, info *requestInfo) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // keep nginx in front from buffering
	if info.provider != "" {
		setRouteHeaders(h, info)
	}
	c.Writer.WriteHeader(http.StatusOK)
}

// relayStarted is relayStream for a stream whose headers (and keep-alives)
// may have gone out already (started).
func (s *Server) relayStarted(c *gin.Context, st providers.Stream, enc encoder, started bool) {
	info := infoOf(c)
	defer st.Close()
	s.metrics.streamOpened()
	defer s.metrics.streamClosed()

	w := c.Writer
	if !started {
		startStream(c, info)
	}

	var scratch []providers.Event
	open := map[int]bool{}
	next := func() (providers.Chunk, error) { return st.Recv() }
	var ka *keepAlive
	if k, ok := enc.(keepaliver); ok && s.keepAlive > 0 {
		ka = startKeepAlive(st, s.keepAlive)
		defer ka.stop()
		next = func() (providers.Chunk, error) {
			return ka.next(func() {
				if _, err := w.Write(k.keepalive()); err == nil {
					w.Flush()
				}
			})
		}
	}
	for {
		chunk, err := next()
		if errors.Is(err, io.EOF) {
			if !s.commitUsage(c, info) { // durable before the final byte
				// Not kept (database down, usage spool full), so not charged:
				// the answer ends as failed rather than complete.
				e := errSpoolFull()
				info.status, info.errCode, info.errMsg = e.Status, "usage_spool_full", e.Message
				w.Write(enc.fail(e, info))
				w.Flush()
				return
			}
			if out := enc.finish(c.Request.Context(), info); len(out) > 0 {
				if _, werr := w.Write(out); werr == nil {
					w.Flush()
				}
			}
			return
		}
		if err != nil {
			if c.Request.Context().Err() != nil {
				info.status, info.errCode = statusClientClosed, "client_closed"
				return
			}
			// The caller already has a 200 and part of the answer: end the
			// stream with an error event; what was delivered is metered.
			e := upstreamError(err)
			if errors.Is(err, context.DeadlineExceeded) {
				e = newError(http.StatusGatewayTimeout, "timeout", "upstream_timeout", "The request timed out while streaming.")
			} else {
				e.Message = "The upstream stream was interrupted: " + e.Message
			}
			info.status, info.errCode, info.errMsg = e.Status, "stream_interrupted", e.Message
			s.log.Warn("stream interrupted", zap.String("request_id", info.id), zap.String("provider", info.provider), zap.Error(safeErr(err)))
			w.Write(enc.fail(e, info))
			w.Flush()
			return
		}
		if chunk.Usage != nil {
			noteUsage(info, *chunk.Usage)
			info.partialUsage = chunk.UsagePartial
		}
		if info.hold != nil && (!info.usageSeen || info.partialUsage) {
			// Kept only for priced requests, to count what was delivered if
			// the provider never reports usage: text, reasoning, tool names
			// and arguments alike.
			evs := chunk.Events
			if evs == nil && !chunk.Native && len(chunk.Data) > 0 {
				if !bytes.Contains(chunk.Data, toolCallsKey) && !bytes.Contains(chunk.Data, reasoningKey) {
					// The common chunk: text only, one path lookup.
					if t := gjson.GetBytes(chunk.Data, "choices.0.delta.content"); t.Type == gjson.String {
						info.delivered = append(info.delivered, t.Str...)
					}
				} else {
					scratch, _ = providers.DecodeChatChunk(chunk.Data, scratch[:0], open)
					evs = scratch
				}
			}
			for _, ev := range evs {
				switch ev.Kind {
				case providers.EventText, providers.EventRefusal, providers.EventReasoning, providers.EventToolArgs:
					info.delivered = append(info.delivered, ev.Text...)
				case providers.EventToolStart:
					info.delivered = append(info.delivered, ev.Name...)
				}
			}
		}
		out := enc.chunk(chunk)
		if len(out) == 0 {
			continue
		}
		if info.ttft == 0 {
			info.ttft = s.now().Sub(info.start)
		}
		if _, err := w.Write(out); err != nil {
			info.status, info.errCode = statusClientClosed, "client_closed"
			return
		}
		w.Flush()
	}
}

// keepaliver is an encoder that can write a keep-alive event, sent when
// the upstream has been quiet for the server's keep-alive interval (a
// model thinking for a minute before its first token), so that clients
// and proxies with idle timeouts do not hang up.
type keepaliver interface {
	keepalive() []byte
}

// keepAlive reads a stream on its own goroutine so that the relay can
// notice silence. Chunks are handed over one at a time: the reader asks
// for the next one only after the relay is done with the last (a chunk's
// Data is valid only until then).
type keepAlive struct {
	results  chan recvResult
	more     chan struct{}
	done     chan struct{}
	interval time.Duration
	timer    *time.Timer
	asked    bool
}

type recvResult struct {
	c   providers.Chunk
	err error
}

func startKeepAlive(st providers.Stream, interval time.Duration) *keepAlive {
	k := &keepAlive{results: make(chan recvResult), more: make(chan struct{}), done: make(chan struct{}), interval: interval, timer: time.NewTimer(interval)}
	go func() {
		for {
			select {
			case <-k.more:
			case <-k.done:
				return
			}
			c, err := st.Recv()
			select {
			case k.results <- recvResult{c, err}:
			case <-k.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return k
}

// next returns the stream's next chunk, calling ping each time the
// upstream stays quiet for the interval meanwhile.
func (k *keepAlive) next(ping func()) (providers.Chunk, error) {
	k.more <- struct{}{}
	for {
		select {
		case r := <-k.results:
			k.timer.Reset(k.interval)
			return r.c, r.err
		case <-k.timer.C:
			ping()
			k.timer.Reset(k.interval)
		}
	}
}

// stop ends the reader; the stream's Close (deferred before) unblocks a
// Recv in flight.
func (k *keepAlive) stop() {
	close(k.done)
	k.timer.Stop()
}

// routeKeepAlive routes a stream whose encoder can ping, and relays it.
// Routing waits for the first chunk (so that a failing deployment is
// replaced before the caller sees a byte), and a model that thinks for a
// minute first would leave the caller with nothing: after the keep-alive
// interval the stream's headers go out with a ping, then one per interval
// until the first chunk. A failure after that ends the stream with an
// error event instead of an error status.
func (s *Server) routeKeepAlive(c *gin.Context, a *admitted, req *providers.ChatRequest, enc encoder) {
	info := infoOf(c)
	k, ok := enc.(keepaliver)
	if !ok || s.keepAlive <= 0 {
		st, res, err := s.router.ChatStream(a.ctx, a.m, req)
		noteRoute(info, res)
		if err != nil {
			s.routeFailed(c, err)
			return
		}
		if h, ok := enc.(routedHook); ok {
			h.routed(c, info)
		}
		s.relayStream(c, st, enc)
		return
	}
	type routed struct {
		st  providers.Stream
		res router.Result
		err error
	}
	done := make(chan routed, 1)
	go func() {
		st, res, err := s.router.ChatStream(a.ctx, a.m, req)
		done <- routed{st, res, err}
	}()
	timer := time.NewTimer(s.keepAlive)
	defer timer.Stop()
	started := false
	for {
		select {
		case r := <-done:
			noteRoute(info, r.res)
			switch {
			case r.err == nil:
				if h, ok := enc.(routedHook); ok && !started {
					h.routed(c, info)
				}
				s.relayStarted(c, r.st, enc, started)
			case !started:
				s.routeFailed(c, r.err)
			case c.Request.Context().Err() != nil:
				info.status, info.errCode = statusClientClosed, "client_closed"
			default:
				e := upstreamError(r.err)
				info.status, info.errCode, info.errMsg = e.Status, e.codeOr(), e.Message
				c.Writer.Write(enc.fail(e, info))
				c.Writer.Flush()
			}
			return
		case <-timer.C:
			if !started {
				started = true
				startStream(c, info)
			}
			if _, err := c.Writer.Write(k.keepalive()); err == nil {
				c.Writer.Flush()
			}
			timer.Reset(s.keepAlive)
		}
	}
}
