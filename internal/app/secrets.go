package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/vault"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// OpenVault loads the master key and opens the vault. On a fresh install
// (no keyring stored yet) a missing master-key file is created, and the
// caller is told so loudly; once a keyring exists, a missing or wrong
// master key fails here, at start, never at the first request.
func OpenVault(ctx context.Context, db *store.DB, cfg config.Vault, log *zap.Logger) (*vault.Vault, error) {
	_, _, err := db.Keyring(ctx)
	fresh := errors.Is(err, store.ErrNotFound)
	if err != nil && !fresh {
		return nil, err
	}
	master, generated, err := vault.LoadMasterKey(cfg, fresh)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Warn("generated a new vault master key; back it up: without it the stored provider keys cannot be decrypted", zap.String("file", cfg.MasterKeyFile))
	}
	v, err := vault.Open(ctx, db, master)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return v, nil
}

// Secrets manages provider keys: the vault, the stored keys, the router's
// key pools and the audit trail of every change. The admin API and the CLI
// both go through it.
type Secrets struct {
	vault     *vault.Vault
	pks       *keys.ProviderKeys
	audit     *auditlog.Auditor
	router    *router.Router // nil in the CLI: no pools to refresh
	providers map[string]config.Provider
	build     func(config.Provider) (providers.Provider, error)
	log       *zap.Logger
	// changed tells the other replicas to Refresh (nil: one replica).
	changed func(msg string)
	// redact learns every provider key loaded into a pool (nil: none).
	redact *keys.Redactor
}

// Refresh re-reads the keyring and every pool: another replica changed a
// provider key or rotated the vault.
func (s *Secrets) Refresh(ctx context.Context) error {
	if err := s.vault.Reload(ctx); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return s.ReloadAll(ctx)
}

func (s *Secrets) announce() {
	if s.changed != nil {
		s.changed(providerKeysChanged)
	}
}

// SecretsDeps are what the provider-key manager works with.
type SecretsDeps struct {
	Vault *vault.Vault
	DB    *store.DB
	Audit *auditlog.Auditor
	// Router and Build refresh the key pools (nil in the CLI: no router).
	Router *router.Router
	Build  func(config.Provider) (providers.Provider, error)
	// Redact learns every provider key loaded into a pool (nil: none).
	Redact *keys.Redactor
	// Announce makes every change (a key added, disabled, enabled,
	// deleted; the vault rotated) known to the other replicas or, from
	// the CLI, to all of them (nil: one replica).
	Announce func(msg string)
	Log      *zap.Logger
}

// NewSecrets builds the provider-key manager for cfg's providers.
func NewSecrets(cfg config.Config, d SecretsDeps) *Secrets {
	s := &Secrets{vault: d.Vault, pks: keys.NewProviderKeys(d.DB, d.Vault, time.Now), audit: d.Audit, router: d.Router,
		providers: map[string]config.Provider{}, build: d.Build, log: d.Log, changed: d.Announce, redact: d.Redact}
	for _, p := range cfg.Providers {
		s.providers[p.Name] = p
	}
	return s
}

func (s *Secrets) record(ctx context.Context, kind, actor, subject string, details map[string]any) {
	recordAudit(ctx, s.audit, s.log, kind, actor, subject, details)
}

func recordAudit(ctx context.Context, audit *auditlog.Auditor, log *zap.Logger, kind, actor, subject string, details map[string]any) {
	if err := audit.Record(ctx, auditlog.Event{Kind: kind, Actor: actor, Subject: subject, Details: details}); err != nil {
		log.Error("audit log write failed", zap.String("kind", kind), zap.Error(err))
	}
}

// ReloadAll refreshes every provider's pool from the store.
func (s *Secrets) ReloadAll(ctx context.Context) error {
	var errs []error
	for name := range s.providers {
		errs = append(errs, s.reload(ctx, name))
	}
	return errors.Join(errs...)
}

// reload rebuilds one provider's pool: an adapter per active stored key.
func (s *Secrets) reload(ctx context.Context, provider string) error {
	if s.router == nil {
		return nil
	}
	secrets, err := s.pks.Active(ctx, provider)
	if err != nil {
		return fmt.Errorf("provider %s keys: %w", provider, err)
	}
	creds := make([]router.Credential, 0, len(secrets))
	if s.redact != nil {
		values := make([]string, len(secrets))
		for i, sec := range secrets {
			values[i] = sec.Value.Reveal()
		}
		s.redact.Add("vault:"+provider, values...)
	}
	for _, sec := range secrets {
		pc := s.providers[provider]
		pc.APIKey, pc.APIKeyEnv = sec.Value.Reveal(), ""
		a, err := s.build(pc)
		if err != nil {
			return fmt.Errorf("provider %s key %s: %w", provider, sec.ID, err)
		}
		creds = append(creds, router.Credential{ID: sec.ID, Weight: sec.Weight, Adapter: a})
	}
	return s.router.SetCredentials(provider, creds)
}

