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

	"github.com/spf13/cobra"
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
  xroute audit list [--kind key.] [--subject ID] | verify [--head FILE] | head
  xroute credits topup --account A --amount 10.00 --idempotency-key K | balance | ledger | verify
  xroute budgets set (--account A | --key K) --period daily|monthly --limit 50.00 [--alerts 50,80,100]
  xroute budgets list [--account A | --key K] | delete (--account A | --key K) --period P
  xroute usage report [--group-by account,key,model,provider,day|hour] [--from DATE] [--to DATE]
                      [--account ID] [--key ID] [--model M] [--provider P] [--json|--csv]
  xroute mock [openai|anthropic|gemini|azure|bedrock] [-addr HOST:PORT] [knobs, see -h]
  xroute config env        list the XROUTE_* environment variables
  xroute completion bash|zsh|fish|powershell

With XROUTE_URL and XROUTE_ADMIN_KEY set, keys, accounts, credits, budgets, audit
and usage go through the admin API of that running server (changes apply at once);
otherwise they work on the database of --config FILE (or XROUTE_CONFIG).
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

// subcommand is one top-level command: its own flag parsing (flag sets
// with --help per command) behind cobra, which gives the command tree,
// suggestions for typos and shell completion.
type subcommand struct {
	name, short string
	sub         []string // second-level words, for completion
	run         func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"serve", "run the gateway (--demo: with mock providers and a ready key)", nil, cmdServe},
		{"keys", "create, list, show, rotate, revoke, suspend, resume keys", []string{"create", "list", "show", "rotate", "revoke", "suspend", "resume"}, cmdKeys},
		{"accounts", "create and list accounts", []string{"create", "list"}, cmdAccounts},
		{"credits", "top up, read balances and the ledger, verify balances", []string{"topup", "balance", "ledger", "verify"}, cmdCredits},
		{"budgets", "set, list and delete spend limits of accounts and keys", []string{"set", "list", "delete"}, cmdBudgets},
		{"usage", "usage reports (table, --json, --csv)", []string{"report"}, cmdUsage},
		{"audit", "read and verify the audit log, sign its head", []string{"list", "verify", "head"}, cmdAudit},
		{"vault", "rotate the provider-key vault", []string{"rotate"}, cmdVault},
		{"provider-keys", "manage provider keys in the vault", []string{"add", "list", "disable", "enable", "delete"}, cmdProviderKeys},
		{"mock", "run a mock provider upstream", []string{"openai", "anthropic", "gemini", "azure", "bedrock"},
			func(ctx context.Context, args []string, stdout, _ io.Writer) error { return cmdMock(ctx, args, stdout) }},
		{"config", "list the XROUTE_* environment variables", []string{"env"},
			func(_ context.Context, args []string, stdout, _ io.Writer) error { return cmdConfig(args, stdout) }},
	}
}

// newRoot builds the command tree.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "xroute",
		Short:         "a unified, OpenAI-compatible LLM gateway",
		Long:          usage,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, sc := range subcommands() {
		sc := sc
		root.AddCommand(&cobra.Command{
			Use:                sc.name,
			Short:              sc.short,
			DisableFlagParsing: true, // each command parses its own flags
			ValidArgs:          sc.sub,
			RunE: func(cmd *cobra.Command, args []string) error {
				return sc.run(cmd.Context(), args, stdout, stderr)
			},
		})
	}
	return root
}

// run executes one command line (main's body, and the tests' entry).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
