package app

import (
	"context"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/telemetry"
)

// telemetryFlushTimeout bounds the export of the last spans at shutdown:
// a collector that is down must not hold up the exit.
const telemetryFlushTimeout = 5 * time.Second

// Option adjusts Build.
type Option func(*options)

type options struct {
	tracer     *telemetry.Tracer
	issuerPoll time.Duration
}

// WithIssuerPoll sets how often the replica reads the stored trusted
// issuers without being told (default issuerPoll); a test that must see
// the Redis fan-out deliver a change sets it beyond its own length.
func WithIssuerPoll(d time.Duration) Option { return func(o *options) { o.issuerPoll = d } }

// WithTracer traces with t instead of the tracer the config asks for (a
// test's in-memory exporter); t's owner shuts it down.
func WithTracer(t *telemetry.Tracer) Option { return func(o *options) { o.tracer = t } }

// openTelemetry builds the tracer the telemetry section and the OTEL_*
// variables ask for (nil: tracing off) and flushes it when the app closes,
// after the HTTP server has stopped and the usage is written.
func openTelemetry(ctx context.Context, cfg config.Config, cl *closers, log *zap.Logger, opts []Option) (*telemetry.Tracer, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.tracer != nil {
		return o.tracer, nil
	}
	tel, err := telemetry.New(ctx, cfg.Telemetry, os.Getenv, "")
	if err != nil || tel == nil {
		return nil, err
	}
	// The SDK reports export failures (a collector down) to its one
	// process-wide handler: to the gateway's log, not bare stderr.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: spans not exported", zap.Error(err))
	}))
	log.Info("tracing on: spans exported over OTLP")
	cl.add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), telemetryFlushTimeout)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed", zap.Error(err))
		}
	})
	return tel, nil
}
