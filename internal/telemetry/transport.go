package telemetry

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Transport wraps the upstream client's transport: each call to a
// provider is a client span under the attempt that made it, and the
// provider gets a W3C traceparent naming it. The span ends when the
// answer's body is read to its end or closed, so a stream's span covers
// the stream. Off (nil), base is returned as it is.
//
// Only the method, host, port, path and status go on the span: never the
// query (Gemini's key may travel there), nor a header.
func (t *Tracer) Transport(base http.RoundTripper) http.RoundTripper {
	if t == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, tracer: t.tracer}
}

type transport struct {
	base   http.RoundTripper
	tracer trace.Tracer
	prop   propagation.TraceContext
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), req.Method, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(req.Method),
			semconv.ServerAddress(req.URL.Hostname()),
			semconv.URLScheme(req.URL.Scheme),
			semconv.URLPath(req.URL.Path),
		)
		if p := req.URL.Port(); p != "" {
			if n, err := strconv.Atoi(p); err == nil {
				span.SetAttributes(semconv.ServerPort(n))
			}
		}
	}
	// A RoundTripper must not change the caller's request: the header
	// goes out on a copy.
	out := req.Clone(ctx)
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String("transport"))
		span.SetStatus(codes.Error, "no answer from the upstream")
		span.End()
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		span.End()
		return resp, nil
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// spanBody ends its span at the body's end or close, whichever is first
// (a stream's reader and its closer may be different goroutines).
type spanBody struct {
	io.ReadCloser
	span  trace.Span
	ended atomic.Bool
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil)
	return err
}

func (b *spanBody) end(err error) {
	if !b.ended.CompareAndSwap(false, true) {
		return
	}
	if err != nil && err != io.EOF {
		b.span.SetAttributes(semconv.ErrorTypeKey.String("body_read"))
		b.span.SetStatus(codes.Error, "the upstream's answer broke off")
	}
	b.span.End()
}
