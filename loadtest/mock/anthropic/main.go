package anthropic

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultAddr is the listen address of Main.
const DefaultAddr = "127.0.0.1:9002"

// Main runs the mock Anthropic upstream: it parses args (the flags of
// Config.RegisterFlags plus -addr), listens, prints
// "mock anthropic listening on http://ADDR" (the base_url) to stdout and
// serves until ctx is done.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mock-anthropic", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var cfg Config
	cfg.RegisterFlags(fs)
	addr := fs.String("addr", DefaultAddr, "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("mock anthropic: unexpected arguments: %q", fs.Args())
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: New(cfg), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "mock anthropic listening on http://%s\n", ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
