package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/httpapi"
)

// issuerFlags are the flags of the issuers subcommands.
type issuerFlags struct {
	file  string
	merge bool
	out   output
}

// newIssuersCmd is `xroute issuers`: the token exchange's trusted issuers,
// through the admin API (XROUTE_URL and XROUTE_ADMIN_KEY) or the database
// of --config. The config file's issuers are listed, read-only.
func newIssuersCmd(stdout io.Writer) *cobra.Command {
	var f issuerFlags
	sub := func(name, use, short, example string, args cobra.PositionalArgs) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Example: example, Args: args}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) > 0 {
				ref = args[0]
			}
			return runIssuers(cmd.Context(), name, f, ref, configPath(cmd), stdout)
		}
		return c
	}
	list := sub("list", "list", "list the trusted issuers (config file and admin API)", "  xroute issuers list --json", noArgs)
	out := addOutputFlags(list)
	list.PreRun = func(*cobra.Command, []string) { f.out = *out }
	show := sub("show", "show ID|ISSUER-URL", "print one issuer's definition (JSON)", "  xroute issuers show https://token.actions.githubusercontent.com", exactArgs("ID"))
	add := sub("add", "add -f FILE", "trust a new issuer, read from a YAML or JSON file (- for stdin)",
		"  xroute issuers add -f github-actions.yaml", noArgs)
	add.Flags().StringVarP(&f.file, "file", "f", "", "the issuer's definition: the fields of one auth.issuers entry (YAML or JSON; - for stdin)")
	update := sub("update", "update ID -f FILE", "replace an issuer's definition (--merge: change only the fields the file has)",
		"  xroute issuers update iss_123 -f github-actions.yaml\n  echo '{\"audiences\":[\"xroute\",\"ci\"]}' | xroute issuers update iss_123 --merge -f -", exactArgs("ID"))
	update.Flags().StringVarP(&f.file, "file", "f", "", "the new definition (YAML or JSON; - for stdin)")
	update.Flags().BoolVar(&f.merge, "merge", false, "apply the file as a JSON merge patch instead of replacing the whole definition")
	rm := sub("rm", "rm ID", "stop trusting an issuer added through the admin API or the CLI", "  xroute issuers rm iss_123", exactArgs("ID"))
	return group("issuers", "manage the token exchange's trusted issuers", "",
		"  xroute issuers list\n  xroute issuers add -f github-actions.yaml\n  xroute issuers rm iss_123", list, show, add, update, rm)
}

// readIssuerFile reads -f: the document as given (for --merge) and as JSON.
func readIssuerFile(path string) (raw, doc []byte, err error) {
	if path == "" {
		return nil, nil, fmt.Errorf("%w: -f FILE is required (the issuer's definition, YAML or JSON; - for stdin)", errUsage)
	}
	if path == "-" {
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, nil, err
	}
	d, err := config.ParseIssuerDoc(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, err = json.Marshal(d)
	return raw, doc, err
}

// mergeDoc reads a merge patch: JSON as it is (null must stay null), or
// YAML turned into JSON.
func mergeDoc(raw []byte) (json.RawMessage, error) {
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "{") {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("%w: the merge patch is not valid JSON", errUsage)
		}
		return json.RawMessage(t), nil
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: the merge patch is neither JSON nor YAML: %v", errUsage, err)
	}
	b, err := json.Marshal(v)
	return b, err
}

