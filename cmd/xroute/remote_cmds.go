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
	"time"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// keyListing is the keys list, offline or remote.
func keyListing(list []httpapi.KeyObject) listing {
	l := listing{header: []string{"ID", "NAME", "KIND", "ROLE", "ACCOUNT", "KEY", "MODELS", "CREATED", "STATUS"}, data: list}
	for _, k := range list {
		m := "*"
		if len(k.AllowedModels) > 0 {
			m = fmt.Sprint(k.AllowedModels)
		}
		role := k.Role
		if role == "" {
			role = "-" // a caller key has none
		}
		l.add(k.ID, k.Name, k.Kind, role, k.AccountID, k.Hint, m, k.CreatedAt.Format(time.RFC3339), k.Status)
	}
	return l
}

// keyFlags are the flags of the keys subcommands.
type keyFlags struct {
	name, account, reason string
	role                  string // an admin key's role (--role, with --admin)
	admin, quiet          bool
	out                   output
	models, endpoints     []string
	cidrs                 []string
	rpm, tpm, conc        int
	meta                  map[string]string
	expires, overlap      time.Duration
	cache                 cacheFlags // the response cache policy (create, update)
}

// remoteKeys runs a keys subcommand through the admin API.
func remoteKeys(ctx context.Context, r *remote, sub string, f keyFlags, id string, stdout, stderr io.Writer) error {
	switch sub {
	case "create":
		body := map[string]any{"name": f.name, "account_id": f.account, "allowed_models": f.models, "allowed_endpoints": f.endpoints,
			"allowed_cidrs": f.cidrs, "rpm": f.rpm, "tpm": f.tpm, "max_concurrent": f.conc, "metadata": f.meta}
		if f.admin {
			body["kind"] = "admin"
		}
		if f.role != "" {
			body["role"] = f.role
		}
		if f.expires > 0 {
			body["expires_in"] = f.expires.String()
		}
		if f.cache.any() {
			body["cache"] = f.cache.body()
		}
		var k httpapi.KeyObject
		if _, err := r.do(ctx, http.MethodPost, "/keys", nil, body, &k); err != nil {
			return err
		}
		return printRemoteNewKey(stdout, stderr, k, f.quiet, f.out.json)
	case "list":
		q := url.Values{}
		if f.account != "" {
			q.Set("account_id", f.account)
		}
		raw, err := r.list(ctx, "/keys", q, 0)
		if err != nil {
			return err
		}
		list := make([]httpapi.KeyObject, len(raw))
		for i, m := range raw {
			json.Unmarshal(m, &list[i])
		}
		return f.out.print(stdout, keyListing(list))
	case "show":
		var k httpapi.KeyObject
		if _, err := r.do(ctx, http.MethodGet, "/keys/"+url.PathEscape(id), nil, nil, &k); err != nil {
			return err
		}
		return printJSON(stdout, k)
	case "rotate":
		var k httpapi.KeyObject
		if _, err := r.do(ctx, http.MethodPost, "/keys/"+url.PathEscape(id)+"/rotate", nil, map[string]any{"overlap": f.overlap.String()}, &k); err != nil {
			return err
		}
		if !f.quiet {
			rotatedNote(stderr, id, f.overlap, k.Status, k.SuspendReason)
		}
		return printRemoteNewKey(stdout, stderr, k, f.quiet, f.out.json)
	case "role":
		var k httpapi.KeyObject
		if _, err := r.do(ctx, http.MethodPost, "/keys/"+url.PathEscape(id)+"/role", nil, map[string]any{"role": f.role}, &k); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s (effective on the server's next request)\n", id, k.Role)
		return nil
	case "update":
		var k httpapi.KeyObject
		if _, err := r.do(ctx, http.MethodPatch, "/keys/"+url.PathEscape(id), nil, map[string]any{"cache": f.cache.body()}, &k); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s (effective on the server's next request)\n", id, describeCache(keys.CachePolicyOf(k.Metadata)))
		return nil
	case "revoke", "resume":
		if _, err := r.do(ctx, http.MethodPost, "/keys/"+url.PathEscape(id)+"/"+sub, nil, nil, nil); err != nil {
			return err
		}
	case "suspend":
		if _, err := r.do(ctx, http.MethodPost, "/keys/"+url.PathEscape(id)+"/suspend", nil, map[string]any{"reason": f.reason}, nil); err != nil {
			return err
		}
	}
	past := map[string]string{"revoke": "revoked", "resume": "resumed", "suspend": "suspended"}[sub]
	fmt.Fprintf(stdout, "%s %s (effective on the server's next request)\n", past, id)
	return nil
}

func printRemoteNewKey(stdout, stderr io.Writer, k httpapi.KeyObject, quiet, asJSON bool) error {
	switch {
	case quiet:
		fmt.Fprintln(stdout, k.Key)
	case asJSON:
		return printJSON(stdout, k)
	default:
		fmt.Fprintln(stdout, k.Key)
		fmt.Fprintf(stderr, "created %s key %s (%s) in account %s. This is the only time the key is shown: store it now.\n", k.Kind, k.ID, k.Name, k.AccountID)
	}
	return nil
}

// remoteAccounts runs accounts create|list through the admin API.
func remoteAccounts(ctx context.Context, r *remote, sub, name string, out output, stdout io.Writer) error {
	if sub == "create" {
		var a httpapi.AccountObject
		if _, err := r.do(ctx, http.MethodPost, "/accounts", nil, map[string]any{"name": name}, &a); err != nil {
			return err
		}
		fmt.Fprintln(stdout, a.ID)
		return nil
	}
	raw, err := r.list(ctx, "/accounts", nil, 0)
	if err != nil {
		return err
	}
	views := make([]accountView, 0, len(raw))
	for _, m := range raw {
		var a accountView
		json.Unmarshal(m, &a)
		views = append(views, a)
	}
	return out.print(stdout, accountListing(views))
}

// remoteCredits runs credits topup|balance|ledger|verify through the admin API.
func remoteCredits(ctx context.Context, r *remote, sub string, f creditsFlags, stdout io.Writer) error {
	acct := "/accounts/" + url.PathEscape(f.account)
	switch sub {
	case "topup":
		var out struct {
			Replayed bool `json:"replayed"`
			Entry    struct {
				ID        int64  `json:"id"`
				AmountUSD string `json:"amount_usd"`
			} `json:"entry"`
		}
		if _, err := r.do(ctx, http.MethodPost, acct+"/credits", nil, map[string]any{"amount": f.amount, "idempotency_key": f.idem}, &out); err != nil {
			return err
		}
		if out.Replayed {
			fmt.Fprintf(stdout, "already applied as entry %d (%s USD)\n", out.Entry.ID, out.Entry.AmountUSD)
		} else {
			fmt.Fprintf(stdout, "topped up %s USD (entry %d)\n", out.Entry.AmountUSD, out.Entry.ID)
		}
		return nil
	case "balance":
		var b map[string]any
		if _, err := r.do(ctx, http.MethodGet, acct+"/credits", nil, nil, &b); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "balance %v USD, reserved %v USD, available %v USD\n", b["balance_usd"], b["reserved_usd"], b["available_usd"])
		return nil
	case "ledger":
		raw, err := r.list(ctx, acct+"/ledger", nil, f.limit)
		if err != nil {
			return err
		}
		views := make([]ledgerView, 0, len(raw))
		for _, m := range raw {
			var e ledgerView
			json.Unmarshal(m, &e)
			views = append(views, e)
		}
		return f.out.print(stdout, ledgerListing(views))
	default: // verify
		var v struct {
			OK         bool             `json:"ok"`
			Mismatches []map[string]any `json:"mismatches"`
		}
		if _, err := r.do(ctx, http.MethodGet, "/credits/verify", nil, nil, &v); err != nil {
			return err
		}
		mm := make([]billing.Mismatch, len(v.Mismatches))
		for i, m := range v.Mismatches {
			num := func(k string) int64 { f, _ := m[k].(float64); return int64(f) }
			mm[i].AccountID, _ = m["account_id"].(string)
			mm[i].Cached, mm[i].Computed, mm[i].EntryID = billing.Nano(num("cached_nano")), billing.Nano(num("computed_nano")), num("entry_id")
			mm[i].AccountMissing, _ = m["account_missing"].(bool)
			mm[i].Problem, _ = m["problem"].(string)
		}
		if !v.OK && len(mm) == 0 {
			return errors.New("the server says the ledger does not verify")
		}
		return printCreditsCheck(stdout, mm)
	}
}

// remoteAudit runs audit list|verify|head through the admin API.
func remoteAudit(ctx context.Context, r *remote, sub string, f auditFlags, anchor *auditlog.Head, stdout io.Writer) error {
	switch sub {
	case "verify":
		var q url.Values
		if anchor != nil {
			q = url.Values{"head": {anchor.String()}}
		}
		var v struct {
			OK          bool   `json:"ok"`
			Rows        int    `json:"rows"`
			LegacyRows  int    `json:"legacy_rows"`
			HeadChecked bool   `json:"head_checked"`
			Broken      int64  `json:"broken_at_seq"`
			Reason      string `json:"reason"`
		}
		if _, err := r.do(ctx, http.MethodGet, "/audit/verify", q, nil, &v); err != nil {
			return err
		}
		var err error
		switch {
		case !v.OK && v.Broken > 0:
			err = &auditlog.ChainError{Seq: v.Broken, Reason: v.Reason}
		case !v.OK:
			fmt.Fprintf(stdout, "audit log NOT VERIFIED: %s\n", v.Reason)
			return errors.New(v.Reason)
		}
		return printAuditCheck(stdout, auditCheck{Rows: v.Rows, LegacyRows: v.LegacyRows, HeadChecked: v.HeadChecked, HeadSeq: headSeq(anchor)}, err)
	case "head":
		var h auditlog.Head
		if _, err := r.do(ctx, http.MethodGet, "/audit/head", nil, nil, &h); err != nil {
			return err
		}
		fmt.Fprintln(stdout, h.String())
		return nil
	}
	q := url.Values{"limit": {strconv.Itoa(f.limit)}}
	if f.kind != "" {
		q.Set("kind", f.kind)
	}
	if f.subject != "" {
		q.Set("subject", f.subject)
	}
	var page struct {
		Data []auditView `json:"data"`
	}
	if _, err := r.do(ctx, http.MethodGet, "/audit", q, nil, &page); err != nil {
		return err
	}
	if page.Data == nil {
		page.Data = []auditView{}
	}
	return f.out.print(stdout, auditListing(page.Data))
}

// remoteUsage fetches a usage report; CSV and JSON are passed through, the
// table is rendered here.
func remoteUsage(ctx context.Context, r *remote, q url.Values, format string, stdout io.Writer) error {
	if format == "csv" {
		q.Set("format", "csv")
	}
	raw, err := r.do(ctx, http.MethodGet, "/usage/report", q, nil, nil)
	if err != nil {
		return err
	}
	if format != "table" {
		_, err := stdout.Write(raw)
		return err
	}
	var rep billing.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("unexpected usage report: %w", err)
	}
	return billing.WriteTable(stdout, rep)
}

