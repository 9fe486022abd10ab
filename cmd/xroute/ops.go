package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/vault"
)

// auditFlags are the flags of the audit subcommands.
type auditFlags struct {
	kind, subject, head string
	limit               int
	out                 output
}

// newAuditCmd is `xroute audit list|verify|head`, local or remote.
func newAuditCmd(stdout, stderr io.Writer) *cobra.Command {
	var f auditFlags
	sub := func(name, short, example string) *cobra.Command {
		c := &cobra.Command{Use: name, Short: short, Example: example, Args: noArgs}
		c.RunE = func(cmd *cobra.Command, _ []string) error {
			return runAudit(cmd.Context(), name, f, configPath(cmd), stdout, stderr)
		}
		return c
	}
	list := sub("list", "list audit events, newest first", "  xroute audit list --kind key. --limit 20\n  xroute audit list --subject key_123 --json")
	list.Flags().StringVar(&f.kind, "kind", "", "only events whose kind starts with this (e.g. key.)")
	list.Flags().StringVar(&f.subject, "subject", "", "only events about this id")
	list.Flags().IntVar(&f.limit, "limit", 50, "how many events (newest first)")
	out := addOutputFlags(list)
	list.PreRun = func(*cobra.Command, []string) { f.out = *out }
	verify := sub("verify", "verify the audit log's keyed hash chain (and a head kept outside the database)",
		"  xroute audit verify\n  xroute audit verify --head head.json")
	verify.Flags().StringVar(&f.head, "head", "", "a head printed by `xroute audit head` (its file, or the JSON): also catch rows removed or rewritten since")
	head := sub("head", "print the log's signed head, to keep outside the database", "  xroute audit head > head.json")
	return group("audit", "read and verify the audit log, sign its head", "", "  xroute audit list\n  xroute audit verify --head head.json", list, verify, head, newAuditExportCmd(stdout))
}

// runAudit runs one audit subcommand on the backend the environment names.
func runAudit(ctx context.Context, sub string, f auditFlags, cfgPath string, stdout, stderr io.Writer) error {
	if err := f.out.check(); err != nil {
		return err
	}
	var anchor *auditlog.Head
	if f.head != "" {
		h, err := readHead(f.head)
		if err != nil {
			return err
		}
		anchor = &h
	}
	if r := remoteFromEnv(); r != nil {
		return remoteAudit(ctx, r, sub, f, anchor, stdout)
	}
	o, err := openOffline(ctx, cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	switch sub {
	case "verify":
		rep, err := o.audit.Check(ctx, anchor)
		return printAuditCheck(stdout, auditCheck{Rows: rep.Rows, LegacyRows: rep.LegacyRows, HeadChecked: rep.HeadChecked, HeadSeq: headSeq(anchor)}, err)
	case "head":
		h, err := o.audit.Head(ctx)
		if err != nil {
			return fmt.Errorf("no head signed: %w", err)
		}
		fmt.Fprintln(stdout, h.String())
		fmt.Fprintln(stderr, "keep this line outside the database; later: xroute audit verify --head FILE")
		return nil
	}
	events, err := o.audit.List(ctx, auditlog.Filter{Kind: f.kind, Subject: f.subject, Limit: f.limit})
	if err != nil {
		return err
	}
	views := make([]auditView, 0, len(events))
	for _, e := range events {
		views = append(views, auditView{Seq: e.Seq, At: e.At, Kind: e.Kind, Actor: e.Actor, Subject: e.Subject, Details: e.Details})
	}
	return f.out.print(stdout, auditListing(views))
}

// auditView is an audit event as listings print it (the admin API's fields).
type auditView struct {
	Seq     int64          `json:"seq"`
	At      time.Time      `json:"at"`
	Kind    string         `json:"kind"`
	Actor   string         `json:"actor"`
	Subject string         `json:"subject"`
	Details map[string]any `json:"details"`
}

func auditListing(list []auditView) listing {
	l := listing{header: []string{"SEQ", "AT", "KIND", "ACTOR", "SUBJECT", "DETAILS"}, data: list}
	for _, e := range list {
		det := make([]string, 0, len(e.Details))
		for k, v := range e.Details {
			det = append(det, fmt.Sprintf("%s=%v", k, v))
		}
		sort.Strings(det)
		l.add(strconv.FormatInt(e.Seq, 10), e.At.Format(time.RFC3339), e.Kind, e.Actor, e.Subject, strings.Join(det, " "))
	}
	return l
}

// auditCheck is what a verification found, locally or through the API.
type auditCheck struct {
	Rows, LegacyRows int
	HeadChecked      bool
	HeadSeq          int64
}

// printAuditCheck reports a verification; err is Check's.
func printAuditCheck(w io.Writer, c auditCheck, err error) error {
	var ce *auditlog.ChainError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(w, "audit log BROKEN at seq %d: %s (%d rows checked before it)\n", ce.Seq, ce.Reason, c.Rows)
		return fmt.Errorf("audit chain broken at seq %d", ce.Seq)
	case errors.Is(err, auditlog.ErrAuditNotKeyed), errors.Is(err, auditlog.ErrHeadSignature):
		fmt.Fprintf(w, "audit log NOT VERIFIED: %v\n", err)
		return err
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "audit log intact: %d rows, hash chain verified", c.Rows)
	if c.LegacyRows > 0 {
		fmt.Fprintf(w, "; the first %d were written before the chain was keyed (covered since then, not before)", c.LegacyRows)
	}
	if c.HeadChecked {
		fmt.Fprintf(w, "; the anchored head (seq %d) is still there, unchanged", c.HeadSeq)
	}
	fmt.Fprintln(w)
	return nil
}

