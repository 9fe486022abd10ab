// Package telemetry is xroute's OpenTelemetry tracing: a tracer provider
// exporting over OTLP (HTTP or gRPC), configured the standard way (the
// OTEL_* variables every SDK reads) and from the config file's telemetry
// section; the W3C trace context read from callers and sent upstream; the
// span names and attributes xroute uses (the GenAI semantic conventions
// plus xroute.*).
//
// Off is a nil *Tracer: every method is safe on it and does nothing, so
// the request path pays one nil check per span it would have started.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/xroute/xroute/config"
)

// ScopeName is the instrumentation scope of xroute's spans.
const ScopeName = "github.com/xroute/xroute"

// Tracer starts xroute's spans. A nil *Tracer is tracing off.
type Tracer struct {
	tp      *sdktrace.TracerProvider // nil when built on a provider we do not own
	tracer  trace.Tracer
	prop    propagation.TraceContext
	content bool
}

// The standard variables that turn tracing on, and off again.
const (
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
)

// Enabled reports whether cfg and the environment turn tracing on: an
// endpoint in the config or in OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, and
// neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none.
func Enabled(cfg config.Telemetry, getenv func(string) string) bool {
	if strings.EqualFold(getenv(envSDKDisabled), "true") || strings.EqualFold(getenv(envTracesExporter), "none") {
		return false
	}
	return cfg.Endpoint != "" || getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != ""
}

// New builds the tracer cfg and the environment ask for, or nil (off)
// when neither names an endpoint. The exporters read the rest of the
// OTEL_EXPORTER_OTLP_* variables themselves (headers, timeouts,
// certificates, compression), the SDK reads OTEL_TRACES_SAMPLER(_ARG) and
// OTEL_BSP_*, and the resource OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES; a config key that is set wins over its
// variable. Errors name the config field. Shutdown flushes what is
// buffered.
func New(ctx context.Context, cfg config.Telemetry, getenv func(string) string, version string) (*Tracer, error) {
	if !Enabled(cfg, getenv) {
		return nil, nil
	}
	exp, err := newExporter(ctx, cfg, getenv)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg, version)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if cfg.Sampler != "" {
		// Without this option the SDK reads OTEL_TRACES_SAMPLER itself.
		s, err := ParseSampler(cfg.Sampler, cfg.SamplerArg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithSampler(s))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	t := FromProvider(tp, cfg.CaptureContent)
	t.tp = tp
	return t, nil
}

// FromProvider is a Tracer on a provider the caller owns (tests use the
// SDK's in-memory exporter); Shutdown leaves it alone.
func FromProvider(tp trace.TracerProvider, captureContent bool) *Tracer {
	return &Tracer{tracer: tp.Tracer(ScopeName), content: captureContent}
}

func newExporter(ctx context.Context, cfg config.Telemetry, getenv func(string) string) (sdktrace.SpanExporter, error) {
	proto := cfg.Protocol
	if proto == "" {
		proto = getenv(envTracesProtocol)
	}
	if proto == "" {
		proto = getenv(envProtocol)
	}
	headers, err := parseList(cfg.Headers)
	if err != nil {
		return nil, fmt.Errorf("telemetry.headers: %w", err)
	}
	switch proto {
	case "", "http/protobuf":
		var opts []otlptracehttp.Option
		if cfg.Endpoint != "" {
			u, err := httpTracesURL(cfg.Endpoint)
			if err != nil {
				return nil, err
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		}
		if len(headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(headers))
		}
		return otlptracehttp.New(ctx, opts...)
	case "grpc":
		var opts []otlptracegrpc.Option
		switch {
		case strings.Contains(cfg.Endpoint, "://"):
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		case cfg.Endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(headers))
		}
		// Not blocking: the SDK's exporter dials lazily, so a collector
		// that is down delays nothing at start.
		return otlptracegrpc.New(ctx, opts...)
	}
	return nil, fmt.Errorf("telemetry.protocol: %q is not supported: use http/protobuf or grpc", proto)
}

