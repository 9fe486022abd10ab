package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/store"
)

// cmdUsage reads usage reports from the database (offline, like keys).
func cmdUsage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "xroute usage report [--group-by account,key,model,provider,day|hour] [--from DATE] [--to DATE] [--account ID] [--key ID] [--model M] [--provider P] [--json|--csv]"
	if len(args) == 0 || args[0] != "report" {
		return fmt.Errorf("%w: %s", errUsage, synopsis)
	}
	fs := flag.NewFlagSet("usage report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	groupBy := fs.String("group-by", "", "group by, comma-separated: account, key, model, provider, day, hour (UTC) (default: one line of totals)")
	from := fs.String("from", "", "start, inclusive: YYYY-MM-DD or RFC 3339, UTC (default: 30 days before --to)")
	to := fs.String("to", "", "end, exclusive: YYYY-MM-DD or RFC 3339, UTC (default: now)")
	var q store.ReportQuery
	fs.StringVar(&q.AccountID, "account", "", "only this account")
	fs.StringVar(&q.KeyID, "key", "", "only this key id")
	fs.StringVar(&q.Model, "model", "", "only this model")
	fs.StringVar(&q.Provider, "provider", "", "only this provider")
	asJSON := fs.Bool("json", false, "print JSON")
	asCSV := fs.Bool("csv", false, "print CSV")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected %q; %s", errUsage, fs.Arg(0), synopsis)
	}
	if *asJSON && *asCSV {
		return fmt.Errorf("%w: --json or --csv, not both", errUsage)
	}
	var err error
	if q.GroupBy, err = billing.ParseGroupBy(*groupBy); err != nil {
		return cliQueryError(err)
	}
	if q.From, err = billing.ParseTime("from", *from); err != nil {
		return cliQueryError(err)
	}
	if q.To, err = billing.ParseTime("to", *to); err != nil {
		return cliQueryError(err)
	}
	if r := remoteFromEnv(); r != nil {
		params := url.Values{}
		for k, v := range map[string]string{"group_by": *groupBy, "from": *from, "to": *to, "account_id": q.AccountID,
			"key_id": q.KeyID, "model": q.Model, "provider": q.Provider} {
			if v != "" {
				params.Set(k, v)
			}
		}
		format := "table"
		switch {
		case *asJSON:
			format = "json"
		case *asCSV:
			format = "csv"
		}
		return remoteUsage(ctx, r, params, format, stdout)
	}
	o, err := openOffline(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	rep, err := billing.NewReporter(o.db, time.Now).Report(ctx, q)
	if err != nil {
		return cliQueryError(err)
	}
	switch {
	case *asJSON:
		return printJSON(stdout, rep)
	case *asCSV:
		return billing.WriteCSV(stdout, rep)
	default:
		return billing.WriteTable(stdout, rep)
	}
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