// remoteProviderKeys runs provider-keys through the admin API; the key
// itself is read from stdin by the caller.
func remoteProviderKeys(ctx context.Context, r *remote, sub string, f providerKeyFlags, secret, id string, stdout io.Writer) error {
	switch sub {
	case "add":
		var pk struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			Hint     string `json:"hint"`
			Provider string `json:"provider"`
		}
		if _, err := r.do(ctx, http.MethodPost, "/provider-keys", nil, map[string]any{"provider": f.provider, "name": f.name, "key": secret, "weight": f.weight}, &pk); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s (%s, %s) for %s\n", pk.ID, pk.Name, pk.Hint, pk.Provider)
	case "list":
		q := url.Values{}
		if f.provider != "" {
			q.Set("provider", f.provider)
		}
		raw, err := r.list(ctx, "/provider-keys", q, 0)
		if err != nil {
			return err
		}
		views := make([]providerKeyView, 0, len(raw))
		for _, m := range raw {
			var k providerKeyView
			json.Unmarshal(m, &k)
			views = append(views, k)
		}
		return f.out.print(stdout, providerKeyListing(views))
	case "disable", "enable":
		if _, err := r.do(ctx, http.MethodPost, "/provider-keys/"+url.PathEscape(id)+"/"+sub, nil, map[string]any{"reason": f.reason}, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd %s\n", sub, id)
	case "delete":
		if _, err := r.do(ctx, http.MethodDelete, "/provider-keys/"+url.PathEscape(id), nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", id)
	}
	return nil
}

// remoteVaultRotate rotates the vault of a running server.
func remoteVaultRotate(ctx context.Context, r *remote, stdout io.Writer) error {
	var out struct {
		ActiveTerm uint32 `json:"active_term"`
	}
	if _, err := r.do(ctx, http.MethodPost, "/vault/rotate", nil, nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "vault rotated: new keys are sealed under term %d; every stored provider key was re-encrypted\n", out.ActiveTerm)
	return nil
}
