package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/app"
)

// creditsFlags are the flags of the credits subcommands.
type creditsFlags struct {
	account, amount, idem string
	limit                 int
	out                   output
}

// newCreditsCmd is `xroute credits topup|balance|ledger|verify`, local or remote.
func newCreditsCmd(stdout io.Writer) *cobra.Command {
	var f creditsFlags
	sub := func(name, use, short, example string, args cobra.PositionalArgs) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Example: example, Args: args}
		c.RunE = func(cmd *cobra.Command, _ []string) error {
			return runCredits(cmd.Context(), name, f, configPath(cmd), stdout)
		}
		return c
	}
	topup := sub("topup", "topup --account A --amount USD --idempotency-key K", "add prepaid credits to an account",
		"  xroute credits topup --account acct_123 --amount 10.00 --idempotency-key invoice-42", noArgs)
	topup.Flags().StringVar(&f.account, "account", "", "account id (required)")
	topup.Flags().StringVar(&f.amount, "amount", "", "USD, e.g. 10.00 (required)")
	topup.Flags().StringVar(&f.idem, "idempotency-key", "", "replaying the same key changes nothing (required)")
	balance := sub("balance", "balance --account A", "an account's balance, reserved and available credits",
		"  xroute credits balance --account acct_123", noArgs)
	balance.Flags().StringVar(&f.account, "account", "", "account id (required)")
	ledger := sub("ledger", "ledger --account A", "an account's ledger entries, newest first",
		"  xroute credits ledger --account acct_123 --limit 20 --csv", noArgs)
	ledger.Flags().StringVar(&f.account, "account", "", "account id (required)")
	ledger.Flags().IntVar(&f.limit, "limit", 50, "ledger entries to show")
	out := addOutputFlags(ledger)
	ledger.PreRun = func(*cobra.Command, []string) { f.out = *out }
	verify := sub("verify", "verify", "check every balance against its ledger entries and their MACs", "  xroute credits verify", noArgs)
	return group("credits", "top up, read balances and the ledger, verify balances", "", "  xroute credits topup --account acct_123 --amount 10.00 --idempotency-key inv-1",
		topup, balance, ledger, verify)
}

// runCredits runs one credits subcommand on the backend the environment names.
func runCredits(ctx context.Context, sub string, f creditsFlags, cfgPath string, stdout io.Writer) error {
	if err := f.out.check(); err != nil {
		return err
	}
	if sub != "verify" && f.account == "" {
		return fmt.Errorf("%w: --account is required", errUsage)
	}
	if r := remoteFromEnv(); r != nil {
		return remoteCredits(ctx, r, sub, f, stdout)
	}
	o, err := openOffline(ctx, cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	ledger := billing.NewLedger(o.db, time.Now)
	admin := app.NewCreditsAdmin(ledger, billing.NewBudgets(o.db, time.Now, nil), o.audit, nil)
	switch sub {
	case "topup":
		amt, err := billing.ParseUSD(f.amount)
		if err != nil || amt <= 0 {
			return fmt.Errorf("%w: --amount must be a positive USD amount such as 10.00", errUsage)
		}
		if f.idem == "" {
			return fmt.Errorf("%w: --idempotency-key is required (replaying it changes nothing)", errUsage)
		}
		e, replayed, err := admin.TopUp(ctx, f.account, amt, f.idem, "cli")
		if err != nil {
			return err
		}
		bal, _, _, _ := ledger.Balance(ctx, f.account)
		if replayed {
			fmt.Fprintf(stdout, "already applied as entry %d (%s USD); balance %s USD\n", e.ID, e.Amount, bal)
		} else {
			fmt.Fprintf(stdout, "topped up %s USD (entry %d); balance %s USD\n", amt, e.ID, bal)
		}
	case "balance":
		bal, res, avail, err := ledger.Balance(ctx, f.account)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "balance %s USD, reserved %s USD, available %s USD\n", bal, res, avail)
	case "ledger":
		list, err := ledger.Entries(ctx, f.account, f.limit, 0)
		if err != nil {
			return err
		}
		views := make([]ledgerView, 0, len(list))
		for _, e := range list {
			views = append(views, ledgerView{ID: e.ID, Kind: string(e.Kind), AmountUSD: e.Amount.String(), RequestID: e.RequestID, Actor: e.Actor, CreatedAt: e.CreatedAt})
		}
		return f.out.print(stdout, ledgerListing(views))
	case "verify":
		mm, err := ledger.Verify(ctx)
		if err != nil {
			return err
		}
		return printCreditsCheck(stdout, mm)
	}
	return nil
}

// ledgerView is a ledger entry as listings print it (the admin API's fields).
type ledgerView struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	AmountUSD string    `json:"amount_usd"`
	RequestID string    `json:"request_id"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
}

func ledgerListing(list []ledgerView) listing {
	l := listing{header: []string{"ID", "AT", "KIND", "AMOUNT USD", "REQUEST", "ACTOR"}, data: list, alignRight: true}
	for _, e := range list {
		l.add(strconv.FormatInt(e.ID, 10), e.CreatedAt.Format(time.RFC3339), e.Kind, e.AmountUSD, e.RequestID, e.Actor)
	}
	return l
}

// printCreditsCheck reports a ledger verification: balances that are not
// the sum of their entries, then places where an account's keyed chain
// does not hold.
func printCreditsCheck(w io.Writer, mm []billing.Mismatch) error {
	if len(mm) == 0 {
		fmt.Fprintln(w, "every balance equals the sum of its ledger entries, and every entry and balance carries the vault's MAC")
		return nil
	}
	for _, m := range mm {
		switch {
		case m.Problem != "" && m.EntryID != 0:
			fmt.Fprintf(w, "account %s, entry %d: %s\n", m.AccountID, m.EntryID, m.Problem)
		case m.Problem != "":
			fmt.Fprintf(w, "account %s: %s\n", m.AccountID, m.Problem)
		case m.AccountMissing:
			fmt.Fprintf(w, "account %s: entries summing to %s USD, but no such account\n", m.AccountID, m.Computed)
		default:
			fmt.Fprintf(w, "account %s: cached balance %s USD, sum of entries %s USD\n", m.AccountID, m.Cached, m.Computed)
		}
	}
	return fmt.Errorf("the ledger does not verify: %d problems", len(mm))
}
