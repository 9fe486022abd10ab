package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// Issuer sources.
const (
	SourceConfig = "config" // the config file's auth.issuers: read-only here
	SourceAPI    = "api"    // added through the admin API or the CLI
)

// Audit kinds of issuer changes.
const (
	AuditIssuerCreated = "issuer.created"
	AuditIssuerUpdated = "issuer.updated"
	AuditIssuerDeleted = "issuer.deleted"
)

// Errors a caller of Registry branches on (the admin API answers 409).
var (
	// ErrConfigIssuer is a write to an issuer from the config file: change
	// the file instead.
	ErrConfigIssuer = errors.New("the issuer is set in the config file and cannot be changed through the API")
	// ErrShadowsConfig is a stored issuer with the iss of a config one.
	ErrShadowsConfig = errors.New("an issuer with this iss is set in the config file")
)

// IssuerStore keeps the issuers added through the API (store.DB).
type IssuerStore interface {
	Issuers(ctx context.Context) ([]store.StoredIssuer, error)
	Issuer(ctx context.Context, id string) (store.StoredIssuer, error)
	CreateIssuer(ctx context.Context, is store.StoredIssuer) error
	UpdateIssuer(ctx context.Context, is store.StoredIssuer) error
	DeleteIssuer(ctx context.Context, id string) error
}

// Entry is one trusted issuer as the admin API lists it.
type Entry struct {
	ID        string
	Source    string // SourceConfig or SourceAPI
	Issuer    config.Issuer
	CreatedAt time.Time // zero for config issuers
	CreatedBy string
	UpdatedAt time.Time
	UpdatedBy string
}

// Registry manages the trusted issuers: the config file's (read-only)
// and those added through the admin API or the CLI (stored). Every write
// is validated with the config file's rules, audited, and followed by
// OnChange, which reloads the exchange service here and tells the other
// replicas.
type Registry struct {
	config   []config.Issuer
	st       IssuerStore
	audit    Auditor
	now      func() time.Time
	onChange func()
}

// NewRegistry manages cfg (the config file's issuers) and st's; onChange
// (may be nil) runs after every successful write.
func NewRegistry(cfg []config.Issuer, st IssuerStore, audit Auditor, now func() time.Time, onChange func()) *Registry {
	if now == nil {
		now = time.Now
	}
	if onChange == nil {
		onChange = func() {}
	}
	return &Registry{config: cfg, st: st, audit: audit, now: now, onChange: onChange}
}

// ConfigIssuerID is the stable id of a config file issuer: derived from
// its iss, so it survives reordering the file.
func ConfigIssuerID(iss string) string {
	sum := sha256.Sum256([]byte(iss))
	return "cfg_" + hex.EncodeToString(sum[:6])
}

func (r *Registry) configByIss(iss string) (config.Issuer, bool) {
	for _, c := range r.config {
		if c.Issuer == iss {
			return c, true
		}
	}
	return config.Issuer{}, false
}

// decode reads a stored issuer's definition.
func decode(s store.StoredIssuer) (Entry, error) {
	doc, err := config.ParseIssuerDoc(s.Definition)
	if err != nil {
		return Entry{}, fmt.Errorf("stored issuer %s: %w", s.ID, err)
	}
	is, err := doc.Parse()
	if err != nil {
		return Entry{}, fmt.Errorf("stored issuer %s: %w", s.ID, err)
	}
	return Entry{ID: s.ID, Source: SourceAPI, Issuer: is, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy, UpdatedAt: s.UpdatedAt, UpdatedBy: s.UpdatedBy}, nil
}

