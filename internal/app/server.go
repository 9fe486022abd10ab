package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
)

// Server is the gateway's HTTP server as the binary runs it: request
// headers within 10 s, the pre-auth connection cap per client IP
// (server.preauth_conns_per_ip), and a shutdown that cuts what outlives
// its deadline in the callers' formats. The end-to-end tests run the same.
type Server struct {
	srv   *http.Server
	limit *httpapi.PreAuthLimiter
	cut   context.CancelCauseFunc
}

// NewServer returns the server of a's handler, configured by cfg.Server.
func (a *App) NewServer(cfg config.Config, log *zap.Logger) (*Server, error) {
	limit, err := httpapi.NewPreAuthLimiter(cfg.Server.PreAuthConns, cfg.Server.TrustedProxies)
	if err != nil {
		return nil, err
	}
	// Every request's context descends from base: cancelling it with
	// httpapi.ErrShutdown tells each handler the server cut it.
	base, cut := context.WithCancelCause(context.Background())
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnContext:       limit.ConnContext,
	}
	return &Server{srv: srv, limit: limit, cut: cut}, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(s.limit.Listener(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Limiter is the pre-auth connection cap.
func (s *Server) Limiter() *httpapi.PreAuthLimiter { return s.limit }

// Shutdown stops accepting connections and lets the requests in flight
// (streams included) finish until ctx ends. Those still running then are
// cut by the server: each stream ends with an error event in its caller's
// format (a request not answered yet gets a 503), is recorded as
// server_shutdown with what it delivered billed, and its connection
// closes; grace bounds that last step. It returns ctx's error when
// requests had to be cut.
func (s *Server) Shutdown(ctx context.Context, grace time.Duration) error {
	err := s.srv.Shutdown(ctx)
	if err == nil {
		s.cut(nil)
		return nil
	}
	s.cut(httpapi.ErrShutdown)
	gctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if s.srv.Shutdown(gctx) != nil {
		s.srv.Close()
	}
	return err
}
