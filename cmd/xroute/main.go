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
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xroute/xroute/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// Exit statuses: a command line the CLI could not make sense of is 2 (as
// for most Unix tools); anything that went wrong doing it is 1.
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitError is what run returns for a failed command, after it has printed
// the message: it carries the process's exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		return exitFailure
	}
}

// usageError is a command line that does not parse: an unknown command or
// flag, a bad flag value, a missing argument. It is printed with what the
// user may have meant and the command's usage line, and exits 2.
type usageError struct {
	msg         string
	suggestions []string // "did you mean": commands, or flags with their dashes
}

func (e *usageError) Error() string { return e.msg }

// errUsage (serve.go) marks the usage errors found while running a command
// ("--account is required"): they exit 2 too.
func isUsage(err error) bool {
	var ue *usageError
	if errors.As(err, &ue) || errors.Is(err, errUsage) {
		return true
	}
	// cobra's own argument checks (e.g. of the completion command) return
	// plain errors; these are their openings.
	for _, p := range []string{"invalid argument ", "accepts ", "requires at least ", "requires at most ", "required flag", "unknown command ", "unknown flag", "unknown shorthand flag", "flag needs an argument"} {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

// run executes one command line: main's body and the tests' entry. It
// prints a failure once, on stderr, and returns it as an *exitError.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || errors.Is(err, flag.ErrHelp) { // ErrHelp: a mock's own -h
		return nil
	}
	if cmd == nil {
		cmd = root
	}
	if isUsage(err) {
		printUsageError(stderr, cmd, err)
		return &exitError{code: exitUsage, err: err}
	}
	fmt.Fprintln(stderr, "xroute:", err)
	return &exitError{code: exitFailure, err: err}
}

func printUsageError(w io.Writer, cmd *cobra.Command, err error) {
	fmt.Fprintln(w, "xroute:", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
	var ue *usageError
	if errors.As(err, &ue) && len(ue.suggestions) > 0 {
		fmt.Fprintln(w, "\nDid you mean this?")
		for _, s := range ue.suggestions {
			fmt.Fprintf(w, "\t%s\n", s)
		}
		fmt.Fprintln(w)
	}
	if cmd.HasAvailableSubCommands() {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		fmt.Fprintf(w, "Usage: %s COMMAND (%s)\n", cmd.CommandPath(), strings.Join(names, ", "))
	} else {
		fmt.Fprintf(w, "Usage: %s\n", cmd.UseLine())
	}
	fmt.Fprintf(w, "Run '%s --help' for more.\n", cmd.CommandPath())
}

// newRoot builds the command tree. Nothing in it is package state: every
// run builds its own, so tests can run commands in parallel.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "xroute",
		Short: "a unified, OpenAI-compatible LLM gateway",
		Long: `xroute — a unified, OpenAI-compatible LLM gateway.

'xroute serve' runs the gateway; the other commands are operator tools. With
XROUTE_URL and XROUTE_ADMIN_KEY set, keys, accounts, credits, budgets, audit,
usage, provider-keys, vault and logs go through the admin API of that running
server (changes apply at once); otherwise they work on the database of
--config FILE (or XROUTE_CONFIG).

Flags may come before or after arguments. Durations take Go's units and d
(days) and w (weeks): --expires 30d, --overlap 1w2d. Exit status: 0 done,
1 failed (a server error shows its message, code and request id), 2 the
command line was wrong.`,
		Example: `  xroute serve --demo
  xroute keys create --name ci --models 'gpt-4o*' --expires 30d
  xroute keys rotate key_123 --overlap 1w
  XROUTE_URL=http://127.0.0.1:8080 XROUTE_ADMIN_KEY=xra-… xroute logs --follow`,
		Version:       buildInfo().Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          groupArgs,
		RunE:          groupRun,
	}
	root.SuggestionsMinimumDistance = 2
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate(versionLine(buildInfo()) + "\n")
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().String("config", os.Getenv("XROUTE_CONFIG"), "config file (YAML); also XROUTE_CONFIG")
	root.MarkPersistentFlagFilename("config", "yaml", "yml")
	root.AddCommand(
		newServeCmd(stdout, stderr),
		newKeysCmd(stdout, stderr),
		newAccountsCmd(stdout),
		newCreditsCmd(stdout),
		newBudgetsCmd(stdout),
		newUsageCmd(stdout),
		newAuditCmd(stdout, stderr),
		newVaultCmd(stdout, stderr),
		newProviderKeysCmd(stdout, stderr),
		newIssuersCmd(stdout),
		newLogsCmd(stdout),
		newCacheCmd(stdout),
		newMockCmd(stdout),
		newConfigCmd(stdout),
		newVersionCmd(stdout),
	)
	// Made now rather than at Execute, so the tree is whole for
	// walking (tests, docs) and did-you-mean knows them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		c.Args, c.RunE = groupArgs, groupRun // `completion bahs`: did you mean bash
		c.SuggestionsMinimumDistance = 2
	}
	return root
}

// group makes a command whose only job is to hold subcommands: without a
// subcommand it shows its help; with an unknown one it says so, with the
// nearest names.
func group(use, short, long, example string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Long: long, Example: example, Args: groupArgs, RunE: groupRun}
	c.SuggestionsMinimumDistance = 2
	c.AddCommand(subs...)
	return c
}

func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommand(cmd, args[0])
}

func groupRun(cmd *cobra.Command, _ []string) error { return cmd.Help() }

func unknownCommand(cmd *cobra.Command, name string) error {
	return &usageError{msg: fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath()), suggestions: cmd.SuggestionsFor(name)}
}

// flagError turns pflag's errors into usage errors, with the nearest flag
// names for a misspelt one (cobra suggests commands, not flags).
func flagError(cmd *cobra.Command, err error) error {
	// `xroute keys rotat ID --overlap 1h`: the flag is unknown to `keys`
	// only because the command is misspelt; say that.
	if cmd.HasAvailableSubCommands() && cmd.Flags().NArg() > 0 {
		return unknownCommand(cmd, cmd.Flags().Arg(0))
	}
	ue := &usageError{msg: err.Error()}
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		ue.suggestions = suggestFlags(cmd.Flags(), name)
	}
	return ue
}

// suggestFlags lists the flags within two edits of name, or starting with it.
func suggestFlags(fs *pflag.FlagSet, name string) []string {
	type cand struct {
		name string
		dist int
	}
	var cands []cand
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := config.EditDistance(strings.ToLower(name), f.Name)
		if d <= 2 || strings.HasPrefix(f.Name, strings.ToLower(name)) {
			cands = append(cands, cand{f.Name, d})
		}
	})
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].dist != cands[j].dist {
			return cands[i].dist < cands[j].dist
		}
		return cands[i].name < cands[j].name
	})
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = "--" + c.name
	}
	return out
}

// exactArgs requires n positional arguments, named in the error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return &usageError{msg: fmt.Sprintf("%s needs %s", commandName(cmd), strings.Join(names[len(args):], " "))}
		case len(args) > len(names):
			return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", commandName(cmd), args[len(names)])}
		}
		return nil
	}
}

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", commandName(cmd), args[0])}
	}
	return nil
}

// commandName is the command's path without the program: "keys rotate".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// configPath is the --config flag (root's, persistent).
func configPath(cmd *cobra.Command) string {
	p, _ := cmd.Flags().GetString("config")
	return p
}