// List returns the config file's issuers, then the stored ones in the
// order they were added. A stored definition that no longer validates
// is an error: the operator must see it, not lose it silently.
func (r *Registry) List(ctx context.Context) ([]Entry, error) {
	out := make([]Entry, 0, len(r.config))
	for _, c := range r.config {
		out = append(out, Entry{ID: ConfigIssuerID(c.Issuer), Source: SourceConfig, Issuer: c})
	}
	stored, err := r.st.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range stored {
		e, err := decode(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Active is what the exchange service trusts: the config file's issuers
// and every stored one that still validates and does not claim a config
// issuer's iss. Those left out are returned in skipped, for a log line.
func (r *Registry) Active(ctx context.Context) (list []config.Issuer, skipped []error, err error) {
	list = append(list, r.config...)
	stored, err := r.st.Issuers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read stored issuers: %w", err)
	}
	for _, s := range stored {
		e, err := decode(s)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		if _, ok := r.configByIss(e.Issuer.Issuer); ok {
			skipped = append(skipped, fmt.Errorf("stored issuer %s: %w (the config file's wins)", s.ID, ErrShadowsConfig))
			continue
		}
		list = append(list, e.Issuer)
	}
	return list, skipped, nil
}

// Get returns the issuer with the id, or with the iss when ref is a URL.
func (r *Registry) Get(ctx context.Context, ref string) (Entry, error) {
	if strings.Contains(ref, "://") {
		all, err := r.List(ctx)
		if err != nil {
			return Entry{}, err
		}
		for _, e := range all {
			if e.Issuer.Issuer == ref {
				return e, nil
			}
		}
		return Entry{}, fmt.Errorf("issuer %s: %w", ref, store.ErrNotFound)
	}
	for _, c := range r.config {
		if ConfigIssuerID(c.Issuer) == ref {
			return Entry{ID: ref, Source: SourceConfig, Issuer: c}, nil
		}
	}
	s, err := r.st.Issuer(ctx, ref)
	if err != nil {
		return Entry{}, err
	}
	return decode(s)
}

// check validates is and refuses an iss the config file already trusts.
func (r *Registry) check(is config.Issuer) error {
	if err := is.Validate(); err != nil {
		return err
	}
	if _, ok := r.configByIss(is.Issuer); ok {
		return fmt.Errorf("issuer %s: %w", is.Issuer, ErrShadowsConfig)
	}
	return nil
}

func encode(is config.Issuer) ([]byte, error) {
	return json.Marshal(config.NewIssuerDoc(is))
}

// Create adds an issuer; actor is written to the row and the audit log.
func (r *Registry) Create(ctx context.Context, actor string, is config.Issuer) (Entry, error) {
	if err := r.check(is); err != nil {
		return Entry{}, err
	}
	def, err := encode(is)
	if err != nil {
		return Entry{}, err
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	row := store.StoredIssuer{ID: keys.NewID("iss_"), Issuer: is.Issuer, Definition: def, CreatedAt: now, CreatedBy: actor, UpdatedAt: now, UpdatedBy: actor}
	if err := r.st.CreateIssuer(ctx, row); err != nil {
		return Entry{}, err
	}
	r.onChange()
	e := Entry{ID: row.ID, Source: SourceAPI, Issuer: is, CreatedAt: now, CreatedBy: actor, UpdatedAt: now, UpdatedBy: actor}
	return e, r.record(ctx, AuditIssuerCreated, actor, e, nil)
}

// Replace sets the whole definition of the stored issuer id.
func (r *Registry) Replace(ctx context.Context, actor, id string, is config.Issuer) (Entry, error) {
	prev, err := r.Get(ctx, id)
	if err != nil {
		return Entry{}, err
	}
	if prev.Source == SourceConfig {
		return Entry{}, fmt.Errorf("issuer %s: %w", id, ErrConfigIssuer)
	}
	if err := r.check(is); err != nil {
		return Entry{}, err
	}
	def, err := encode(is)
	if err != nil {
		return Entry{}, err
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	if err := r.st.UpdateIssuer(ctx, store.StoredIssuer{ID: prev.ID, Issuer: is.Issuer, Definition: def, UpdatedAt: now, UpdatedBy: actor}); err != nil {
		return Entry{}, err
	}
	r.onChange()
	e := Entry{ID: prev.ID, Source: SourceAPI, Issuer: is, CreatedAt: prev.CreatedAt, CreatedBy: prev.CreatedBy, UpdatedAt: now, UpdatedBy: actor}
	var extra map[string]any
	if prev.Issuer.Issuer != is.Issuer {
		extra = map[string]any{"previous_issuer": prev.Issuer.Issuer}
	}
	return e, r.record(ctx, AuditIssuerUpdated, actor, e, extra)
}

// Patch applies a JSON merge patch (RFC 7396) to the stored issuer id's
// document and replaces it with the result: {"audiences": [...]} changes
// the audiences only; a rules list replaces the whole list.
func (r *Registry) Patch(ctx context.Context, actor, id string, patch []byte) (Entry, error) {
	prev, err := r.Get(ctx, id)
	if err != nil {
		return Entry{}, err
	}
	if prev.Source == SourceConfig {
		return Entry{}, fmt.Errorf("issuer %s: %w", id, ErrConfigIssuer)
	}
	var p any
	if err := json.Unmarshal(patch, &p); err != nil {
		return Entry{}, &config.FieldError{Field: "body", Msg: "not a JSON merge patch: " + err.Error()}
	}
	if _, ok := p.(map[string]any); !ok {
		return Entry{}, &config.FieldError{Field: "body", Msg: "a merge patch must be a JSON object"}
	}
	cur, err := encode(prev.Issuer)
	if err != nil {
		return Entry{}, err
	}
	var doc any
	if err := json.Unmarshal(cur, &doc); err != nil {
		return Entry{}, err
	}
	merged, err := json.Marshal(mergePatch(doc, p))
	if err != nil {
		return Entry{}, err
	}
	d, err := config.ParseIssuerDoc(merged)
	if err != nil {
		return Entry{}, err
	}
	is, err := d.Parse()
	if err != nil {
		return Entry{}, err
	}
	return r.Replace(ctx, actor, prev.ID, is)
}

// mergePatch is RFC 7396: objects merge key by key, null removes a key,
// anything else replaces.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// Delete removes the stored issuer id: its tokens are refused from the
// next exchange on. Keys it already issued live until their own expiry.
func (r *Registry) Delete(ctx context.Context, actor, id string) error {
	prev, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if prev.Source == SourceConfig {
		return fmt.Errorf("issuer %s: %w", id, ErrConfigIssuer)
	}
	if err := r.st.DeleteIssuer(ctx, prev.ID); err != nil {
		return err
	}
	r.onChange()
	return r.record(ctx, AuditIssuerDeleted, actor, prev, nil)
}

func (r *Registry) record(ctx context.Context, kind, actor string, e Entry, extra map[string]any) error {
	d := map[string]any{"issuer": e.Issuer.Issuer, "rules": len(e.Issuer.Rules)}
	for k, v := range extra {
		d[k] = v
	}
	if err := r.audit.Record(ctx, auditlog.Event{Kind: kind, Actor: actor, Subject: e.ID, Details: d}); err != nil {
		return fmt.Errorf("issuer %s changed, but its audit row was not written: %w", e.ID, err)
	}
	return nil
}