func headSeq(h *auditlog.Head) int64 {
	if h == nil {
		return 0
	}
	return h.Seq
}

// readHead reads a head given as its JSON or as the file holding it.
func readHead(arg string) (auditlog.Head, error) {
	text := arg
	if !strings.HasPrefix(strings.TrimSpace(arg), "{") {
		raw, err := os.ReadFile(arg)
		if err != nil {
			return auditlog.Head{}, fmt.Errorf("--head: %w", err)
		}
		text = string(raw)
	}
	h, err := auditlog.ParseHead(text)
	if err != nil {
		return auditlog.Head{}, fmt.Errorf("--head: %w", err)
	}
	return h, nil
}

// openSecrets opens the vault and provider keys directly on the database.
func openSecrets(ctx context.Context, cfgPath string, stderr io.Writer) (*app.Secrets, func(), error) {
	o, err := openAnnounced(ctx, cfgPath)
	if err != nil {
		return nil, nil, err
	}
	// Running replicas reload the keys this changes (Announce).
	s := app.NewSecrets(o.cfg, app.SecretsDeps{Vault: o.vault, DB: o.db, Audit: app.KeyChains(o.db, o.vault), Announce: o.publish, Log: zap.NewNop()})
	return s, o.close, nil
}

// announced is the database of --config with its vault, for a command
// that changes what running replicas cache: publish tells them (Redis,
// when configured), close closes both.
type announced struct {
	cfg     config.Config
	db      *store.DB
	vault   *vault.Vault
	publish func(string)
	close   func()
}

func openAnnounced(ctx context.Context, cfgPath string) (*announced, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	db, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	v, err := app.OpenVault(ctx, db, cfg.Vault, zap.NewNop())
	if err != nil {
		db.Close()
		return nil, err
	}
	publish, closeAnnouncer, err := app.Announcer(cfg, cliLogger())
	if err != nil {
		db.Close()
		return nil, err
	}
	return &announced{cfg: cfg, db: db, vault: v, publish: publish, close: func() { closeAnnouncer(); db.Close() }}, nil
}

// newVaultCmd is `xroute vault rotate`, local or remote.
func newVaultCmd(stdout, stderr io.Writer) *cobra.Command {
	rotate := &cobra.Command{
		Use:     "rotate",
		Short:   "new data-key term; re-encrypt every stored provider key, online",
		Example: "  xroute vault rotate",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if r := remoteFromEnv(); r != nil {
				return remoteVaultRotate(ctx, r, stdout)
			}
			s, closeFn, err := openSecrets(ctx, configPath(cmd), stderr)
			if err != nil {
				return err
			}
			defer closeFn()
			bar := newProgress(stderr, "re-encrypting provider keys")
			term, err := s.RotateVault(ctx, "cli", bar.update)
			bar.done()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "vault rotated: new keys are sealed under term %d; every stored provider key was re-encrypted\n", term)
			return nil
		},
	}
	return group("vault", "rotate the provider-key vault", "", "  xroute vault rotate", rotate)
}

// providerKeyFlags are the flags of the provider-keys subcommands.
type providerKeyFlags struct {
	provider, name, reason string
	weight                 int
	out                    output
}