// rejectedKeys disables the pool keys the router found refused upstream.
// It is built before the router (router.WithOnRejected) and needs only
// the store, the audit log and the announcement, not the router.
type rejectedKeys struct {
	pks      *keys.ProviderKeys
	audit    *auditlog.Auditor
	log      *zap.Logger
	announce func(msg string) // nil: one replica
}

func newRejectedKeys(v *vault.Vault, db *store.DB, audit *auditlog.Auditor, announce func(string), log *zap.Logger) rejectedKeys {
	return rejectedKeys{pks: keys.NewProviderKeys(db, v, time.Now), audit: audit, log: log, announce: announce}
}

// disable is the router's hook: the provider refused a pool key, in
// requests of several callers and in a probe (reason says so).
func (r rejectedKeys) disable(provider, id, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.pks.Disable(ctx, id, reason); err != nil {
		// Not announced: replicas reloading now would put the key back.
		r.log.Error("disable rejected provider key", zap.String("id", id), zap.Error(err))
		return
	}
	recordAudit(ctx, r.audit, r.log, "provider_key.disabled", "system", id, map[string]any{"provider": provider, "reason": reason})
	// This runs on a request's path: the announcement must not hold it
	// up (a publish to an unreachable Redis waits up to 2 s).
	if r.announce != nil {
		go r.announce(providerKeysChanged)
	}
}

// AddProviderKey stores a provider key sealed in the vault.
func (s *Secrets) AddProviderKey(ctx context.Context, actor, provider, name, secret string, weight int) (keys.ProviderKey, error) {
	if _, ok := s.providers[provider]; !ok {
		return keys.ProviderKey{}, &keys.ValidationError{Field: "provider", Msg: fmt.Sprintf("unknown provider %q (configure it first)", provider)}
	}
	pk, err := s.pks.Add(ctx, provider, name, secret, weight)
	if err != nil {
		return keys.ProviderKey{}, err
	}
	s.record(ctx, "provider_key.added", actor, pk.ID, map[string]any{"provider": provider, "name": name, "hint": pk.Hint, "weight": pk.Weight})
	s.announce()
	return pk, s.reload(ctx, provider)
}

// ListProviderKeys lists keys (masked), of one provider or all ("").
func (s *Secrets) ListProviderKeys(ctx context.Context, provider string) ([]keys.ProviderKey, error) {
	return s.pks.List(ctx, provider)
}

// SetProviderKeyEnabled disables or re-enables a key.
func (s *Secrets) SetProviderKeyEnabled(ctx context.Context, actor, id string, enabled bool, reason string) error {
	pk, err := s.pks.Get(ctx, id)
	if err != nil {
		return err
	}
	kind := "provider_key.enabled"
	if enabled {
		err = s.pks.Enable(ctx, id)
	} else {
		kind = "provider_key.disabled"
		err = s.pks.Disable(ctx, id, reason)
	}
	if err != nil {
		return err
	}
	s.record(ctx, kind, actor, id, map[string]any{"provider": pk.Provider, "reason": reason})
	s.announce()
	return s.reload(ctx, pk.Provider)
}

// DeleteProviderKey removes a key for good.
func (s *Secrets) DeleteProviderKey(ctx context.Context, actor, id string) error {
	pk, err := s.pks.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.pks.Delete(ctx, id); err != nil {
		return err
	}
	s.record(ctx, "provider_key.deleted", actor, id, map[string]any{"provider": pk.Provider, "name": pk.Name})
	s.announce()
	return s.reload(ctx, pk.Provider)
}

// RotateVault adds a keyring term and re-encrypts every stored key under
// it, online: old terms keep decrypting until the last row is done.
func (s *Secrets) RotateVault(ctx context.Context, actor string, progress func(done, total int)) (uint32, error) {
	term, err := s.vault.Rotate(ctx)
	if err != nil {
		return 0, err
	}
	// Others must know the new term before they read a key sealed by it.
	s.announce()
	if err := s.pks.Reencrypt(ctx, progress); err != nil {
		return term, err
	}
	s.record(ctx, "vault.rotated", actor, fmt.Sprintf("term:%d", term), map[string]any{"term": term})
	return term, nil
}

// configSecrets lists the credentials the config and the environment give
// providers, for the redactor: each provider's key, header values whose
// name says they are credentials (against the advice, people put keys
// there), and the AWS variables the Bedrock adapter reads.
func configSecrets(cfg config.Config, getenv func(string) string) []string {
	var out []string
	for _, p := range cfg.Providers {
		out = append(out, p.ProviderKey(getenv))
		for name, v := range p.Headers {
			n := strings.ToLower(name)
			if strings.Contains(n, "key") || strings.Contains(n, "auth") || strings.Contains(n, "token") || strings.Contains(n, "secret") {
				out = append(out, strings.TrimPrefix(strings.TrimPrefix(v, "Bearer "), "bearer "))
			}
		}
	}
	for _, env := range [...]string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"} {
		out = append(out, getenv(env))
	}
	out = append(out, telemetry.HeaderValues(cfg.Telemetry, getenv)...) // a collector's token
	for _, sk := range cfg.Audit.Sinks {
		out = append(out, sk.Secret) // an audit sink's signing secret
	}
	return out
}
