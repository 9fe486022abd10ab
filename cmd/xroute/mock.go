package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
	azuremock "github.com/xroute/xroute/loadtest/mock/azure"
	bedrockmock "github.com/xroute/xroute/loadtest/mock/bedrock"
	geminimock "github.com/xroute/xroute/loadtest/mock/gemini"
)

// newMockCmd is `xroute mock`. Its knobs are the loadtest mocks' own Go
// flag sets (single dash, `-addr`, `-latency`), parsed by the mock itself:
// scripts and the bench harness pass them in that form.
func newMockCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "mock [openai|anthropic|gemini|azure|bedrock] [-addr HOST:PORT] [knobs]",
		Short: "run a mock provider upstream (for demos, tests and benchmarks)",
		Long: `Run a mock provider upstream. Its knobs are Go flags of the mock itself
(single dash): 'xroute mock anthropic -h' lists them.`,
		Example: `  xroute mock -addr 127.0.0.1:9001 -latency 50ms
  xroute mock anthropic -addr 127.0.0.1:9002`,
		ValidArgs:             mockFormats,
		DisableFlagParsing:    true,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f := mockFormat(args); !slices.Contains(mockFormats, f) {
				ue := &usageError{msg: fmt.Sprintf("unknown mock %q", f)}
				for _, m := range mockFormats {
					if config.EditDistance(f, m) <= 2 {
						ue.suggestions = append(ue.suggestions, m)
					}
				}
				return ue
			}
			for _, a := range args {
				if a == "--help" || a == "-h" || a == "-help" {
					// cobra's help, then the mock's own knobs
					if err := cmd.Help(); err != nil {
						return err
					}
					fmt.Fprintln(stdout, "\nKnobs:")
					return cmdMock(cmd.Context(), []string{mockFormat(args), "-h"}, stdout)
				}
			}
			return cmdMock(cmd.Context(), args, stdout)
		},
	}
}

var mockFormats = []string{"openai", "anthropic", "gemini", "azure", "bedrock"}

func mockFormat(args []string) string {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return args[0]
	}
	return "openai"
}

// cmdMock runs a mock upstream: `xroute mock [openai|anthropic|gemini|azure|bedrock] [flags]`.
func cmdMock(ctx context.Context, args []string, stdout io.Writer) error {
	format := "openai"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		format, args = args[0], args[1:]
	}
	switch format {
	case "openai":
		return mock.Main(ctx, args, stdout)
	case "anthropic":
		return anthropicmock.Main(ctx, args, stdout)
	case "gemini":
		return geminimock.Main(ctx, args, stdout)
	case "azure":
		fs := flag.NewFlagSet("mock azure", flag.ContinueOnError)
		fs.SetOutput(stdout)
		var cfg azuremock.Config
		cfg.RegisterFlags(fs)
		addr := fs.String("addr", "127.0.0.1:9004", "listen address")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveMock(ctx, "azure", *addr, azuremock.New(cfg), stdout)
	case "bedrock":
		fs := flag.NewFlagSet("mock bedrock", flag.ContinueOnError)
		fs.SetOutput(stdout)
		var cfg bedrockmock.Config
		cfg.RegisterFlags(fs)
		addr := fs.String("addr", "127.0.0.1:9005", "listen address")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveMock(ctx, "bedrock", *addr, bedrockmock.New(cfg), stdout)
	}
	return fmt.Errorf("%w: xroute mock [openai|anthropic|gemini|azure|bedrock] [flags]", errUsage)
}

func serveMock(ctx context.Context, name, addr string, h http.Handler, stdout io.Writer) error {
	return mock.Serve(ctx, "mock "+name, addr, h, stdout)
}
