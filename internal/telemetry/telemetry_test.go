package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/telemetry"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  config.Telemetry
		env  map[string]string
		want bool
	}{
		{"nothing configured", config.Telemetry{}, nil, false},
		{"config endpoint", config.Telemetry{Endpoint: "http://c:4318"}, nil, true},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", config.Telemetry{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", config.Telemetry{}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{"sampler alone does not turn it on", config.Telemetry{Sampler: "always_on"}, map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
		{"OTEL_SDK_DISABLED wins", config.Telemetry{Endpoint: "http://c:4318"}, map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
		{"OTEL_TRACES_EXPORTER=none wins", config.Telemetry{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := telemetry.Enabled(c.cfg, env(c.env)); got != c.want {
				t.Fatalf("Enabled = %v, want %v", got, c.want)
			}
		})
	}
}

// TestOffIsNil: off, New returns nil, and every use of a nil Tracer is
// harmless (the request path relies on it).
func TestOffIsNil(t *testing.T) {
	tel, err := telemetry.New(context.Background(), config.Telemetry{}, env(nil), "")
	if err != nil || tel != nil {
		t.Fatalf("New = %v, %v; want nil, nil", tel, err)
	}
	base := http.DefaultTransport
	if tel.Transport(base) != base {
		t.Fatal("off, the upstream transport must be the base itself")
	}
	if tel.Tracer() != nil || tel.CaptureContent() {
		t.Fatal("off: no tracer, no content")
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		cfg   config.Telemetry
		field string
	}{
		{config.Telemetry{Endpoint: "http://c:4318", Protocol: "http/json"}, "telemetry.protocol"},
		{config.Telemetry{Endpoint: "c:4318"}, "telemetry.endpoint"},
		{config.Telemetry{Endpoint: "http://c:4318", Sampler: "sometimes"}, "telemetry.sampler"},
		{config.Telemetry{Endpoint: "http://c:4318", Sampler: "traceidratio", SamplerArg: "2"}, "telemetry.sampler_arg"},
		{config.Telemetry{Endpoint: "http://c:4318", Headers: "novalue"}, "telemetry.headers"},
		{config.Telemetry{Endpoint: "http://c:4318", ResourceAttributes: "=x"}, "telemetry.resource_attributes"},
	} {
		t.Run(c.field, func(t *testing.T) {
			_, err := telemetry.New(context.Background(), c.cfg, env(nil), "")
			if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
				t.Fatalf("error %v, want one naming %s", err, c.field)
			}
		})
	}
}

func TestParseSampler(t *testing.T) {
	for _, c := range []struct {
		name, arg, want string
	}{
		{"always_on", "", "AlwaysOnSampler"},
		{"always_off", "", "AlwaysOffSampler"},
		{"traceidratio", "0.01", "TraceIDRatioBased{0.01}"},
		{"parentbased_traceidratio", "0.25", "ParentBased{root:TraceIDRatioBased{0.25}"},
		{"parentbased_always_on", "", "ParentBased{root:AlwaysOnSampler"},
		{"parentbased_traceidratio", "", "ParentBased{root:TraceIDRatioBased{1}"}, // no argument: ratio 1
	} {
		s, err := telemetry.ParseSampler(c.name, c.arg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !strings.HasPrefix(s.Description(), c.want) {
			t.Errorf("%s %s: %s, want %s…", c.name, c.arg, s.Description(), c.want)
		}
	}
}

// collector is an in-test OTLP/HTTP collector: it decodes each export
// request as a collector would.
type collector struct {
	mu      sync.Mutex
	got     []*collectortrace.ExportTraceServiceRequest
	headers []http.Header
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "not an OTLP/HTTP protobuf traces export", http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.add(&req, r.Header.Clone())
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Write(out)
}

func (c *collector) add(req *collectortrace.ExportTraceServiceRequest, h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, req)
	c.headers = append(c.headers, h)
}

