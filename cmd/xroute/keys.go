package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// listFlag collects a comma-separated or repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// offline opens the configured database directly: the bootstrap path (the
// first admin key) and for operators on the server's machine. A running
// server sees changes made this way within auth.cache_ttl; the admin API
// applies them at once.
type offline struct {
	db        *store.DB
	keys      *keys.Service
	audit     *keys.Auditor
	closeKeys func()
}

func openOffline(ctx context.Context, cfgPath string) (*offline, error) {
	cfg, err := config.Load(cfgPath, os.Environ())
	if err != nil {
		return nil, err
	}
	db, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The vault's keys authenticate what the CLI writes to the audit log
	// and the ledger, and let it verify them.
	vault, err := app.OpenVault(ctx, db, cfg.Vault, zap.NewNop())
	if err != nil {
		db.Close()
		return nil, err
	}
	audit := app.KeyChains(db, vault)
	publish, closeAnnouncer, err := app.Announcer(cfg, cliLogger())
	if err != nil {
		db.Close()
		return nil, err
	}
	svc, err := app.OpenKeys(db, cfg, app.AuditHook(audit, zap.NewNop()), publish)
	if err != nil {
		closeAnnouncer()
		db.Close()
		return nil, err
	}
	closeKeys := func() { svc.Close(); closeAnnouncer() }
	return &offline{db: db, keys: svc, audit: audit, closeKeys: closeKeys}, nil
}

func (o *offline) close() {
	o.closeKeys()
	o.db.Close()
}

// cmdKeys manages keys: create, list, show, rotate, revoke, suspend, resume.
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: xroute keys create|list|show|rotate|revoke|suspend|resume", errUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var p keys.CreateParams
	var models, endpoints, cidrs, meta listFlag
	var expires, overlap time.Duration
	var quiet, admin bool
	var reason, account string
	switch sub {
	case "create":
		fs.StringVar(&p.Name, "name", "", "a name for the key (required)")
		fs.StringVar(&p.AccountID, "account", "", "owning account id (default: the default account)")
		fs.BoolVar(&admin, "admin", false, "create an admin key (xra-…) for the admin API")
		fs.Var(&models, "models", "model globs the key may use, comma-separated (default: all)")
		fs.Var(&endpoints, "endpoints", "endpoints the key may call: "+strings.Join(keys.Endpoints, ",")+" (default: all)")
		fs.Var(&cidrs, "cidrs", "client IPs/CIDRs allowed, comma-separated (default: any)")
		fs.IntVar(&p.RPM, "rpm", 0, "requests per minute (0: the server default)")
		fs.IntVar(&p.TPM, "tpm", 0, "tokens per minute (0: the server default)")
		fs.IntVar(&p.MaxConcurrent, "max-concurrent", 0, "concurrent requests (0: the server default)")
		fs.Var(&meta, "meta", "metadata key=value, repeatable")
		fs.DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h (default: no expiry)")
		fs.BoolVar(&quiet, "quiet", false, "print only the key")
	case "list":
		fs.StringVar(&account, "account", "", "only this account's keys")
	case "rotate":
		fs.DurationVar(&overlap, "overlap", 24*time.Hour, "how long the old key keeps working (0: stops at once)")
		fs.BoolVar(&quiet, "quiet", false, "print only the new key")
	case "suspend":
		fs.StringVar(&reason, "reason", "suspended by an operator", "why")
	case "show", "revoke", "resume":
	default:
		return fmt.Errorf("%w: unknown keys command %q", errUsage, sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	needID := sub != "create" && sub != "list"
	if needID && fs.NArg() != 1 {
		return fmt.Errorf("%w: xroute keys %s KEY_ID", errUsage, sub)
	}
	if r := remoteFromEnv(); r != nil {
		if sub == "create" && p.Name == "" {
			return fmt.Errorf("%w: keys create needs --name", errUsage)
		}
		f := keyFlags{name: p.Name, account: p.AccountID, reason: reason, admin: admin, quiet: quiet, asJSON: *asJSON,
			models: models, endpoints: endpoints, cidrs: cidrs, rpm: p.RPM, tpm: p.TPM, conc: p.MaxConcurrent, expires: expires, overlap: overlap}
		if sub == "list" {
			f.account = account
		}
		if len(meta) > 0 {
			f.meta = map[string]string{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("%w: --meta wants key=value, got %q", errUsage, kv)
				}
				f.meta[k] = v
			}
		}
		return remoteKeys(ctx, r, sub, f, fs.Arg(0), stdout, stderr)
	}
	o, err := openOffline(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	const actor = "cli"

	switch sub {
	case "create":
		if p.Name == "" {
			return fmt.Errorf("%w: keys create needs --name", errUsage)
		}
		if admin {
			p.Kind = keys.KindAdmin
		}
		p.AllowedModels, p.AllowedEndpoints, p.AllowedCIDRs = models, endpoints, cidrs
		if len(meta) > 0 {
			p.Metadata = map[string]string{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("%w: --meta wants key=value, got %q", errUsage, kv)
				}
				p.Metadata[k] = v
			}
		}
		if expires > 0 {
			t := time.Now().Add(expires).UTC()
			p.ExpiresAt = &t
		}
		p.Actor = actor
		plain, k, err := o.keys.Create(ctx, p)
		if err != nil {
			return err
		}
		return printNewKey(stdout, stderr, plain, k, quiet, *asJSON)
	case "list":
		list, err := o.keys.List(ctx, store.KeyFilter{AccountID: account})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, keyViews(list))
		}
		return printKeyTable(stdout, keyViews(list))
	case "show":
		k, err := o.keys.Get(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		return printJSON(stdout, keyView(k))
	case "rotate":
		plain, k, err := o.keys.Rotate(ctx, fs.Arg(0), actor, overlap)
		if err != nil {
			return err
		}
		if !quiet {
			rotatedNote(stderr, fs.Arg(0), overlap, k.Status(time.Now()), k.SuspendReason)
		}
		return printNewKey(stdout, stderr, plain, k, quiet, *asJSON)
	case "revoke":
		if err := o.keys.Revoke(ctx, fs.Arg(0), actor); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
	case "suspend":
		if err := o.keys.Suspend(ctx, fs.Arg(0), actor, reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "suspended %s\n", fs.Arg(0))
	case "resume":
		if err := o.keys.Resume(ctx, fs.Arg(0), actor); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "resumed %s\n", fs.Arg(0))
	}
	return nil
}

