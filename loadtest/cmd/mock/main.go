// Command mock runs xroute's mock OpenAI-compatible upstream (see package
// github.com/xroute/xroute/loadtest/mock). Example:
//
//	go run ./loadtest/cmd/mock -addr 127.0.0.1:9001 -tokens-per-sec 50 -fail-429 0.01
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mock.Main(ctx, os.Args[1:], os.Stdout); err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mock:", err)
		os.Exit(1)
	}
}
