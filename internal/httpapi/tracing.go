package httpapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/providers"
)

// Tracing (internal/telemetry): the server span starts in begin and ends
// after the access log line; auth, limits, the credit hold, the stream
// relay, the usage write and the settlement are its children; the
// router's attempts and the upstream calls under them come through the
// request's context. With tracing off (s.cfg.Tracer nil) every hook is one nil
// check, and no attribute is built: attributes are set only on spans that
// record (sampled).

// zapReq is the request's fields in a log line: its id, and its trace id
// when it has one (xroute's span, or the caller's traceparent), so that
// every line of a request joins its trace.
func zapReq(info *requestInfo) zap.Field { return zap.Inline(reqFields{info}) }

type reqFields struct{ *requestInfo }

func (f reqFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("request_id", f.id)
	if f.traceID != "" {
		enc.AddString("trace_id", f.traceID)
	}
	return nil
}

// traceBegin starts the request's server span, continuing the caller's
// trace when it sent a traceparent. With tracing off, a caller's
// traceparent still names the trace in the log lines and the request log
// row (a header lookup, and a parse only when it is there).
func (s *base) traceBegin(c *gin.Context, info *requestInfo) {
	r := c.Request
	if s.cfg.Tracer == nil {
		if _, ok := r.Header["Traceparent"]; !ok {
			return
		}
		ctx := telemetry.Remote(r.Context(), r.Header)
		if id := telemetry.TraceID(ctx); id != "" {
			info.traceID = id
			c.Request = r.WithContext(ctx)
		}
		return
	}
	name := r.Method
	if route := c.FullPath(); route != "" {
		name += " " + route
	}
	ctx := s.cfg.Tracer.Extract(r.Context(), r.Header)
	ctx, sp := s.cfg.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	info.span, info.traceCtx = sp, ctx
	if sc := sp.SpanContext(); sc.TraceID().IsValid() {
		info.traceID = sc.TraceID().String()
	}
	if sp.IsRecording() {
		sp.SetAttributes(
			semconv.HTTPRequestMethodKey.String(r.Method),
			semconv.URLPath(r.URL.Path),
			telemetry.AttrRequestID.String(info.id),
		)
		if route := c.FullPath(); route != "" {
			sp.SetAttributes(semconv.HTTPRoute(route))
		}
		info.traceContent = s.cfg.Tracer.CaptureContent()
	}
	c.Request = r.WithContext(ctx)
}

// traceEnd ends the server span with what the request came to.
func (s *base) traceEnd(c *gin.Context, info *requestInfo) {
	sp := info.span
	if sp == nil {
		return
	}
	defer sp.End()
	if !sp.IsRecording() {
		return
	}
	status := info.status
	if status == 0 {
		status = c.Writer.Status()
	}
	sp.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if info.key != nil {
		sp.SetAttributes(telemetry.AttrAccountID.String(info.key.AccountID), telemetry.AttrKeyID.String(info.key.ID))
	}
	if info.model != "" {
		s.traceModelCall(c, info, sp)
	}
	if info.errCode != "" {
		sp.SetAttributes(telemetry.AttrErrorCode.String(info.errCode), semconv.ErrorTypeKey.String(info.errCode))
	}
	// A server span is an error only when the server failed (HTTP's
	// conventions): a refusal is the caller's, and its child says why.
	if status >= 500 {
		sp.SetStatus(codes.Error, info.errCode)
	}
}