// spans returns every span received with its resource's attributes.
func (c *collector) spans() (spans []*tracepb.Span, resource map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resource = map[string]string{}
	for _, req := range c.got {
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.GetAttributes() {
				resource[kv.Key] = kv.Value.GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
	}
	return spans, resource
}

func emitAndFlush(t *testing.T, tel *telemetry.Tracer) {
	t.Helper()
	if tel == nil {
		t.Fatal("tracing is off")
	}
	_, sp := tel.Start(context.Background(), "xroute.test", trace.WithAttributes(attribute.String("gen_ai.request.model", "m")))
	sp.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func checkArrived(t *testing.T, spans []*tracepb.Span, res map[string]string, service string) {
	t.Helper()
	if len(spans) != 1 || spans[0].Name != "xroute.test" || len(spans[0].TraceId) != 16 {
		t.Fatalf("collector got %d spans: %v", len(spans), spans)
	}
	if res["service.name"] != service {
		t.Errorf("service.name %q, want %q", res["service.name"], service)
	}
}

// TestExportOTLPHTTP: spans reach a collector over OTLP/HTTP, with the
// config's endpoint, headers and resource attributes.
func TestExportOTLPHTTP(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	tel, err := telemetry.New(context.Background(), config.Telemetry{
		Endpoint:           srv.URL,
		Headers:            "x-collector-token=t0k%2Cen",
		ResourceAttributes: "deployment.environment.name=test",
		ServiceName:        "xroute-test",
	}, env(nil), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	emitAndFlush(t, tel)
	spans, res := col.spans()
	checkArrived(t, spans, res, "xroute-test")
	if res["deployment.environment.name"] != "test" || res["service.version"] != "1.2.3" {
		t.Errorf("resource %v", res)
	}
	if got := col.headers[0].Get("x-collector-token"); got != "t0k,en" {
		t.Errorf("export header %q", got)
	}
}

// TestExportFromEnvironment: the standard variables alone turn tracing on
// and configure it (the exporter reads the endpoint itself).
func TestExportFromEnvironment(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	tel, err := telemetry.New(context.Background(), config.Telemetry{}, func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}[k]
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	emitAndFlush(t, tel)
	spans, res := col.spans()
	checkArrived(t, spans, res, "from-env")
}

type grpcCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	c *collector
}

func (g grpcCollector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	g.c.add(req, nil)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// TestExportOTLPGRPC: the same over gRPC.
func TestExportOTLPGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, grpcCollector{c: col})
	go gs.Serve(lis)
	defer gs.Stop()
	tel, err := telemetry.New(context.Background(), config.Telemetry{Endpoint: lis.Addr().String(), Protocol: "grpc", Insecure: true}, env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	emitAndFlush(t, tel)
	spans, res := col.spans()
	checkArrived(t, spans, res, "xroute")
}

// TestTransport: an upstream call is a client span under the caller's,
// the upstream gets its traceparent (not the caller's request changed),
// the span lasts until the body is read, and neither the query (where a
// key may travel) nor a header is on it.
func TestTransport(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, "data: x\n\n")
	}))
	defer up.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	tel := telemetry.FromProvider(tp, false)
	client := &http.Client{Transport: tel.Transport(http.DefaultTransport)}

	ctx, parent := tel.Start(context.Background(), "xroute.attempt")
	req, _ := http.NewRequestWithContext(ctx, "POST", up.URL+"/v1beta/models/m:streamGenerateContent?key=SECRET-KEY-1", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer SECRET-KEY-2")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("traceparent") != "" {
		t.Fatal("the caller's request was changed")
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans ended before the body was read", n)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	parent.End()

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	call := spans[0]
	if call.Name != "POST" || call.SpanKind != trace.SpanKindClient || call.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("call span %s kind %v parent %v", call.Name, call.SpanKind, call.Parent.SpanID())
	}
	want := "00-" + call.SpanContext.TraceID().String() + "-" + call.SpanContext.SpanID().String() + "-01"
	if got.Get("traceparent") != want {
		t.Fatalf("upstream traceparent %q, want %q", got.Get("traceparent"), want)
	}
	attrs := map[string]string{}
	for _, kv := range call.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
		if strings.Contains(kv.Value.Emit(), "SECRET") {
			t.Errorf("%s carries a secret: %s", kv.Key, kv.Value.Emit())
		}
	}
	if attrs["url.path"] != "/v1beta/models/m:streamGenerateContent" || attrs["http.response.status_code"] != "200" || attrs["server.address"] != "127.0.0.1" {
		t.Errorf("attributes %v", attrs)
	}
}

// TestTransportUpstreamError: an upstream's 5xx and a failed connection
// mark the call's span as failed.
func TestTransportUpstreamError(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	client := &http.Client{Transport: telemetry.FromProvider(tp, false).Transport(nil)}
	resp, err := client.Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	up.Close()
	if _, err := client.Get(up.URL); err == nil {
		t.Fatal("a closed upstream answered")
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for i, want := range []string{"503", "transport"} {
		if spans[i].Status.Code.String() != "Error" {
			t.Errorf("span %d: status %v", i, spans[i].Status)
		}
		var typ string
		for _, kv := range spans[i].Attributes {
			if kv.Key == "error.type" {
				typ = kv.Value.AsString()
			}
		}
		if typ != want {
			t.Errorf("span %d: error.type %q, want %q", i, typ, want)
		}
	}
}

// TestTraceID: the trace id of xroute's span, of a caller's traceparent
// alone, or none.
func TestTraceID(t *testing.T) {
	if id := telemetry.TraceID(context.Background()); id != "" {
		t.Fatalf("TraceID of nothing = %q", id)
	}
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if id := telemetry.TraceID(telemetry.Remote(context.Background(), h)); id != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("TraceID of a traceparent = %q", id)
	}
	h.Set("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	if id := telemetry.TraceID(telemetry.Remote(context.Background(), h)); id != "" {
		t.Fatalf("TraceID of an invalid traceparent = %q", id)
	}
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, sp := telemetry.FromProvider(tp, false).Start(context.Background(), "x")
	defer sp.End()
	if id := telemetry.TraceID(ctx); id != sp.SpanContext().TraceID().String() {
		t.Fatalf("TraceID = %q", id)
	}
}

func TestHeaderValues(t *testing.T) {
	got := telemetry.HeaderValues(config.Telemetry{Headers: "authorization=Bearer%20collector-token-1,x=short"},
		env(map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key=collector-token-2"}))
	if strings.Join(got, ",") != "collector-token-1,collector-token-2" {
		t.Fatalf("HeaderValues = %v", got)
	}
}
