package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// listFlag collects a comma-separated or repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Type() string   { return "strings" }
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
	audit     *auditlog.Auditor
	closeKeys func()
}

// loadConfig reads the configuration for a command working on the
// database, and warns on stderr, as serve does, of settings it does not
// know (a misspelt key is otherwise silently ignored).
func loadConfig(cfgPath string) (config.Config, error) {
	cfg, warns, err := config.LoadWithWarnings(cfgPath, os.Environ())
	for _, w := range warns {
		fmt.Fprintln(os.Stderr, "xroute: warning:", w.String())
	}
	return cfg, err
}

func openOffline(ctx context.Context, cfgPath string) (*offline, error) {
	cfg, err := loadConfig(cfgPath)
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

// newKeysCmd is `xroute keys`: one definition per subcommand; the
// environment picks the backend (the admin API with XROUTE_URL and
// XROUTE_ADMIN_KEY, else the database of --config).
func newKeysCmd(stdout, stderr io.Writer) *cobra.Command {
	var f keyFlags
	var models, endpoints, cidrs, meta listFlag
	expires := config.Duration(0)
	overlap := config.Duration(24 * time.Hour)
	runner := func(sub string, out *output) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			f.models, f.endpoints, f.cidrs = models, endpoints, cidrs
			f.expires, f.overlap = time.Duration(expires), time.Duration(overlap)
			if err := f.cache.read(cmd); err != nil {
				return err
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
			if out != nil {
				if err := out.check(); err != nil {
					return err
				}
				f.out = *out
			}
			id := ""
			if len(args) > 0 {
				id = args[0]
			}
			return runKeys(cmd.Context(), sub, f, id, configPath(cmd), stdout, stderr)
		}
	}

	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "create a key (printed once; only its hash is stored)",
		Example: `  xroute keys create --name ci --models 'gpt-4o*' --rpm 60 --expires 30d
  xroute keys create --name ops --admin --quiet
  xroute keys create --name books --admin --role billing`,
		Args: noArgs,
	}
	cf := create.Flags()
	cf.StringVar(&f.name, "name", "", "a name for the key (required)")
	cf.StringVar(&f.account, "account", "", "owning account id (default: the default account)")
	cf.BoolVar(&f.admin, "admin", false, "create an admin key (xra-…) for the admin API")
	cf.StringVar(&f.role, "role", "", "the admin key's role: "+strings.Join(keys.Roles, ", ")+" (with --admin; default owner)")
	cf.Var(&models, "models", "model globs the key may use, comma-separated (default: all)")
	cf.Var(&endpoints, "endpoints", "endpoints the key may call: "+strings.Join(keys.Endpoints, ",")+" (default: all)")
	cf.Var(&cidrs, "cidrs", "client IPs/CIDRs allowed, comma-separated (default: any)")
	cf.IntVar(&f.rpm, "rpm", 0, "requests per minute (0: the server default)")
	cf.IntVar(&f.tpm, "tpm", 0, "tokens per minute (0: the server default)")
	cf.IntVar(&f.conc, "max-concurrent", 0, "concurrent requests (0: the server default)")
	cf.Var(&meta, "meta", "metadata key=value, repeatable")
	cf.Var(&expires, "expires", "lifetime, e.g. 720h, 30d, 1w (default: no expiry)")
	f.cache.register(create)
	cf.BoolVar(&f.quiet, "quiet", false, "print only the key")
	cf.BoolVar(&f.out.json, "json", false, "print JSON (with the key)")
	create.RunE = runner("create", nil)

	list := &cobra.Command{Use: "list", Short: "list keys (never the keys themselves: their hints)", Args: noArgs,
		Example: "  xroute keys list --account acct_123 --csv"}
	list.Flags().StringVar(&f.account, "account", "", "only this account's keys")
	list.RunE = runner("list", addOutputFlags(list))

	show := &cobra.Command{Use: "show KEY_ID", Short: "show one key as JSON", Args: exactArgs("KEY_ID"), RunE: runner("show", nil)}
	completeKeyIDs := func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return keyIDs(cmd.Context(), configPath(cmd)), cobra.ShellCompDirectiveNoFileComp
	}

	rotate := &cobra.Command{Use: "rotate KEY_ID", Short: "issue a new key for the same id; the old one keeps working for --overlap",
		Example: "  xroute keys rotate key_123 --overlap 1h\n  xroute keys rotate key_123 --overlap 0 --quiet",
		Args:    exactArgs("KEY_ID")}
	rotate.Flags().Var(&overlap, "overlap", "how long the old key keeps working, e.g. 1h, 2d, 1w (0: stops at once)")
	rotate.Flags().BoolVar(&f.quiet, "quiet", false, "print only the new key")
	rotate.Flags().BoolVar(&f.out.json, "json", false, "print JSON (with the new key)")
	rotate.RunE = runner("rotate", nil)

	suspend := &cobra.Command{Use: "suspend KEY_ID", Short: "refuse a key's requests until it is resumed", Args: exactArgs("KEY_ID"),
		Example: "  xroute keys suspend key_123 --reason 'leaked in a log'"}
	suspend.Flags().StringVar(&f.reason, "reason", "suspended by an operator", "why")
	suspend.RunE = runner("suspend", nil)

	revoke := &cobra.Command{Use: "revoke KEY_ID", Short: "revoke a key for good", Args: exactArgs("KEY_ID"), RunE: runner("revoke", nil)}
	resume := &cobra.Command{Use: "resume KEY_ID", Short: "resume a suspended key", Args: exactArgs("KEY_ID"), RunE: runner("resume", nil)}
	role := &cobra.Command{Use: "role KEY_ID --role ROLE", Short: "change an admin key's role (owner only; not the calling key's own)", Args: exactArgs("KEY_ID"),
		Example: "  xroute keys role key_123 --role viewer"}
	role.Flags().StringVar(&f.role, "role", "", "the new role: "+strings.Join(keys.Roles, ", "))
	role.RunE = runner("role", nil)

	update := &cobra.Command{Use: "update KEY_ID", Short: "change a key's response cache policy (it only narrows its models')", Args: exactArgs("KEY_ID"),
		Example: "  xroute keys update key_123 --cache off\n  xroute keys update key_123 --cache on --cache-ttl 10m"}
	f.cache.register(update)
	update.RunE = runner("update", nil)

	for _, c := range []*cobra.Command{show, rotate, suspend, revoke, resume, role, update} {
		c.ValidArgsFunction = completeKeyIDs
	}
	return group("keys", "create, list, show, rotate, revoke, suspend, resume keys; change an admin key's role or a key's cache policy", "", "  xroute keys create --name ci --expires 30d\n  xroute keys rotate key_123 --overlap 1w",
		create, list, show, rotate, revoke, suspend, resume, role, update)
}

