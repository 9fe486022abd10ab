package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// cmdKeys manages caller keys directly in the configured database (the
// admin API comes with the token-control work).
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: xroute keys create|list|revoke", errUsage)
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	var name, models string
	var expires time.Duration
	var quiet bool
	if args[0] == "create" {
		fs.StringVar(&name, "name", "", "a name for the key (required)")
		fs.StringVar(&models, "models", "", "comma-separated model globs the key may use (default: all)")
		fs.DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h (default: no expiry)")
		fs.BoolVar(&quiet, "quiet", false, "print only the key")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		return err
	}
	db, err := store.OpenSQLite(ctx, cfg.Database.Path)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := app.OpenKeys(db, cfg)
	if err != nil {
		return err
	}
	defer svc.Close()

	switch args[0] {
	case "create":
		if name == "" {
			return fmt.Errorf("%w: keys create needs --name", errUsage)
		}
		p := keys.CreateParams{Name: name}
		if models != "" {
			for _, m := range strings.Split(models, ",") {
				if m = strings.TrimSpace(m); m != "" {
					p.AllowedModels = append(p.AllowedModels, m)
				}
			}
		}
		if expires > 0 {
			t := time.Now().Add(expires).UTC()
			p.ExpiresAt = &t
		}
		plain, k, err := svc.Create(ctx, p)
		if err != nil {
			return err
		}
		if quiet {
			fmt.Fprintln(stdout, plain)
			return nil
		}
		fmt.Fprintf(stdout, "%s\n", plain)
		fmt.Fprintf(stderr, "created key %s (%s). This is the only time the key is shown: store it now.\n", k.ID, k.Name)
		return nil
	case "list":
		list, err := svc.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKEY\tMODELS\tCREATED\tSTATUS")
		now := time.Now()
		for _, k := range list {
			status := "active"
			switch {
			case k.RevokedAt != nil:
				status = "revoked"
			case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
				status = "expired"
			}
			m := "*"
			if len(k.AllowedModels) > 0 {
				m = strings.Join(k.AllowedModels, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Hint, m, k.CreatedAt.Format(time.RFC3339), status)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: xroute keys revoke ID", errUsage)
		}
		if err := svc.Revoke(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
		return nil
	default:
		return fmt.Errorf("%w: unknown keys command %q", errUsage, args[0])
	}
}

func cmdConfig(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "env" {
		return fmt.Errorf("%w: xroute config env", errUsage)
	}
	for _, kv := range config.EnvNames() {
		fmt.Fprintf(stdout, "%-36s %s\n", kv[0], kv[1])
	}
	return nil
}
