package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
	azuremock "github.com/xroute/xroute/loadtest/mock/azure"
	bedrockmock "github.com/xroute/xroute/loadtest/mock/bedrock"
	geminimock "github.com/xroute/xroute/loadtest/mock/gemini"
)

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
		var cfg azuremock.Config
		cfg.RegisterFlags(fs)
		addr := fs.String("addr", "127.0.0.1:9004", "listen address")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveMock(ctx, "azure", *addr, azuremock.New(cfg), stdout)
	case "bedrock":
		fs := flag.NewFlagSet("mock bedrock", flag.ContinueOnError)
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
