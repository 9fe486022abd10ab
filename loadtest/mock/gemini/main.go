package gemini

import (
	"context"
	"flag"
	"io"
	"net/http"

	"github.com/xroute/xroute/loadtest/mock"
)

// DefaultAddr is where Main listens unless told otherwise.
const DefaultAddr = "127.0.0.1:9003"

// RegisterFlags binds c's knobs to fs: the OpenAI mock's flags plus
// -thoughts-tokens and -implicit-cache-min.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.IntVar(&c.ThoughtsTokens, "thoughts-tokens", c.ThoughtsTokens, "default usageMetadata.thoughtsTokenCount when a request sets no thinking budget or level (0 = none)")
	fs.IntVar(&c.ImplicitCacheMin, "implicit-cache-min", c.ImplicitCacheMin, "prompts of at least this many tokens report half of them as cached (0 = off)")
}

// Main runs the Gemini mock: it parses args (the flags of RegisterFlags
// plus -addr), listens, prints "gemini mock listening on http://ADDR" to
// stdout and serves until ctx is done. Point an xroute provider of type
// "gemini" at base_url http://ADDR.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg Config
	cmd := mock.Command{Name: "gemini mock", Addr: DefaultAddr, Flags: cfg.RegisterFlags,
		Handler: func() http.Handler { return New(cfg) }}
	return cmd.Run(ctx, args, stdout)
}