// rotatedNote tells the operator what a rotation left: the old key's
// overlap, or that the new key is suspended like the old one.
func rotatedNote(w io.Writer, id string, overlap time.Duration, status, reason string) {
	if status == "suspended" {
		fmt.Fprintf(w, "rotated %s: the new key is suspended like the old one (%s); resume it to use it\n", id, reason)
		return
	}
	fmt.Fprintf(w, "rotated %s: the old key keeps working for %s\n", id, overlap)
}

func printNewKey(stdout, stderr io.Writer, plain string, k keys.Key, quiet, asJSON bool) error {
	switch {
	case quiet:
		fmt.Fprintln(stdout, plain)
	case asJSON:
		v := keyView(k)
		v.Key = plain
		return printJSON(stdout, v)
	default:
		fmt.Fprintln(stdout, plain)
		fmt.Fprintf(stderr, "created %s key %s (%s) in account %s. This is the only time the key is shown: store it now.\n", k.Kind, k.ID, k.Name, k.AccountID)
	}
	return nil
}

// cmdAccounts manages accounts.
func cmdAccounts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: xroute accounts create NAME | list", errUsage)
	}
	fs := flag.NewFlagSet("accounts "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "create" && fs.NArg() != 1 {
		return fmt.Errorf("%w: xroute accounts create NAME", errUsage)
	}
	if r := remoteFromEnv(); r != nil && (args[0] == "create" || args[0] == "list") {
		return remoteAccounts(ctx, r, args[0], fs.Arg(0), stdout)
	}
	o, err := openOffline(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	switch args[0] {
	case "create":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: xroute accounts create NAME", errUsage)
		}
		a, err := o.keys.CreateAccount(ctx, fs.Arg(0), "cli", nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, a.ID)
	case "list":
		list, err := o.keys.Accounts(ctx, "", 1000)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tCREATED")
		for _, a := range list {
			if a.Status == "" {
				a.Status = store.AccountActive // as the admin API shows it
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.ID, a.Name, a.Status, a.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("%w: unknown accounts command %q", errUsage, args[0])
	}
	return nil
}

func keyView(k keys.Key) httpapi.KeyObject { return httpapi.NewKeyObject(k, time.Now()) }

func keyViews(list []keys.Key) []httpapi.KeyObject {
	out := make([]httpapi.KeyObject, len(list))
	for i, k := range list {
		out[i] = keyView(k)
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdConfig(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "env" {
		return fmt.Errorf("%w: xroute config env", errUsage)
	}
	for _, kv := range append(config.EnvNames(), config.OtherEnv...) {
		fmt.Fprintf(stdout, "%-36s %s\n", kv[0], kv[1])
	}
	return nil
}

// cliLogger reports on stderr what an operator must know from a command
// working on the database directly: a change the running replicas could
// not be told about (Redis unreachable).
func cliLogger() *zap.Logger {
	l, err := newLogger(config.Log{Level: "warn", Format: "console"}, os.Stderr, false)
	if err != nil {
		return zap.NewNop()
	}
	return l
}
