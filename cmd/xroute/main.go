// Command xroute is the gateway binary: `serve` runs it; the other
// subcommands are operator tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `xroute — a unified, OpenAI-compatible LLM gateway

Usage:
  xroute serve [--config FILE] [--addr HOST:PORT] [--demo]
  xroute keys create --name NAME [--account ID] [--admin] [--models GLOB,...] [--endpoints ...]
                     [--cidrs CIDR,...] [--rpm N] [--tpm N] [--max-concurrent N] [--meta k=v]
                     [--expires 720h] [--quiet] [--json]
  xroute keys list [--account ID] [--json]
  xroute keys show|revoke|resume ID
  xroute keys rotate ID [--overlap 24h]
  xroute keys suspend ID [--reason TEXT]
  xroute accounts create NAME | list
  xroute provider-keys add --provider P --name N [--weight W] < keyfile
  xroute provider-keys list [--provider P] | disable|enable|delete ID
  xroute vault rotate      new data-key term, re-encrypt every provider key
  xroute audit list [--kind key.] [--subject ID] | verify
  xroute credits topup --account A --amount 10.00 --idempotency-key K | balance | ledger | verify
  xroute usage report [--group-by account,key,model,provider,day|hour] [--from DATE] [--to DATE]
                      [--account ID] [--key ID] [--model M] [--provider P] [--json|--csv]
  xroute mock [openai|anthropic|gemini|azure|bedrock] [-addr HOST:PORT] [knobs, see -h]
  xroute config env        list the XROUTE_* environment variables

Every command that touches the database reads --config FILE (or XROUTE_CONFIG).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "xroute:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "keys":
		return cmdKeys(ctx, args[1:], stdout, stderr)
	case "accounts":
		return cmdAccounts(ctx, args[1:], stdout, stderr)
	case "credits":
		return cmdCredits(ctx, args[1:], stdout, stderr)
	case "usage":
		return cmdUsage(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr)
	case "vault":
		return cmdVault(ctx, args[1:], stdout, stderr)
	case "provider-keys":
		return cmdProviderKeys(ctx, args[1:], stdout, stderr)
	case "mock":
		return cmdMock(ctx, args[1:], stdout)
	case "config":
		return cmdConfig(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
