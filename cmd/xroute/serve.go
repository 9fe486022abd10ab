package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
)

// serve runs the gateway until ctx is done; its flags are parsed by the
// serve command (commands.go).
func serve(ctx context.Context, opts serveOptions, stdout, stderr io.Writer) error {
	dataDir := opts.dataDir
	cfg, warns, err := config.LoadWithWarnings(opts.configPath, os.Environ())
	if err != nil {
		return configError(opts.configPath, err)
	}
	if opts.addr != "" {
		cfg.Server.Addr = opts.addr
	}
	if opts.demo && dataDir == "" {
		if dataDir, err = demoDataDir(os.Getenv); err != nil {
			return err
		}
	}
	if dataDir != "" {
		cfg = app.InDataDir(cfg, dataDir)
	}
	log, err := newLogger(cfg.Log, stderr, opts.demo)
	if err != nil {
		return err
	}
	defer log.Sync()
	for _, w := range warns {
		log.Warn(w.String())
	}

	// Nothing is written before the listeners are bound: a start that
	// cannot serve (port in use, a bad master key, a read-only data
	// directory) leaves the disk as it found it.
	if err := app.Preflight(cfg); err != nil {
		return err
	}
	ln := opts.listener
	if ln == nil {
		if ln, err = listen(cfg.Server.Addr, "server.addr", "pass --addr 127.0.0.1:0 (any free port)"); err != nil {
			return err
		}
	}
	defer ln.Close()
	var metricsLn net.Listener
	if cfg.Server.Metrics && cfg.Server.MetricsAddr != "" {
		if metricsLn, err = listen(cfg.Server.MetricsAddr, "server.metrics_addr", "set XROUTE_SERVER_METRICS_ADDR to a free address"); err != nil {
			return err
		}
		defer metricsLn.Close()
	}
	var pprofLn net.Listener
	if cfg.Server.PprofAddr != "" {
		if pprofLn, err = listen(cfg.Server.PprofAddr, "server.pprof_addr", "set XROUTE_SERVER_PPROF_ADDR to a free address"); err != nil {
			return err
		}
		defer pprofLn.Close()
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return app.Explain(err)
		}
	}

	var mocks []*http.Server
	if opts.demo {
		if mocks, err = startDemoMocks(&cfg); err != nil {
			return err
		}
		defer func() {
			for _, m := range mocks {
				m.Close()
			}
		}()
	}

	gw, err := app.Build(ctx, cfg, log)
	if err != nil {
		return app.Explain(err)
	}
	defer gw.Close()

	srv, err := gw.NewServer(cfg, log)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if gw.Metrics != nil && metricsLn != nil {
		defer serveMetrics(metricsLn, gw.Metrics, log)()
	}
	if pprofLn != nil {
		defer servePprof(pprofLn, log)()
	}
	e := endpointsOf(ln, metricsLn, cfg)
	log.Info("xroute listening", zap.String("addr", ln.Addr().String()), zap.String("openai_base_url", e.OpenAI), zap.String("anthropic_base_url", e.Anthropic),
		zap.String("dashboard", e.UI), zap.String("metrics", e.Metrics), zap.Int("models", len(cfg.Models)), zap.String("database", app.StoreName(cfg)), zap.String("spool", app.SpoolDir(cfg)))
	printBanner(stdout, e, cfg)

	if opts.demo {
		dk, err := ensureDemoKeys(ctx, gw, dataDir)
		if err != nil {
			return err
		}
		printDemo(stdout, e, dk, dataDir)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Graceful stop: refuse new connections, let in-flight requests and
	// streams finish up to the deadline, cut the rest with an error event
	// in their callers' formats, then flush usage records.
	log.Info("shutting down", zap.Duration("deadline", cfg.Server.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx, 5*time.Second); err != nil {
		log.Warn("in-flight requests cut at the shutdown deadline", zap.Error(err))
	}
	return nil
}

func newLogger(lc config.Log, w io.Writer, demo bool) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(lc.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if lc.Format == "console" || demo {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}

var errUsage = errors.New("usage")

// serveMetrics serves /metrics on a listener of its own
// (server.metrics_addr, bound before anything was written), e.g. on an
// interface only the scraper reaches.
func serveMetrics(ln net.Listener, h http.Handler, log *zap.Logger) func() {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return func() { srv.Close() }
}

// servePprof exposes the Go profiler on its own listener, for profiling a
// running gateway (go tool pprof http://ADDR/debug/pprof/heap).
func servePprof(ln net.Listener, log *zap.Logger) func() {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Warn("pprof is exposed", zap.String("addr", ln.Addr().String()))
	return func() { srv.Close() }
}
