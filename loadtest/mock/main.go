package mock

import (
	"context"
	"io"
	"net/http"
)

// Main runs the mock upstream: it parses args (the flags of
// Config.RegisterFlags plus -addr), listens, prints
// "mock listening on http://ADDR/v1" to stdout and serves until ctx is done.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg Config
	cmd := Command{Name: "mock", Addr: DefaultAddr, Path: "/v1", Flags: cfg.RegisterFlags,
		Handler: func() http.Handler { return New(cfg) }}
	return cmd.Run(ctx, args, stdout)
}