// keyIDs lists key ids with their names, for shell completion; a backend
// that cannot answer completes nothing.
func keyIDs(ctx context.Context, cfgPath string) []string {
	var list []httpapi.KeyObject
	if r := remoteFromEnv(); r != nil {
		raw, err := r.list(ctx, "/keys", nil, 1000)
		if err != nil {
			return nil
		}
		list = make([]httpapi.KeyObject, len(raw))
		for i, m := range raw {
			json.Unmarshal(m, &list[i])
		}
	} else {
		// Completing must not create a database (and its pepper and
		// master key files) in whatever directory the shell is in.
		cfg, err := config.Load(cfgPath, os.Environ())
		if err != nil {
			return nil
		}
		if !cfg.Database.Postgres() {
			if _, err := os.Stat(cfg.Database.Path); err != nil {
				return nil
			}
		}
		o, err := openOffline(ctx, cfgPath)
		if err != nil {
			return nil
		}
		defer o.close()
		ks, err := o.keys.List(ctx, keys.KeyFilter{})
		if err != nil {
			return nil
		}
		list = keyViews(ks)
	}
	out := make([]string, 0, len(list))
	for _, k := range list {
		out = append(out, k.ID+"\t"+k.Name+" ("+k.Status+")")
	}
	return out
}

// runKeys runs one keys subcommand on the backend the environment names.
func runKeys(ctx context.Context, sub string, f keyFlags, id, cfgPath string, stdout, stderr io.Writer) error {
	if sub == "create" && f.name == "" {
		return fmt.Errorf("%w: keys create needs --name", errUsage)
	}
	if sub == "role" && !keys.ValidRole(f.role) {
		return fmt.Errorf("%w: keys role needs --role, one of %s", errUsage, strings.Join(keys.Roles, ", "))
	}
	if sub == "create" && f.role != "" && (!f.admin || !keys.ValidRole(f.role)) {
		return fmt.Errorf("%w: --role is an admin key's role (with --admin), one of %s", errUsage, strings.Join(keys.Roles, ", "))
	}
	if sub == "update" && !f.cache.any() {
		return fmt.Errorf("%w: keys update needs --cache, --cache-ttl or --cache-max-entry-bytes", errUsage)
	}
	if f.expires < 0 || f.overlap < 0 {
		return fmt.Errorf("%w: --expires and --overlap cannot be negative", errUsage)
	}
	if r := remoteFromEnv(); r != nil {
		return remoteKeys(ctx, r, sub, f, id, stdout, stderr)
	}
	o, err := openOffline(ctx, cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	const actor = "cli"

	switch sub {
	case "create":
		p := keys.CreateParams{Name: f.name, AccountID: f.account, RPM: f.rpm, TPM: f.tpm, MaxConcurrent: f.conc,
			AllowedModels: f.models, AllowedEndpoints: f.endpoints, AllowedCIDRs: f.cidrs, Metadata: f.meta, Actor: actor}
		if f.cache.any() {
			p.Metadata = f.cache.apply(keys.CachePolicyOf(f.meta)).Metadata(f.meta)
		}
		if f.admin {
			p.Kind, p.Role = keys.KindAdmin, f.role
		}
		if f.expires > 0 {
			t := time.Now().Add(f.expires).UTC()
			p.ExpiresAt = &t
		}
		plain, k, err := o.keys.Create(ctx, p)
		if err != nil {
			return err
		}
		return printNewKey(stdout, stderr, plain, k, f.quiet, f.out.json)
	case "list":
		list, err := o.keys.List(ctx, keys.KeyFilter{AccountID: f.account})
		if err != nil {
			return err
		}
		return f.out.print(stdout, keyListing(keyViews(list)))
	case "show":
		k, err := o.keys.Get(ctx, id)
		if err != nil {
			return err
		}
		return printJSON(stdout, keyView(k))
	case "rotate":
		plain, k, err := o.keys.Rotate(ctx, id, actor, f.overlap)
		if err != nil {
			return err
		}
		if !f.quiet {
			rotatedNote(stderr, id, f.overlap, k.Status(time.Now()), k.SuspendReason)
		}
		return printNewKey(stdout, stderr, plain, k, f.quiet, f.out.json)
	case "role":
		k, err := o.keys.SetRole(ctx, id, f.role, actor)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s\n", id, k.Role)
	case "update":
		k, err := o.keys.Get(ctx, id)
		if err != nil {
			return err
		}
		if k, err = o.keys.SetCachePolicy(ctx, id, f.cache.apply(k.CachePolicy()), actor); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s\n", id, describeCache(k.CachePolicy()))
	case "revoke":
		if err := o.keys.Revoke(ctx, id, actor); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", id)
	case "suspend":
		if err := o.keys.Suspend(ctx, id, actor, f.reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "suspended %s\n", id)
	case "resume":
		if err := o.keys.Resume(ctx, id, actor); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "resumed %s\n", id)
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
	fmt.Fprintf(w, "rotated %s: the old key keeps working for %s\n", id, config.FormatDuration(overlap))
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

// newAccountsCmd is `xroute accounts create|list`, local or remote.
func newAccountsCmd(stdout io.Writer) *cobra.Command {
	create := &cobra.Command{Use: "create NAME", Short: "create an account; prints its id", Args: exactArgs("NAME"),
		Example: "  xroute accounts create acme",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if r := remoteFromEnv(); r != nil {
				return remoteAccounts(ctx, r, "create", args[0], output{}, stdout)
			}
			o, err := openOffline(ctx, configPath(cmd))
			if err != nil {
				return err
			}
			defer o.close()
			a, err := o.keys.CreateAccount(ctx, args[0], "cli", nil)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, a.ID)
			return nil
		}}
	list := &cobra.Command{Use: "list", Short: "list accounts", Args: noArgs, Example: "  xroute accounts list --json"}
	out := addOutputFlags(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if err := out.check(); err != nil {
			return err
		}
		if r := remoteFromEnv(); r != nil {
			return remoteAccounts(ctx, r, "list", "", *out, stdout)
		}
		o, err := openOffline(ctx, configPath(cmd))
		if err != nil {
			return err
		}
		defer o.close()
		list, err := o.keys.Accounts(ctx, "", 1000)
		if err != nil {
			return err
		}
		views := make([]accountView, 0, len(list))
		for _, a := range list {
			if a.Status == "" {
				a.Status = keys.AccountActive // as the admin API shows it
			}
			views = append(views, accountView{ID: a.ID, Name: a.Name, Status: a.Status, CreatedAt: a.CreatedAt})
		}
		return out.print(stdout, accountListing(views))
	}
	return group("accounts", "create and list accounts, set their body capture", "", "  xroute accounts create acme\n  xroute accounts list\n  xroute accounts capture acct_123 --on --retention 7d", create, list, newCaptureCmd(stdout))
}

// accountView is an account as listings print it (the admin API's fields).
type accountView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

func accountListing(list []accountView) listing {
	l := listing{header: []string{"ID", "NAME", "STATUS", "CREATED"}, data: list}
	for _, a := range list {
		l.add(a.ID, a.Name, a.Status, a.CreatedAt.Format(time.RFC3339))
	}
	return l
}

func keyView(k keys.Key) httpapi.KeyObject { return httpapi.NewKeyObject(k, time.Now()) }

func keyViews(list []keys.Key) []httpapi.KeyObject {
	out := make([]httpapi.KeyObject, len(list))
	for i, k := range list {
		out[i] = keyView(k)
	}
	return out
}

// newConfigCmd is `xroute config env`.
func newConfigCmd(stdout io.Writer) *cobra.Command {
	env := &cobra.Command{Use: "env", Short: "list the XROUTE_* environment variables and the settings they override", Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			for _, kv := range append(config.EnvNames(), config.OtherEnv...) {
				fmt.Fprintf(stdout, "%-36s %s\n", kv[0], kv[1])
			}
			return nil
		}}
	return group("config", "inspect the configuration", "", "  xroute config env", env)
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
