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

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// serve runs the gateway until ctx is done; its flags are parsed by the
// serve command (commands.go).
func serve(ctx context.Context, opts serveOptions, stdout, stderr io.Writer) error {
	cfg, err := config.Load(opts.configPath, os.Environ())
	if err != nil {
		return err
	}
	if opts.addr != "" {
		cfg.Server.Addr = opts.addr
	}
	log, err := newLogger(cfg.Log, stderr, opts.demo)
	if err != nil {
		return err
	}
	defer log.Sync()

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
		return err
	}
	defer gw.Close()

	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.Addr, err)
	}
	srv, err := gw.NewServer(cfg, log)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if gw.Metrics != nil {
		stopMetrics, err := serveMetrics(cfg.Server.MetricsAddr, gw.Metrics, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	if cfg.Server.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.Server.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	base := "http://" + ln.Addr().String()
	log.Info("xroute listening", zap.String("addr", ln.Addr().String()), zap.Int("models", len(cfg.Models)), zap.String("database", app.StoreName(cfg)), zap.String("spool", app.SpoolDir(cfg)))

	if opts.demo {
		key, _, err := gw.Keys.Create(ctx, keys.CreateParams{Name: "demo", Actor: "demo"})
		if err != nil {
			return fmt.Errorf("demo key: %w", err)
		}
		// The demo account starts with 10 USD (once per database).
		if _, _, err := gw.Ledger.TopUp(ctx, store.DefaultAccountID, 10*billing.NanoPerUSD, "demo-initial-credits", "demo"); err != nil {
			return fmt.Errorf("demo credits: %w", err)
		}
		adminKey, _, err := gw.Keys.Create(ctx, keys.CreateParams{Name: "demo-admin", Kind: keys.KindAdmin, Actor: "demo"})
		if err != nil {
			return fmt.Errorf("demo admin key: %w", err)
		}
		printDemo(stdout, base, key, adminKey)
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

// startDemoMocks runs two mock providers in-process and points the config
// at them: a primary and a backup, so failover can be seen with the
// mock's `#mock:status=503` directive.
func startDemoMocks(cfg *config.Config) ([]*http.Server, error) {
	specs := []struct {
		name string
		mc   mock.Config
	}{
		{"mock-primary", mock.Config{Latency: 40 * time.Millisecond, TokensPerSec: 30, APIKey: "sk-mock-primary", Seed: 1}},
		{"mock-backup", mock.Config{Latency: 80 * time.Millisecond, TokensPerSec: 20, APIKey: "sk-mock-backup", Seed: 2}},
	}
	var servers []*http.Server
	for _, sp := range specs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return nil, fmt.Errorf("demo mock: %w", err)
		}
		srv := &http.Server{Handler: mock.New(sp.mc), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		servers = append(servers, srv)
		cfg.Providers = append(cfg.Providers, config.Provider{
			Name: sp.name, Type: "openai", BaseURL: "http://" + ln.Addr().String() + "/v1", APIKey: sp.mc.APIKey,
			// The mock serves the Responses API and legacy completions as
			// OpenAI does: they are passed through natively.
			NativeFormats: []string{"responses", "completions"},
		})
	}
	// OpenAI's list prices, so the demo meters real-looking costs.
	for _, m := range []struct{ name, in, out string }{{"gpt-4o-mini", "0.15", "0.60"}, {"gpt-4o", "2.50", "10.00"}, {"gpt-4.1-nano", "0.10", "0.40"}} {
		if hasModel(cfg, m.name) {
			continue
		}
		cfg.Models = append(cfg.Models, config.Model{Name: m.name, OwnedBy: "xroute-demo", Deployments: []config.Deployment{
			{Provider: "mock-primary", Model: m.name, InputPrice: m.in, OutputPrice: m.out},
			{Provider: "mock-backup", Model: m.name, InputPrice: m.in, OutputPrice: m.out},
		}})
	}
	if err := cfg.Validate(); err != nil {
		return servers, err
	}
	return servers, nil
}

func hasModel(cfg *config.Config, name string) bool {
	for _, m := range cfg.Models {
		if m.Name == name {
			return true
		}
	}
	return false
}

func printDemo(w io.Writer, base, key, adminKey string) {
	fmt.Fprintf(w, "xroute demo is running with two mock providers. Paste these lines into your shell:\n\n")
	fmt.Fprintf(w, "export OPENAI_BASE_URL=%s/v1\n", base)
	fmt.Fprintf(w, "export OPENAI_API_KEY=%s\n", key)
	fmt.Fprintf(w, "\nThen try (works as printed):\n\n")
	fmt.Fprintf(w, "curl -sS %s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'\n\n", base, key)
	fmt.Fprintf(w, "The Responses API (Codex CLI, the Vercel AI SDK, the Agents SDK) and the seed's /openai/v1 base URL work too:\n\n")
	fmt.Fprintf(w, "curl -sS %s/openai/v1/responses -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"input\":\"Hello!\"}'\n\n", base, key)
	fmt.Fprintf(w, "Claude Code and the Anthropic SDKs: ANTHROPIC_BASE_URL=%s ANTHROPIC_AUTH_TOKEN=%s claude --model gpt-4o-mini\n\n", base, key)
	fmt.Fprintf(w, "Streaming: add \"stream\":true to the body and -N to curl. The demo account has 10 USD of credits:\n")
	fmt.Fprintf(w, "curl -sS %s/v1/credits -H 'Authorization: Bearer %s'\n\n", base, key)
	fmt.Fprintf(w, "Operators: an admin key for the admin API (keys, accounts, provider keys, audit log):\n\n")
	fmt.Fprintf(w, "export XROUTE_ADMIN_KEY=%s\n", adminKey)
	fmt.Fprintf(w, "curl -sS %s/admin/v1/keys -H 'Authorization: Bearer %s'\n\nStop with Ctrl-C.\n", base, adminKey)
}

var errUsage = errors.New("usage")

// serveMetrics serves /metrics on a listener of its own
// (server.metrics_addr), e.g. on an interface only the scraper reaches.
func serveMetrics(addr string, h http.Handler, log *zap.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server.metrics_addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return func() { srv.Close() }, nil
}

// servePprof exposes the Go profiler on its own listener, for profiling a
// running gateway (go tool pprof http://ADDR/debug/pprof/heap).
func servePprof(addr string, log *zap.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server.pprof_addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Warn("pprof is exposed", zap.String("addr", ln.Addr().String()))
	return func() { srv.Close() }, nil
}
