package main

import (
	"context"
	"errors"
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
	"github.com/xroute/xroute/keys"
)

// cmdAudit reads and verifies the audit log, and signs its head.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "xroute audit list [--kind PREFIX] [--subject ID] [--limit N] | verify [--head FILE|JSON] | head"
	if len(args) == 0 || (args[0] != "list" && args[0] != "verify" && args[0] != "head") {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	kind := fs.String("kind", "", "only events whose kind starts with this (e.g. key.)")
	subject := fs.String("subject", "", "only events about this id")
	limit := fs.Int("limit", 50, "how many events (newest first)")
	asJSON := fs.Bool("json", false, "print JSON")
	headArg := fs.String("head", "", "verify: a head printed by `xroute audit head` (its file, or the JSON): also catch rows removed or rewritten since")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var anchor *keys.Head
	if *headArg != "" {
		h, err := readHead(*headArg)
		if err != nil {
			return err
		}
		anchor = &h
	}
	if r := remoteFromEnv(); r != nil {
		return remoteAudit(ctx, r, args[0], *kind, *subject, *limit, *asJSON, anchor, stdout)
	}
	o, err := openOffline(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer o.close()
	switch args[0] {
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
	events, err := o.audit.List(ctx, keys.AuditFilter{Kind: *kind, Subject: *subject, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, events)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tKIND\tACTOR\tSUBJECT\tDETAILS")
	for _, e := range events {
		var det []string
		for k, v := range e.Details {
			det = append(det, fmt.Sprintf("%s=%v", k, v))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.Format(time.RFC3339), e.Kind, e.Actor, e.Subject, strings.Join(det, " "))
	}
	return tw.Flush()
}

// auditCheck is what a verification found, locally or through the API.
type auditCheck struct {
	Rows, LegacyRows int
	HeadChecked      bool
	HeadSeq          int64
}

// printAuditCheck reports a verification; err is Check's.
func printAuditCheck(w io.Writer, c auditCheck, err error) error {
	var ce *keys.ChainError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(w, "audit log BROKEN at seq %d: %s (%d rows checked before it)\n", ce.Seq, ce.Reason, c.Rows)
		return fmt.Errorf("audit chain broken at seq %d", ce.Seq)
	case errors.Is(err, keys.ErrAuditNotKeyed), errors.Is(err, keys.ErrHeadSignature):
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

func headSeq(h *keys.Head) int64 {
	if h == nil {
		return 0
	}
	return h.Seq
}

// readHead reads a head given as its JSON or as the file holding it.
func readHead(arg string) (keys.Head, error) {
	text := arg
	if !strings.HasPrefix(strings.TrimSpace(arg), "{") {
		raw, err := os.ReadFile(arg)
		if err != nil {
			return keys.Head{}, fmt.Errorf("--head: %w", err)
		}
		text = string(raw)
	}
	h, err := keys.ParseHead(text)
	if err != nil {
		return keys.Head{}, fmt.Errorf("--head: %w", err)
	}
	return h, nil
}

// openSecrets opens the vault and provider keys directly on the database.
func openSecrets(ctx context.Context, cfgPath string, stderr io.Writer) (*app.Secrets, func(), error) {
	cfg, err := config.Load(cfgPath, os.Environ())
	if err != nil {
		return nil, nil, err
	}
	db, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	log := zap.NewNop()
	v, err := app.OpenVault(ctx, db, cfg.Vault, log)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	publish, closeAnnouncer, err := app.Announcer(cfg, cliLogger())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	s := app.NewSecrets(v, db, app.KeyChains(db, v), nil, cfg, nil, log)
	s.OnChange(publish) // running replicas reload the keys this changes
	return s, func() { closeAnnouncer(); db.Close() }, nil
}

// cmdVault rotates the vault's data key and re-encrypts every stored
// provider key, online.
func cmdVault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("%w: xroute vault rotate", errUsage)
	}
	fs := flag.NewFlagSet("vault rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if r := remoteFromEnv(); r != nil {
		return remoteVaultRotate(ctx, r, stdout)
	}
	s, closeFn, err := openSecrets(ctx, *cfgPath, stderr)
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
}

// cmdProviderKeys manages provider keys in the vault.
func cmdProviderKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "xroute provider-keys add --provider P --name N [--weight W] (key on stdin) | list [--provider P] | disable|enable|delete ID"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	fs := flag.NewFlagSet("provider-keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	provider := fs.String("provider", "", "provider name from the config")
	name := fs.String("name", "", "a name for the key")
	weight := fs.Int("weight", 1, "share of traffic among the provider's keys")
	reason := fs.String("reason", "disabled by an operator", "why (disable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if r := remoteFromEnv(); r != nil {
		secret := ""
		switch args[0] {
		case "add":
			raw, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
			if err != nil {
				return err
			}
			secret = strings.TrimSpace(string(raw))
		case "disable", "enable", "delete":
			if fs.NArg() != 1 {
				return fmt.Errorf("%w: %s", errUsage, use)
			}
		case "list":
		default:
			return fmt.Errorf("%w: %s", errUsage, use)
		}
		return remoteProviderKeys(ctx, r, args[0], *provider, *name, secret, *reason, fs.Arg(0), *weight, stdout)
	}
	s, closeFn, err := openSecrets(ctx, *cfgPath, stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	switch args[0] {
	case "add":
		// The key is read from stdin, never from a flag: flags end up in
		// shell history and process listings.
		raw, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
		if err != nil {
			return err
		}
		pk, err := s.AddProviderKey(ctx, "cli", *provider, *name, strings.TrimSpace(string(raw)), *weight)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s (%s, %s) for %s\n", pk.ID, pk.Name, pk.Hint, pk.Provider)
	case "list":
		list, err := s.ListProviderKeys(ctx, *provider)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPROVIDER\tNAME\tKEY\tWEIGHT\tTERM\tSTATUS")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", k.ID, k.Provider, k.Name, k.Hint, k.Weight, k.Term, k.Status)
		}
		return tw.Flush()
	case "disable", "enable":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: %s", errUsage, use)
		}
		if err := s.SetProviderKeyEnabled(ctx, "cli", fs.Arg(0), args[0] == "enable", *reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd %s\n", args[0], fs.Arg(0))
	case "delete":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: %s", errUsage, use)
		}
		if err := s.DeleteProviderKey(ctx, "cli", fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", fs.Arg(0))
	default:
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	return nil
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
