package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
)

// newUsageCmd is `xroute usage report`, local or remote.
func newUsageCmd(stdout io.Writer) *cobra.Command {
	var groupBy, from, to string
	var q books.ReportQuery
	report := &cobra.Command{
		Use:   "report",
		Short: "usage and cost, grouped and filtered (table, --json, --csv)",
		Example: `  xroute usage report --group-by account,model --from 2026-11-01
  xroute usage report --group-by day --key key_123 --csv > usage.csv`,
		Args: noArgs,
	}
	fs := report.Flags()
	fs.StringVar(&groupBy, "group-by", "", "group by, comma-separated: account, key, model, provider, day, hour (UTC) (default: one line of totals)")
	fs.StringVar(&from, "from", "", "start, inclusive: YYYY-MM-DD or RFC 3339, UTC (default: 30 days before --to)")
	fs.StringVar(&to, "to", "", "end, exclusive: YYYY-MM-DD or RFC 3339, UTC (default: now)")
	fs.StringVar(&q.AccountID, "account", "", "only this account")
	fs.StringVar(&q.KeyID, "key", "", "only this key id")
	fs.StringVar(&q.Model, "model", "", "only this model")
	fs.StringVar(&q.Provider, "provider", "", "only this provider")
	out := addOutputFlags(report)
	report.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if err := out.check(); err != nil {
			return err
		}
		var err error
		if q.GroupBy, err = billing.ParseGroupBy(groupBy); err != nil {
			return cliQueryError(err)
		}
		if q.From, err = billing.ParseTime("from", from); err != nil {
			return cliQueryError(err)
		}
		if q.To, err = billing.ParseTime("to", to); err != nil {
			return cliQueryError(err)
		}
		if r := remoteFromEnv(); r != nil {
			params := url.Values{}
			for k, v := range map[string]string{"group_by": groupBy, "from": from, "to": to, "account_id": q.AccountID,
				"key_id": q.KeyID, "model": q.Model, "provider": q.Provider} {
				if v != "" {
					params.Set(k, v)
				}
			}
			format := "table"
			switch {
			case out.json:
				format = "json"
			case out.csv:
				format = "csv"
			}
			return remoteUsage(ctx, r, params, format, stdout)
		}
		o, err := openOffline(ctx, configPath(cmd))
		if err != nil {
			return err
		}
		defer o.close()
		rep, err := billing.NewReporter(o.db, time.Now).Report(ctx, q)
		if err != nil {
			return cliQueryError(err)
		}
		switch {
		case out.json:
			return printJSON(stdout, rep)
		case out.csv:
			return billing.WriteCSV(stdout, rep)
		default:
			return billing.WriteTable(stdout, rep)
		}
	}
	return group("usage", "usage reports (table, --json, --csv)", "", "  xroute usage report --group-by model", report)
}

// cliQueryError names flags, not the HTTP parameters, in a query error.
func cliQueryError(err error) error {
	var qe *billing.QueryError
	if errors.As(err, &qe) {
		flagName := map[string]string{"group_by": "--group-by", "from": "--from", "to": "--to"}[qe.Param]
		if flagName == "" {
			flagName = qe.Param
		}
		return fmt.Errorf("%w: %s: %s", errUsage, flagName, qe.Msg)
	}
	return err
}
