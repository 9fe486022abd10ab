package mock

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Serve listens on addr, prints "NAME listening on http://ADDR" to stdout
// and serves h until ctx is done; then it shuts the server down, giving
// requests in flight 5 seconds.
func Serve(ctx context.Context, name, addr string, h http.Handler, stdout io.Writer) error {
	return serve(ctx, name, addr, "", h, stdout)
}

// Command is the command line of a mock: the flags of its configuration
// plus -addr, then Serve.
type Command struct {
	Name    string              // names the flag set, errors and the "NAME listening on" line
	Addr    string              // default of -addr
	Path    string              // printed after the address: the base URL's path ("/v1"), may be empty
	Flags   func(*flag.FlagSet) // binds the knobs of a configuration (Config.RegisterFlags)
	Handler func() http.Handler // builds the server once the flags are parsed
}

// Run parses args and serves until ctx is done (see Serve).
func (c *Command) Run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(strings.ReplaceAll(c.Name, " ", "-"), flag.ContinueOnError)
	fs.SetOutput(stdout)
	c.Flags(fs)
	addr := fs.String("addr", c.Addr, "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments: %q", c.Name, fs.Args())
	}
	return serve(ctx, c.Name, *addr, c.Path, c.Handler(), stdout)
}

func serve(ctx context.Context, name, addr, path string, h http.Handler, stdout io.Writer) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "%s listening on http://%s%s\n", name, ln.Addr(), path)

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
