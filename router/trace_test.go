package router

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

// TestHedgeAttemptSpans: a hedged request's two attempts are two spans:
// the slow first one cancelled once the hedge won, the hedge marked as
// one and the winner.
func TestHedgeAttemptSpans(t *testing.T) {
	defer goleak.VerifyNone(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	clock := newClock()
	f := fakes(clock, "slow", "fast")
	f["slow"].block = true // answers only when cancelled
	r, m := fleet{names: []string{"slow", "fast"}, fakes: f, clock: clock, routing: hedging(time.Millisecond)}.build(t)
	r.tracer = tp.Tracer("test")
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if _, res, err := r.Chat(ctx, m, chatReq("")); err != nil || !res.Hedged {
		t.Fatalf("%+v %v", res, err)
	}
	parent.End()

	want := map[string]struct {
		hedge   bool
		outcome string
	}{"slow/slow-m": {false, "canceled"}, "fast/fast-m": {true, "success"}}
	n := 0
	for _, s := range exp.GetSpans() {
		if s.Name != spanAttempt {
			continue
		}
		n++
		got := map[string]any{}
		for _, kv := range s.Attributes {
			got[string(kv.Key)] = kv.Value.AsInterface()
		}
		w, ok := want[got["xroute.deployment"].(string)]
		if !ok || got["xroute.attempt.hedge"] != w.hedge || got["xroute.attempt.outcome"] != w.outcome {
			t.Errorf("attempt span %v, want %+v", got, w)
		}
		if s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("attempt %v is not under the request's span", got["xroute.deployment"])
		}
		if w.outcome == "canceled" && s.Status.Code.String() == "Error" {
			t.Error("a cancelled hedge loser is no error")
		}
	}
	if n != 2 {
		t.Fatalf("%d attempt spans, want 2", n)
	}
}