// newProviderKeysCmd is `xroute provider-keys`, local or remote.
func newProviderKeysCmd(stdout, stderr io.Writer) *cobra.Command {
	var f providerKeyFlags
	sub := func(name, use, short, example string, args cobra.PositionalArgs) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Example: example, Args: args}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) > 0 {
				id = args[0]
			}
			return runProviderKeys(cmd.Context(), name, f, id, configPath(cmd), stdout, stderr)
		}
		return c
	}
	add := sub("add", "add --provider P --name N < keyfile", "add a provider key, read from stdin (never a flag: flags end up in shell history)",
		"  xroute provider-keys add --provider openai --name main < openai.key", noArgs)
	add.Flags().StringVar(&f.provider, "provider", "", "provider name from the config")
	add.Flags().StringVar(&f.name, "name", "", "a name for the key")
	add.Flags().IntVar(&f.weight, "weight", 1, "share of traffic among the provider's keys")
	list := sub("list", "list", "list provider keys (masked)", "  xroute provider-keys list --provider openai --json", noArgs)
	list.Flags().StringVar(&f.provider, "provider", "", "only this provider's keys")
	out := addOutputFlags(list)
	list.PreRun = func(*cobra.Command, []string) { f.out = *out }
	disable := sub("disable", "disable ID", "stop routing to a provider key", "  xroute provider-keys disable pk_123 --reason 'quota exhausted'", exactArgs("ID"))
	disable.Flags().StringVar(&f.reason, "reason", "disabled by an operator", "why")
	enable := sub("enable", "enable ID", "route to a disabled provider key again", "  xroute provider-keys enable pk_123", exactArgs("ID"))
	del := sub("delete", "delete ID", "delete a provider key", "  xroute provider-keys delete pk_123", exactArgs("ID"))
	return group("provider-keys", "manage provider keys in the vault", "", "  xroute provider-keys add --provider openai --name main < openai.key\n  xroute provider-keys list",
		add, list, disable, enable, del)
}

// runProviderKeys runs one provider-keys subcommand on the backend the
// environment names.
func runProviderKeys(ctx context.Context, sub string, f providerKeyFlags, id, cfgPath string, stdout, stderr io.Writer) error {
	if err := f.out.check(); err != nil {
		return err
	}
	secret := ""
	if sub == "add" {
		// The key is read from stdin, never from a flag: flags end up in
		// shell history and process listings.
		raw, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
		if err != nil {
			return err
		}
		secret = strings.TrimSpace(string(raw))
	}
	if r := remoteFromEnv(); r != nil {
		return remoteProviderKeys(ctx, r, sub, f, secret, id, stdout)
	}
	s, closeFn, err := openSecrets(ctx, cfgPath, stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	switch sub {
	case "add":
		pk, err := s.AddProviderKey(ctx, "cli", f.provider, f.name, secret, f.weight)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s (%s, %s) for %s\n", pk.ID, pk.Name, pk.Hint, pk.Provider)
	case "list":
		list, err := s.ListProviderKeys(ctx, f.provider)
		if err != nil {
			return err
		}
		views := make([]providerKeyView, 0, len(list))
		for _, k := range list {
			views = append(views, providerKeyView{ID: k.ID, Provider: k.Provider, Name: k.Name, Hint: k.Hint, Weight: k.Weight, Term: k.Term, Status: k.Status})
		}
		return f.out.print(stdout, providerKeyListing(views))
	case "disable", "enable":
		if err := s.SetProviderKeyEnabled(ctx, "cli", id, sub == "enable", f.reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd %s\n", sub, id)
	case "delete":
		if err := s.DeleteProviderKey(ctx, "cli", id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", id)
	}
	return nil
}

// providerKeyView is a provider key as listings print it (masked).
type providerKeyView struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Hint     string `json:"hint"`
	Weight   int    `json:"weight"`
	Term     uint32 `json:"term"`
	Status   string `json:"status"`
}

func providerKeyListing(list []providerKeyView) listing {
	l := listing{header: []string{"ID", "PROVIDER", "NAME", "KEY", "WEIGHT", "TERM", "STATUS"}, data: list}
	for _, k := range list {
		l.add(k.ID, k.Provider, k.Name, k.Hint, strconv.Itoa(k.Weight), strconv.FormatUint(uint64(k.Term), 10), k.Status)
	}
	return l
}

// progress draws a one-line progress bar on a terminal-ish writer.
type progress struct {
	w     io.Writer
	label string
	shown bool
}

func newProgress(w io.Writer, label string) *progress { return &progress{w: w, label: label} }

func (p *progress) update(done, total int) {
	if total == 0 {
		return
	}
	const width = 30
	n := done * width / total
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
	p.shown = true
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintln(p.w)
	}
}