// httpTracesURL is the OTLP/HTTP traces URL of a base endpoint, as the
// SDKs derive it from OTEL_EXPORTER_OTLP_ENDPOINT (a URL already ending
// in /v1/traces is kept).
func httpTracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("telemetry.endpoint: %q is not an http:// or https:// URL", endpoint)
	}
	if !strings.HasSuffix(u.Path, "/v1/traces") {
		u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
	}
	return u.String(), nil
}

func newResource(ctx context.Context, cfg config.Telemetry, version string) (*resource.Resource, error) {
	// Later detectors win: the default name, then OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES, then the config file's keys.
	base := []attribute.KeyValue{semconv.ServiceName("xroute")}
	if version != "" {
		base = append(base, semconv.ServiceVersion(version))
	}
	own, err := parseList(cfg.ResourceAttributes)
	if err != nil {
		return nil, fmt.Errorf("telemetry.resource_attributes: %w", err)
	}
	var set []attribute.KeyValue
	for k, v := range own {
		set = append(set, attribute.String(k, v))
	}
	if cfg.ServiceName != "" {
		set = append(set, semconv.ServiceName(cfg.ServiceName))
	}
	res, err := resource.New(ctx, resource.WithAttributes(base...), resource.WithTelemetrySDK(), resource.WithFromEnv(), resource.WithAttributes(set...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// parseList reads "k1=v1,k2=v2" (the OTEL_* list format, values
// URL-encoded).
func parseList(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", strings.TrimSpace(kv))
		}
		if dv, err := url.PathUnescape(strings.TrimSpace(v)); err == nil {
			v = dv
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// ParseSampler builds the sampler named as OTEL_TRACES_SAMPLER names it,
// with arg as OTEL_TRACES_SAMPLER_ARG (the ratio of the traceidratio
// samplers, 1 when empty).
func ParseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if strings.HasSuffix(name, "traceidratio") && arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("telemetry.sampler_arg: %q is not a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("telemetry.sampler: %q is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

// Shutdown exports what is buffered and stops the exporter, within ctx
// (give it a bounded timeout: a collector that is down must not hold up
// the process's exit).
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: flush spans: %w", err)
	}
	return nil
}

// Tracer is the OpenTelemetry tracer (nil when off), for packages that
// take the API's interface rather than this package (the router).
func (t *Tracer) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// CaptureContent reports whether prompts and completions may go on spans.
func (t *Tracer) CaptureContent() bool { return t != nil && t.content }

// Start starts a span under ctx's.
func (t *Tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, opts...)
}

// Extract continues the caller's trace: ctx carries the span context of
// h's traceparent (and tracestate) when it is valid.
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Remote is ctx carrying h's traceparent as a remote span context, for a
// gateway whose tracing is off: the caller's trace id still joins the log
// lines and the request log row to the caller's trace.
func Remote(ctx context.Context, h http.Header) context.Context {
	return propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(h))
}

// TraceID is the trace id of ctx's span (xroute's own, or the caller's
// when only its traceparent is known), in the 32 hex digits of W3C trace
// context; "" when there is none. The request log's trace_id.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// HeaderValues are the values of the export headers (the config's and
// the OTEL_EXPORTER_OTLP_(TRACES_)HEADERS'), which often hold a
// collector's token: the gateway's redactor keeps them out of its logs.
func HeaderValues(cfg config.Telemetry, getenv func(string) string) []string {
	var out []string
	for _, s := range []string{cfg.Headers, getenv("OTEL_EXPORTER_OTLP_HEADERS"), getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS")} {
		kv, _ := parseList(s)
		for _, v := range kv {
			if len(v) >= 8 { // a token, not a short value the redactor would find everywhere
				out = append(out, strings.TrimPrefix(strings.TrimPrefix(v, "Bearer "), "bearer "))
			}
		}
	}
	return out
}
