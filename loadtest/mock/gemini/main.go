package gemini

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

// DefaultAddr is where Main listens unless told otherwise.
const DefaultAddr = "127.0.0.1:9003"

// RegisterFlags binds c's knobs to fs: the OpenAI mock's flags plus
// -thoughts-tokens and -implicit-cache-min.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.ThoughtsTokens, "thoughts-tokens", c.ThoughtsTokens, "usageMetadata.thoughtsTokenCount reported on every answer (0 = none)")
	fs.IntVar(&c.ImplicitCacheMin, "implicit-cache-min", c.ImplicitCacheMin, "prompts of at least this many tokens report half of them as cached (0 = off)")
}

// Main runs the Gemini mock: it parses args (the flags of RegisterFlags
// plus -addr), listens, prints "gemini mock listening on http://ADDR" to
// stdout and serves until ctx is done. Point an xroute provider of type
// "gemini" at base_url http://ADDR.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gemini-mock", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var cfg Config
	cfg.RegisterFlags(fs)
	addr := fs.String("addr", DefaultAddr, "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gemini mock: unexpected arguments: %q", fs.Args())
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: New(cfg), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "gemini mock listening on http://%s\n", ln.Addr())
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