// traceModelCall puts the GenAI attributes of a model call on the server
// span.
func (s *base) traceModelCall(c *gin.Context, info *requestInfo, sp trace.Span) {
	attrs := make([]attribute.KeyValue, 0, 16)
	if op := operationOf(c.FullPath()); op != "" {
		attrs = append(attrs, semconv.GenAIOperationNameKey.String(op))
	}
	attrs = append(attrs,
		semconv.GenAIRequestModel(info.model),
		telemetry.AttrStream.Bool(info.stream),
		telemetry.AttrAttempts.Int(info.attempts),
	)
	if info.provider != "" {
		attrs = append(attrs, semconv.GenAIProviderNameKey.String(info.provider), semconv.GenAIResponseModel(info.upstream))
	}
	if info.usageSeen {
		cache := "miss"
		switch {
		case info.cached > 0:
			cache = "hit"
		case info.cacheWrite > 0:
			cache = "write"
		}
		attrs = append(attrs,
			semconv.GenAIUsageInputTokens(info.prompt),
			semconv.GenAIUsageOutputTokens(info.complete),
			semconv.GenAIUsageCacheReadInputTokens(info.cached),
			semconv.GenAIUsageCacheCreationInputTokens(info.cacheWrite),
			telemetry.AttrCache.String(cache),
			telemetry.AttrEstimated.Bool(info.estimated),
		)
	}
	if info.metered {
		attrs = append(attrs, telemetry.AttrCostUSD.Float64(float64(info.cost)/1e9))
	}
	if len(info.finish) > 0 {
		attrs = append(attrs, semconv.GenAIResponseFinishReasons(info.finish...))
	}
	if len(info.body) > 0 {
		for _, k := range [...]string{"max_completion_tokens", "max_tokens", "max_output_tokens"} {
			if v := gjson.GetBytes(info.body, k); v.Type == gjson.Number {
				attrs = append(attrs, semconv.GenAIRequestMaxTokens(int(v.Int())))
				break
			}
		}
		if v := gjson.GetBytes(info.body, "temperature"); v.Type == gjson.Number {
			attrs = append(attrs, semconv.GenAIRequestTemperature(v.Float()))
		}
	}
	if info.traceContent {
		attrs = append(attrs, capturedContent(info)...)
	}
	sp.SetAttributes(attrs...)
}

// operationOf is gen_ai.operation.name for a route ("" for the token
// counting routes, which call no model).
func operationOf(route string) string {
	switch {
	case strings.HasSuffix(route, "/input_tokens"), strings.HasSuffix(route, "/count_tokens"):
		return ""
	case strings.HasSuffix(route, "/embeddings"):
		return "embeddings"
	case strings.HasSuffix(route, "/v1/completions"):
		return "text_completion"
	}
	return "chat"
}

// capturedContent is the prompt and the answer, for an operator who
// turned content capture on: the caller's messages (or input, or prompt)
// as it sent them, and the text delivered.
func capturedContent(info *requestInfo) []attribute.KeyValue {
	var out []attribute.KeyValue
	for _, k := range [...]string{"messages", "input", "prompt"} {
		if v := gjson.GetBytes(info.body, k); v.Exists() {
			out = append(out, semconv.GenAIInputMessagesKey.String(v.Raw))
			break
		}
	}
	if len(info.delivered) > 0 {
		type part struct {
			Type    string `json:"type"`
			Content string `json:"content"`
		}
		type message struct {
			Role  string `json:"role"`
			Parts []part `json:"parts"`
		}
		b, err := json.Marshal([]message{{Role: "assistant", Parts: []part{{Type: "text", Content: string(info.delivered)}}}})
		if err == nil {
			out = append(out, semconv.GenAIOutputMessagesKey.String(string(b)))
		}
	}
	return out
}

// child starts a span under the request's (nil when it has none).
func (s *base) child(info *requestInfo, name string) trace.Span {
	if info.span == nil {
		return nil
	}
	_, sp := s.cfg.Tracer.Start(info.traceCtx, name)
	return sp
}

// endChild ends a child span; refused marks the step that refused the
// request (or failed), with the code of the answer.
func endChild(sp trace.Span, info *requestInfo, refused bool) {
	if sp == nil {
		return
	}
	if refused && sp.IsRecording() {
		code := info.errCode
		if code == "" {
			code = "error"
		}
		sp.SetAttributes(semconv.ErrorTypeKey.String(code))
		if info.status > 0 {
			sp.SetAttributes(semconv.HTTPResponseStatusCode(info.status))
		}
		sp.SetStatus(codes.Error, code)
	}
	sp.End()
}

