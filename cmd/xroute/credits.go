package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/app"
)

// cmdCredits manages an account's credits: topup, balance, ledger, verify.
func cmdCredits(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "xroute credits topup --account A --amount 10.00 --idempotency-key K | balance --account A | ledger --account A | verify"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	fs := flag.NewFlagSet("credits "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	account := fs.String("account", "", "account id")
	amount := fs.String("amount", "", "USD, e.g. 10.00")
	idem := fs.String("idempotency-key", "", "replaying the same key changes nothing")
	limit := fs.Int("limit", 50, "ledger entries to show")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if r := remoteFromEnv(); r != nil {
		switch args[0] {
		case "topup", "balance", "ledger":
			if *account == "" {
				return fmt.Errorf("%w: --account is required", errUsage)
			}
			fallthrough
		case "verify":
			return remoteCredits(ctx, r, args[0], *account, *amount, *idem, *limit, stdout)
		}
	}
	o, err := openOffline(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	ledger := billing.NewLedger(o.db, time.Now)
	admin := app.NewCreditsAdmin(ledger, billing.NewBudgets(o.db, time.Now, nil), o.audit)
	needAccount := func() error {
		if *account == "" {
			return fmt.Errorf("%w: --account is required", errUsage)
		}
		return nil
	}
	switch args[0] {
	case "topup":
		if err := needAccount(); err != nil {
			return err
		}
		amt, err := billing.ParseUSD(*amount)
		if err != nil || amt <= 0 {
			return fmt.Errorf("%w: --amount must be a positive USD amount such as 10.00", errUsage)
		}
		if *idem == "" {
			return fmt.Errorf("%w: --idempotency-key is required (replaying it changes nothing)", errUsage)
		}
		e, replayed, err := admin.TopUp(ctx, *account, amt, *idem, "cli")
		if err != nil {
			return err
		}
		bal, _, _, _ := ledger.Balance(ctx, *account)
		if replayed {
			fmt.Fprintf(stdout, "already applied as entry %d (%s USD); balance %s USD\n", e.ID, e.Amount, bal)
		} else {
			fmt.Fprintf(stdout, "topped up %s USD (entry %d); balance %s USD\n", amt, e.ID, bal)
		}
	case "balance":
		if err := needAccount(); err != nil {
			return err
		}
		bal, res, avail, err := ledger.Balance(ctx, *account)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "balance %s USD, reserved %s USD, available %s USD\n", bal, res, avail)
	case "ledger":
		if err := needAccount(); err != nil {
			return err
		}
		list, err := ledger.Entries(ctx, *account, *limit, 0)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "ID\tAT\tKIND\tAMOUNT USD\tREQUEST\tACTOR\t")
		for _, e := range list {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t\n", e.ID, e.CreatedAt.Format(time.RFC3339), e.Kind, e.Amount, e.RequestID, e.Actor)
		}
		return tw.Flush()
	case "verify":
		mm, err := ledger.Verify(ctx)
		if err != nil {
			return err
		}
		return printCreditsCheck(stdout, mm)
	default:
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	return nil
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