func runIssuers(ctx context.Context, sub string, f issuerFlags, ref, cfgPath string, stdout io.Writer) error {
	if err := f.out.check(); err != nil {
		return err
	}
	var raw, doc []byte
	if sub == "add" || sub == "update" {
		var err error
		if f.merge {
			if f.file == "" {
				return fmt.Errorf("%w: --merge needs -f FILE", errUsage)
			}
			if f.file == "-" {
				raw, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			} else {
				raw, err = os.ReadFile(f.file)
			}
			if err == nil {
				doc, err = mergeDoc(raw)
			}
		} else {
			raw, doc, err = readIssuerFile(f.file)
		}
		if err != nil {
			return err
		}
	}
	if r := remoteFromEnv(); r != nil {
		return remoteIssuers(ctx, r, sub, f, ref, doc, stdout)
	}
	reg, closeFn, err := openIssuers(ctx, cfgPath)
	if err != nil {
		return err
	}
	defer closeFn()
	parse := func() (config.Issuer, error) {
		d, err := config.ParseIssuerDoc(doc)
		if err != nil {
			return config.Issuer{}, err
		}
		return d.Parse()
	}
	var e exchange.Entry
	switch sub {
	case "list":
		list, err := reg.List(ctx)
		if err != nil {
			return err
		}
		objs := make([]httpapi.IssuerObject, len(list))
		for i, e := range list {
			objs[i] = httpapi.NewIssuerObject(e)
		}
		return f.out.print(stdout, issuerListing(objs))
	case "show":
		if e, err = reg.Get(ctx, ref); err != nil {
			return err
		}
		return printJSON(stdout, httpapi.NewIssuerObject(e))
	case "add":
		is, err := parse()
		if err != nil {
			return err
		}
		if e, err = reg.Create(ctx, "cli", is); err != nil {
			return err
		}
	case "update":
		if f.merge {
			e, err = reg.Patch(ctx, "cli", ref, doc)
		} else {
			var is config.Issuer
			if is, err = parse(); err == nil {
				e, err = reg.Replace(ctx, "cli", ref, is)
			}
		}
		if err != nil {
			return err
		}
	case "rm":
		if err := reg.Delete(ctx, "cli", ref); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s: its tokens are refused from now on (keys it issued live until their expiry)\n", ref)
		return nil
	}
	fmt.Fprintf(stdout, "%s %s (%s)\n", issuerVerbs[sub], e.ID, e.Issuer.Issuer)
	return nil
}

// openIssuers opens the issuer registry on the database of --config; its
// changes are announced to the running replicas (Redis), which also poll.
func openIssuers(ctx context.Context, cfgPath string) (*exchange.Registry, func(), error) {
	o, err := openAnnounced(ctx, cfgPath)
	if err != nil {
		return nil, nil, err
	}
	reg := exchange.NewRegistry(o.cfg.Auth.Issuers, o.db, app.KeyChains(o.db, o.vault), nil, func() { o.publish(app.IssuersChanged) })
	return reg, o.close, nil
}

func remoteIssuers(ctx context.Context, r *remote, sub string, f issuerFlags, ref string, doc []byte, stdout io.Writer) error {
	var e httpapi.IssuerObject
	switch sub {
	case "list":
		var page struct {
			Data []httpapi.IssuerObject `json:"data"`
		}
		if _, err := r.do(ctx, http.MethodGet, "/issuers", nil, nil, &page); err != nil {
			return err
		}
		return f.out.print(stdout, issuerListing(page.Data))
	case "show":
		if strings.Contains(ref, "://") {
			var page struct {
				Data []httpapi.IssuerObject `json:"data"`
			}
			if _, err := r.do(ctx, http.MethodGet, "/issuers", url.Values{"issuer": {ref}}, nil, &page); err != nil {
				return err
			}
			if len(page.Data) == 0 {
				return fmt.Errorf("no trusted issuer %s", ref)
			}
			return printJSON(stdout, page.Data[0])
		}
		if _, err := r.do(ctx, http.MethodGet, "/issuers/"+url.PathEscape(ref), nil, nil, &e); err != nil {
			return err
		}
		return printJSON(stdout, e)
	case "add":
		if _, err := r.do(ctx, http.MethodPost, "/issuers", nil, json.RawMessage(doc), &e); err != nil {
			return err
		}
	case "update":
		method := http.MethodPut
		if f.merge {
			method = http.MethodPatch
		}
		if _, err := r.do(ctx, method, "/issuers/"+url.PathEscape(ref), nil, json.RawMessage(doc), &e); err != nil {
			return err
		}
	case "rm":
		if _, err := r.do(ctx, http.MethodDelete, "/issuers/"+url.PathEscape(ref), nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s: its tokens are refused from now on (keys it issued live until their expiry)\n", ref)
		return nil
	}
	fmt.Fprintf(stdout, "%s %s (%s)\n", issuerVerbs[sub], e.ID, e.Issuer)
	return nil
}

// issuerVerbs say what add and update did.
var issuerVerbs = map[string]string{"add": "added", "update": "updated"}

func issuerListing(list []httpapi.IssuerObject) listing {
	l := listing{header: []string{"ID", "SOURCE", "ISSUER", "AUDIENCES", "RULES", "UPDATED BY"}, data: list}
	for _, o := range list {
		rules := make([]string, len(o.Rules))
		for i, r := range o.Rules {
			rules[i] = r.Name + "→" + r.Account
		}
		l.add(o.ID, o.Source, o.Issuer, strings.Join(o.Audiences, ","), strings.Join(rules, ","), o.UpdatedBy)
	}
	return l
}
