// Command mock runs xroute's mock OpenAI-compatible upstream (see package
// github.com/xroute/xroute/loadtest/mock), or with a first argument
// "anthropic" the mock Anthropic Messages upstream (package
// github.com/xroute/xroute/loadtest/mock/anthropic), as `xroute mock` does.
// Examples:
//
//	go run ./loadtest/cmd/mock -addr 127.0.0.1:9001 -tokens-per-sec 50 -fail-429 0.01
//	go run ./loadtest/cmd/mock anthropic -addr 127.0.0.1:9002 -tokens-per-sec 50
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serve, args := mock.Main, os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "openai":
			args = args[1:]
		case "anthropic":
			serve, args = anthropicmock.Main, args[1:]
		}
	}
	if err := serve(ctx, args, os.Stdout); err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mock:", err)
		os.Exit(1)
	}
}