// traced runs a middleware step in its own span (the step must not call
// c.Next: the rest of the chain would run inside the span). Off, it is
// the step itself.
func (s *base) traced(name string, h gin.HandlerFunc) gin.HandlerFunc {
	if s.cfg.Tracer == nil {
		return h
	}
	return func(c *gin.Context) {
		info := infoOf(c)
		sp := s.child(info, name)
		h(c)
		endChild(sp, info, c.IsAborted())
	}
}

// traceFirstToken marks the first token's way out to the caller on the
// stream's span.
func traceFirstToken(sp trace.Span, ttft time.Duration) {
	if sp == nil || !sp.IsRecording() {
		return
	}
	sp.AddEvent(telemetry.EventFirstToken, trace.WithAttributes(telemetry.AttrTTFTms.Float64(float64(ttft)/float64(time.Millisecond))))
}

var (
	finishReasonKey = []byte(`"finish_reason":"`)
	stopReasonKey   = []byte(`"stop_reason":"`)
)

// noteFinish keeps the finish reasons a chunk carries, for a recording
// span: from its Events, or from the chat chunk (finish_reason) or
// native Anthropic event (stop_reason) it relays.
func noteFinish(info *requestInfo, ch providers.Chunk) {
	if info.span == nil || !info.span.IsRecording() {
		return
	}
	for _, ev := range ch.Events {
		if ev.Kind == providers.EventFinish && ev.Finish != "" {
			info.addFinish(ev.Finish)
		}
	}
	switch {
	case len(ch.Events) > 0 || len(ch.Data) == 0:
	case bytes.Contains(ch.Data, finishReasonKey):
		gjson.GetBytes(ch.Data, "choices.#.finish_reason").ForEach(func(_, v gjson.Result) bool {
			if v.Str != "" {
				info.addFinish(v.Str)
			}
			return true
		})
	case bytes.Contains(ch.Data, stopReasonKey):
		if v := gjson.GetBytes(ch.Data, "delta.stop_reason"); v.Str != "" {
			info.addFinish(v.Str)
		}
	}
}

// noteFinishAnswer does the same for a non-streamed answer, and keeps its
// text when content capture is on.
func noteFinishAnswer(info *requestInfo, resp *providers.ChatResponse) {
	if info.span == nil || !info.span.IsRecording() {
		return
	}
	if info.traceContent && len(info.delivered) == 0 {
		info.delivered = appendAnswered(info.delivered, resp)
	}
	if resp.Completion != nil {
		for _, ev := range resp.Completion.Events() {
			if ev.Kind == providers.EventFinish && ev.Finish != "" {
				info.addFinish(ev.Finish)
			}
		}
		return
	}
	root := gjson.ParseBytes(resp.Body)
	root.Get("choices.#.finish_reason").ForEach(func(_, v gjson.Result) bool {
		if v.Str != "" {
			info.addFinish(v.Str)
		}
		return true
	})
	if v := root.Get("stop_reason"); v.Str != "" {
		info.addFinish(v.Str)
	}
}

func (info *requestInfo) addFinish(r string) {
	if !slices.Contains(info.finish, r) {
		info.finish = append(info.finish, r)
	}
}

// endUsageWrite ends the usage write's span, failed when the record was
// not kept or not committed.
func endUsageWrite(sp trace.Span, err error) {
	if sp == nil {
		return
	}
	if err != nil {
		sp.SetStatus(codes.Error, "usage record not committed")
	}
	sp.End()
}

// endSettle ends the settlement's span with what was charged.
func endSettle(sp trace.Span, cost int64) {
	if sp == nil {
		return
	}
	if sp.IsRecording() {
		sp.SetAttributes(telemetry.AttrCostUSD.Float64(float64(cost) / 1e9))
	}
	sp.End()
}
