package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/app"
)

// budgetView is a budget as the CLI prints it (the admin API's shape).
type budgetView struct {
	Scope         string `json:"scope"`
	ScopeID       string `json:"scope_id"`
	Period        string `json:"period"`
	LimitUSD      string `json:"limit_usd"`
	AlertPercents []int  `json:"alert_percents"`
}

// budgetFlags are the flags of the budgets subcommands.
type budgetFlags struct {
	account, key, period, limit, alerts string
	out                                 output
}

// newBudgetsCmd is `xroute budgets set|list|delete`: spend limits of an
// account or a key. A budget on an account or a key that does not exist
// is refused (the admin API's 404), locally and remotely alike.
func newBudgetsCmd(stdout io.Writer) *cobra.Command {
	var f budgetFlags
	sub := func(name, use, short, example string) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Example: example, Args: noArgs}
		c.Flags().StringVar(&f.account, "account", "", "account id")
		c.Flags().StringVar(&f.key, "key", "", "key id")
		c.RunE = func(cmd *cobra.Command, _ []string) error {
			return runBudgets(cmd.Context(), name, f, configPath(cmd), stdout)
		}
		return c
	}
	set := sub("set", "set (--account A | --key K) --period daily|monthly --limit USD", "set a daily or monthly spend limit",
		"  xroute budgets set --account acct_123 --period monthly --limit 50.00 --alerts 50,80,100")
	set.Flags().StringVar(&f.period, "period", "", "daily or monthly")
	set.RegisterFlagCompletionFunc("period", cobra.FixedCompletions([]string{"daily", "monthly"}, cobra.ShellCompDirectiveNoFileComp))
	set.Flags().StringVar(&f.limit, "limit", "", "USD, e.g. 50.00")
	set.Flags().StringVar(&f.alerts, "alerts", "", "alert thresholds in percent, e.g. 50,80,100 (default)")
	set.Flags().BoolVar(&f.out.json, "json", false, "print JSON")
	list := sub("list", "list [--account A | --key K]", "list budgets, all or one account's or key's", "  xroute budgets list --key key_123 --csv")
	out := addOutputFlags(list)
	list.PreRun = func(*cobra.Command, []string) { f.out = *out }
	del := sub("delete", "delete (--account A | --key K) --period P", "delete a budget", "  xroute budgets delete --key key_123 --period daily")
	del.Flags().StringVar(&f.period, "period", "", "daily or monthly")
	del.RegisterFlagCompletionFunc("period", cobra.FixedCompletions([]string{"daily", "monthly"}, cobra.ShellCompDirectiveNoFileComp))
	return group("budgets", "set, list and delete spend limits of accounts and keys", "", "  xroute budgets set --key key_123 --period daily --limit 5.00",
		set, list, del)
}

// runBudgets runs one budgets subcommand on the backend the environment names.
func runBudgets(ctx context.Context, sub string, f budgetFlags, cfgPath string, stdout io.Writer) error {
	if err := f.out.check(); err != nil {
		return err
	}
	scope, id := "", ""
	switch {
	case f.account != "" && f.key != "":
		return fmt.Errorf("%w: --account or --key, not both", errUsage)
	case f.account != "":
		scope, id = string(billing.ScopeAccount), f.account
	case f.key != "":
		scope, id = string(billing.ScopeKey), f.key
	case sub != "list":
		return fmt.Errorf("%w: --account or --key is required", errUsage)
	}
	var percents []int
	if f.alerts != "" {
		for _, p := range strings.Split(f.alerts, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("%w: --alerts must be percents such as 50,80,100", errUsage)
			}
			percents = append(percents, n)
		}
	}
	if sub == "set" {
		if _, err := billing.ParseUSD(f.limit); err != nil {
			return fmt.Errorf("%w: --limit must be a USD amount such as 50.00", errUsage)
		}
	}
	if r := remoteFromEnv(); r != nil {
		return remoteBudgets(ctx, r, sub, scope, id, f.period, f.limit, percents, f.out, stdout)
	}
	o, err := openOffline(ctx, cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	admin := app.NewCreditsAdmin(billing.NewLedger(o.db, time.Now), billing.NewBudgets(o.db, time.Now, nil), o.audit, nil)
	switch sub {
	case "set":
		amount, _ := billing.ParseUSD(f.limit)
		b, err := admin.SetBudget(ctx, billing.Budget{Scope: billing.BudgetScope(scope), ScopeID: id, Period: billing.Period(f.period), Limit: amount, AlertPercents: percents}, "cli")
		if errors.Is(err, billing.ErrUnknownScope) {
			return fmt.Errorf("no such %s: %s", scope, id)
		}
		if err != nil {
			return err
		}
		return f.out.print(stdout, budgetListing([]budgetView{viewBudget(b)}))
	case "list":
		list, err := admin.ListBudgets(ctx, billing.BudgetScope(scope), id)
		if err != nil {
			return err
		}
		views := make([]budgetView, 0, len(list))
		for _, b := range list {
			views = append(views, viewBudget(b))
		}
		return f.out.print(stdout, budgetListing(views))
	default:
		if err := admin.DeleteBudget(ctx, billing.BudgetScope(scope), id, billing.Period(f.period), "cli"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted the %s budget of %s %s\n", f.period, scope, id)
		return nil
	}
}

func viewBudget(b billing.Budget) budgetView {
	return budgetView{Scope: string(b.Scope), ScopeID: b.ScopeID, Period: string(b.Period), LimitUSD: b.Limit.String(), AlertPercents: b.AlertPercents}
}

func budgetListing(list []budgetView) listing {
	l := listing{header: []string{"SCOPE", "ID", "PERIOD", "LIMIT USD", "ALERTS %"}, data: list}
	for _, b := range list {
		l.add(b.Scope, b.ScopeID, b.Period, b.LimitUSD, joinInts(b.AlertPercents))
	}
	return l
}

// remoteBudgets is runBudgets through the admin API.
func remoteBudgets(ctx context.Context, r *remote, sub, scope, id, period, limit string, percents []int, out output, stdout io.Writer) error {
	switch sub {
	case "set":
		body := map[string]any{"scope": scope, "scope_id": id, "period": period, "limit_usd": limit}
		if percents != nil {
			body["alert_percents"] = percents
		}
		var b budgetView
		if _, err := r.do(ctx, http.MethodPost, "/budgets", nil, body, &b); err != nil {
			return err
		}
		return out.print(stdout, budgetListing([]budgetView{b}))
	case "list":
		q := url.Values{}
		if scope != "" {
			q.Set("scope", scope)
			q.Set("scope_id", id)
		}
		raw, err := r.list(ctx, "/budgets", q, 0)
		if err != nil {
			return err
		}
		views := make([]budgetView, 0, len(raw))
		for _, m := range raw {
			var b budgetView
			if err := json.Unmarshal(m, &b); err != nil {
				return err
			}
			views = append(views, b)
		}
		return out.print(stdout, budgetListing(views))
	default:
		q := url.Values{"scope": {scope}, "scope_id": {id}, "period": {period}}
		if _, err := r.do(ctx, http.MethodDelete, "/budgets", q, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted the %s budget of %s %s\n", period, scope, id)
		return nil
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
