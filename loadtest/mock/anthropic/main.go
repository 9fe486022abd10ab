package anthropic

import (
	"context"
	"io"
	"net/http"

	"github.com/xroute/xroute/loadtest/mock"
)

// DefaultAddr is the listen address of Main.
const DefaultAddr = "127.0.0.1:9002"

// Main runs the mock Anthropic upstream: it parses args (the flags of
// Config.RegisterFlags plus -addr), listens, prints
// "mock anthropic listening on http://ADDR" (the base_url) to stdout and
// serves until ctx is done.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg Config
	cmd := mock.Command{Name: "mock anthropic", Addr: DefaultAddr, Flags: cfg.RegisterFlags,
		Handler: func() http.Handler { return New(cfg) }}
	return cmd.Run(ctx, args, stdout)
}
