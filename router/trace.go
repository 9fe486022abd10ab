package router

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
)

// WithTracer makes every attempt a span (xroute.attempt) under the
// request's, with the upstream call beneath it (nil: no spans).
func WithTracer(t trace.Tracer) Option { return func(r *Router) { r.tracer = t } }

// Attempt span names and attributes (internal/telemetry documents them;
// the router takes only the OpenTelemetry API).
const (
	spanAttempt      = "xroute.attempt"
	attrDeployment   = attribute.Key("xroute.deployment")
	attrOutcome      = attribute.Key("xroute.attempt.outcome")
	attrBreakerState = attribute.Key("xroute.breaker.state")
	attrHedge        = attribute.Key("xroute.attempt.hedge")
	attrStrategy     = attribute.Key("xroute.routing.strategy")
)

// startAttempt starts an attempt's span; with tracing off it returns ctx
// and nil at the cost of one branch.
func (r *Router) startAttempt(ctx context.Context, d *Deployment, req *providers.ChatRequest, hedge bool, strategy string) (context.Context, trace.Span) {
	if r.tracer == nil {
		return ctx, nil
	}
	ctx, sp := r.tracer.Start(ctx, spanAttempt)
	if sp.IsRecording() {
		sp.SetAttributes(
			semconv.GenAIOperationNameKey.String(operation(req)),
			semconv.GenAIProviderNameKey.String(d.Provider),
			semconv.GenAIRequestModel(d.Model),
			attrDeployment.String(d.name),
			attrHedge.Bool(hedge),
			attrStrategy.String(strategy),
		)
	}
	return ctx, sp
}

// operation is gen_ai.operation.name for a request (nil: embeddings).
func operation(req *providers.ChatRequest) string {
	switch {
	case req == nil:
		return "embeddings"
	case req.Format == providers.FormatCompletions:
		return "text_completion"
	}
	return "chat"
}

// endAttempt ends an attempt's span with its outcome and its deployment's
// breaker state after it. Callers check sp != nil first, so that tracing
// off does not even work out the outcome.
func endAttempt(sp trace.Span, d *Deployment, outcome string, err error) {
	if sp.IsRecording() {
		sp.SetAttributes(attrOutcome.String(outcome), attrBreakerState.String(d.BreakerState()))
		if err != nil && outcome == "failure" {
			typ := "error"
			var pe *providers.Error
			if errors.As(err, &pe) && pe.Status > 0 {
				typ = strconv.Itoa(pe.Status)
			} else if errors.Is(err, context.DeadlineExceeded) {
				typ = "timeout"
			}
			sp.SetAttributes(semconv.ErrorTypeKey.String(typ))
			// Not the error's text: an upstream may quote the request in it.
			sp.SetStatus(codes.Error, "upstream "+typ)
		}
	}
	sp.End()
}

// seqOutcome is a sequential attempt's outcome.
func seqOutcome(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "success"
	case ctx.Err() != nil:
		return "canceled" // the caller left or its deadline passed
	}
	return "failure"
}

// hedgeOutcome is the outcome of a hedged attempt that did not win:
// over is true once another won or the router stopped.
func hedgeOutcome(err error, over bool) string {
	switch {
	case err == nil:
		return "lost"
	case over && errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "failure"
}

// zapTrace is the trace_id field of a request's log line (zap.Skip when
// the request has no trace), so that the line joins its trace.
func zapTrace(ctx context.Context) zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.TraceID().IsValid() {
		return zap.Skip()
	}
	return zap.String("trace_id", sc.TraceID().String())
}
