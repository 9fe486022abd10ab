package main

import (
	"io"
	"net"
	"os"

	"github.com/spf13/cobra"
)

// serveOptions are serve's flags; serve (serve.go) does the rest.
type serveOptions struct {
	configPath, addr, dataDir string
	demo                      bool
	// listener, when set, is served instead of binding addr: a socket
	// a parent process bound and handed over, so that it never has to
	// guess a free port (the tests' subprocess servers).
	listener net.Listener
}

func newServeCmd(stdout, stderr io.Writer) *cobra.Command {
	var opts serveOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "run the gateway (--demo: with mock providers and a ready key)",
		Example: `  xroute serve --demo
  xroute serve --config xroute.yaml --addr 0.0.0.0:8080`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.configPath = configPath(cmd)
			return serve(cmd.Context(), opts, stdout, stderr)
		},
	}
	c.Flags().StringVar(&opts.addr, "addr", "", "listen address, overrides server.addr (e.g. 127.0.0.1:8080; port 0 picks one)")
	c.Flags().BoolVar(&opts.demo, "demo", false, "start in-process mock providers and print a ready-to-use demo key")
	c.Flags().StringVar(&opts.dataDir, "data", os.Getenv("XROUTE_DATA"), "directory for the database and secrets (relative paths of the config); --demo: default a per-user directory; also XROUTE_DATA")
	return c
}
