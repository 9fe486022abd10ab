package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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

// cmdBudgets manages spend limits of an account or a key: set, list,
// delete. A budget on an account or a key that does not exist is refused
// (the admin API's 404), locally and remotely alike.
func cmdBudgets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "xroute budgets set (--account A | --key K) --period daily|monthly --limit 50.00 [--alerts 50,80,100] | list [--account A | --key K] | delete (--account A | --key K) --period P"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	fs := flag.NewFlagSet("budgets "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	account := fs.String("account", "", "account id")
	key := fs.String("key", "", "key id")
	period := fs.String("period", "", "daily or monthly")
	limit := fs.String("limit", "", "USD, e.g. 50.00")
	alerts := fs.String("alerts", "", "alert thresholds in percent, e.g. 50,80,100 (default)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	scope, id := "", ""
	switch {
	case *account != "" && *key != "":
		return fmt.Errorf("%w: --account or --key, not both", errUsage)
	case *account != "":
		scope, id = string(billing.ScopeAccount), *account
	case *key != "":
		scope, id = string(billing.ScopeKey), *key
	case args[0] != "list":
		return fmt.Errorf("%w: --account or --key is required", errUsage)
	}
	var percents []int
	if *alerts != "" {
		for _, p := range strings.Split(*alerts, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("%w: --alerts must be percents such as 50,80,100", errUsage)
			}
			percents = append(percents, n)
		}
	}
	if args[0] != "set" && args[0] != "list" && args[0] != "delete" {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	if args[0] == "set" {
		if _, err := billing.ParseUSD(*limit); err != nil {
			return fmt.Errorf("%w: --limit must be a USD amount such as 50.00", errUsage)
		}
	}
	if r := remoteFromEnv(); r != nil {
		return remoteBudgets(ctx, r, args[0], scope, id, *period, *limit, percents, *asJSON, stdout)
	}
	o, err := openOffline(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	admin := app.NewCreditsAdmin(billing.NewLedger(o.db, time.Now), billing.NewBudgets(o.db, time.Now, nil), o.audit)
	switch args[0] {
	case "set":
		amount, _ := billing.ParseUSD(*limit)
		b, err := admin.SetBudget(ctx, billing.Budget{Scope: billing.BudgetScope(scope), ScopeID: id, Period: billing.Period(*period), Limit: amount, AlertPercents: percents}, "cli")
		if errors.Is(err, billing.ErrUnknownScope) {
			return fmt.Errorf("no such %s: %s", scope, id)
		}
		if err != nil {
			return err
		}
		return printBudgets(stdout, []budgetView{viewBudget(b)}, *asJSON)
	case "list":
		list, err := admin.ListBudgets(ctx, billing.BudgetScope(scope), id)
		if err != nil {
			return err
		}
		views := make([]budgetView, 0, len(list))
		for _, b := range list {
			views = append(views, viewBudget(b))
		}
		return printBudgets(stdout, views, *asJSON)
	default:
		if err := admin.DeleteBudget(ctx, billing.BudgetScope(scope), id, billing.Period(*period), "cli"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted the %s budget of %s %s\n", *period, scope, id)
		return nil
	}
}

func viewBudget(b billing.Budget) budgetView {
	return budgetView{Scope: string(b.Scope), ScopeID: b.ScopeID, Period: string(b.Period), LimitUSD: b.Limit.String(), AlertPercents: b.AlertPercents}
}

func printBudgets(w io.Writer, list []budgetView, asJSON bool) error {
	if asJSON {
		return printJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tID\tPERIOD\tLIMIT USD\tALERTS %")
	for _, b := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Scope, b.ScopeID, b.Period, b.LimitUSD, joinInts(b.AlertPercents))
	}
	return tw.Flush()
}

// remoteBudgets is cmdBudgets through the admin API.
func remoteBudgets(ctx context.Context, r *remote, sub, scope, id, period, limit string, percents []int, asJSON bool, stdout io.Writer) error {
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
		return printBudgets(stdout, []budgetView{b}, asJSON)
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
		return printBudgets(stdout, views, asJSON)
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
