package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xroute/xroute/internal/dberr"
	"github.com/xroute/xroute/keys/vault"
)

// ErrInvalidProviderKey wraps every validation failure of ProviderKeys
// (httpapi answers 400 for it).
var ErrInvalidProviderKey = errors.New("invalid provider key")

const (
	maxProviderKeyName   = 64
	maxProviderKeySecret = 64 << 10 // room for a service-account JSON
	maxDisabledReason    = 256
)

// ProviderKeyStore is what ProviderKeys needs from persistence.
type ProviderKeyStore interface {
	CreateProviderKey(ctx context.Context, k ProviderKeyRecord) error
	ListProviderKeys(ctx context.Context, f ProviderKeyFilter) ([]ProviderKeyRecord, error)
	ProviderKeyByID(ctx context.Context, id string) (ProviderKeyRecord, error)
	SetProviderKeyStatus(ctx context.Context, id, status, reason string, at time.Time) error
	DeleteProviderKey(ctx context.Context, id string) error
	SwapProviderKeyCiphertext(ctx context.Context, id string, old, ct []byte, term uint32, at time.Time) error
}

// ProviderKey is an upstream key's properties: there is no secret in it,
// only a masked hint, so it is safe to log and to return from the admin API.
type ProviderKey struct {
	ID             string    `json:"id"`
	Provider       string    `json:"provider"`
	Name           string    `json:"name"`
	Hint           string    `json:"hint"`
	Term           uint32    `json:"term"`
	Weight         int       `json:"weight"`
	Status         string    `json:"status"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Secret is a decrypted, active provider key for the router's key pool.
type Secret struct {
	ID       string
	Provider string
	Name     string
	Weight   int
	Value    SecretValue
}

// SecretValue holds a provider key in plain text. Every way of printing or
// encoding it (fmt verbs, %#v, JSON, text, slog, zap.Stringer / zap.Any)
// yields the masked hint; only Reveal returns the key, for the one place
// that needs it: the upstream request's auth header.
type SecretValue struct {
	v, hint string
}

// NewSecretValue wraps a plain-text secret.
func NewSecretValue(s string) SecretValue { return SecretValue{v: s, hint: MaskSecret(s)} }

// Reveal returns the secret. Use it only to authenticate upstream.
func (s SecretValue) Reveal() string { return s.v }

// String returns the mask (fmt.Stringer; zap.Stringer and zap.Any use it).
func (s SecretValue) String() string { return s.mask() }

// GoString returns the mask (%#v).
func (s SecretValue) GoString() string { return strconv.Quote(s.mask()) }

// Format prints the mask for every verb, %x and %d included.
func (s SecretValue) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		f.Write([]byte(strconv.Quote(s.mask())))
		return
	}
	f.Write([]byte(s.mask()))
}

// MarshalJSON encodes the mask.
func (s SecretValue) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.mask())), nil }

// MarshalText encodes the mask (YAML, encoding.TextMarshaler users).
func (s SecretValue) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

// LogValue makes log/slog print the mask.
func (s SecretValue) LogValue() slog.Value { return slog.StringValue(s.mask()) }

func (s SecretValue) mask() string {
	if s.hint == "" {
		return "…"
	}
	return s.hint
}

// MaskSecret is the display form of a provider key: at most its first 3
// and last 4 characters (e.g. "sk-…abcd"), less for short secrets, never
// more.
func MaskSecret(s string) string {
	r := []rune(s)
	switch n := len(r); {
	case n >= 16:
		return string(r[:3]) + "…" + string(r[n-4:])
	case n >= 8:
		return "…" + string(r[n-2:])
	default:
		return "…"
	}
}

// ProviderKeys stores upstream provider keys sealed by the vault, each
// bound to its row id. It records no audit events itself: the caller knows
// the actor and records provider_key.* events.
type ProviderKeys struct {
	st    ProviderKeyStore
	vault *vault.Vault
	now   func() time.Time
}

// NewProviderKeys returns the provider-key service.
func NewProviderKeys(st ProviderKeyStore, v *vault.Vault, now func() time.Time) *ProviderKeys {
	return &ProviderKeys{st: st, vault: v, now: now}
}

// Add seals and stores a provider key. provider is a provider name from the
// config (the caller checks it exists); weight 0 means 1. The secret is
// trimmed of surrounding white space (a pasted newline is a common typo).
func (p *ProviderKeys) Add(ctx context.Context, provider, name, secret string, weight int) (ProviderKey, error) {
	provider, name, secret = strings.TrimSpace(provider), strings.TrimSpace(name), strings.TrimSpace(secret)
	switch {
	case provider == "":
		return ProviderKey{}, fmt.Errorf("keys: %w: a provider is required", ErrInvalidProviderKey)
	case name == "":
		return ProviderKey{}, fmt.Errorf("keys: %w: a name is required", ErrInvalidProviderKey)
	case utf8.RuneCountInString(name) > maxProviderKeyName:
		return ProviderKey{}, fmt.Errorf("keys: %w: name longer than %d characters", ErrInvalidProviderKey, maxProviderKeyName)
	case secret == "":
		return ProviderKey{}, fmt.Errorf("keys: %w: the key is empty", ErrInvalidProviderKey)
	case len(secret) > maxProviderKeySecret:
		return ProviderKey{}, fmt.Errorf("keys: %w: the key is longer than %d bytes", ErrInvalidProviderKey, maxProviderKeySecret)
	case !utf8.ValidString(secret) || strings.ContainsRune(secret, 0):
		return ProviderKey{}, fmt.Errorf("keys: %w: the key is not valid text", ErrInvalidProviderKey)
	case weight < 0:
		return ProviderKey{}, fmt.Errorf("keys: %w: weight must not be negative", ErrInvalidProviderKey)
	}
	if weight == 0 {
		weight = 1
	}
	id := NewID("pk_")
	ct, err := p.vault.Seal(id, []byte(secret))
	if err != nil {
		return ProviderKey{}, fmt.Errorf("keys: seal provider key: %w", err)
	}
	now := p.now().UTC().Truncate(time.Millisecond)
	row := ProviderKeyRecord{
		ID: id, Provider: provider, Name: name, Ciphertext: ct, Term: vault.Term(ct), Hint: MaskSecret(secret),
		Weight: weight, Status: ProviderKeyActive, CreatedAt: now, UpdatedAt: now,
	}
	if err := p.st.CreateProviderKey(ctx, row); err != nil {
		if errors.Is(err, dberr.ErrConflict) {
			return ProviderKey{}, fmt.Errorf("keys: provider %s already has a key named %q: %w", provider, name, dberr.ErrConflict)
		}
		return ProviderKey{}, fmt.Errorf("keys: add provider key: %w", err)
	}
	return providerKeyFromRow(row), nil
}

// Get returns one key's properties (masked).
func (p *ProviderKeys) Get(ctx context.Context, id string) (ProviderKey, error) {
	row, err := p.st.ProviderKeyByID(ctx, id)
	if err != nil {
		return ProviderKey{}, fmt.Errorf("keys: provider key %s: %w", id, err)
	}
	return providerKeyFromRow(row), nil
}

// List returns the keys of provider ("" for every provider), masked.
func (p *ProviderKeys) List(ctx context.Context, provider string) ([]ProviderKey, error) {
	rows, err := p.st.ListProviderKeys(ctx, ProviderKeyFilter{Provider: provider})
	if err != nil {
		return nil, fmt.Errorf("keys: list provider keys: %w", err)
	}
	out := make([]ProviderKey, len(rows))
	for i, r := range rows {
		out[i] = providerKeyFromRow(r)
	}
	return out, nil
}

// Disable takes a key out of the pool (e.g. the upstream answered 401).
// dberr.ErrNotFound (wrapped) when the id does not exist.
func (p *ProviderKeys) Disable(ctx context.Context, id, reason string) error {
	reason = strings.TrimSpace(reason)
	if r := []rune(reason); len(r) > maxDisabledReason {
		reason = string(r[:maxDisabledReason])
	}
	if err := p.st.SetProviderKeyStatus(ctx, id, ProviderKeyDisabled, reason, p.now()); err != nil {
		return fmt.Errorf("keys: disable: %w", err)
	}
	return nil
}

// Enable puts a disabled key back in the pool.
func (p *ProviderKeys) Enable(ctx context.Context, id string) error {
	if err := p.st.SetProviderKeyStatus(ctx, id, ProviderKeyActive, "", p.now()); err != nil {
		return fmt.Errorf("keys: enable: %w", err)
	}
	return nil
}

// Delete removes a key for good.
func (p *ProviderKeys) Delete(ctx context.Context, id string) error {
	if err := p.st.DeleteProviderKey(ctx, id); err != nil {
		return fmt.Errorf("keys: delete: %w", err)
	}
	return nil
}

// Active returns provider's active keys, decrypted, for the router's key
// pool. A key that fails to decrypt (tampered, or copied from another row)
// fails the call, naming the key id: that is an integrity problem to fix,
// not something to route around silently.
func (p *ProviderKeys) Active(ctx context.Context, provider string) ([]Secret, error) {
	rows, err := p.st.ListProviderKeys(ctx, ProviderKeyFilter{Provider: provider, Status: ProviderKeyActive})
	if err != nil {
		return nil, fmt.Errorf("keys: active provider keys: %w", err)
	}
	out := make([]Secret, 0, len(rows))
	for _, r := range rows {
		pt, err := p.open(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("keys: provider key %s: %w", r.ID, err)
		}
		out = append(out, Secret{ID: r.ID, Provider: r.Provider, Name: r.Name, Weight: r.Weight, Value: NewSecretValue(string(pt))})
		clear(pt)
	}
	return out, nil
}

// open decrypts a row; on an unknown term (another replica rotated the
// vault) it reloads the keyring once and retries.
func (p *ProviderKeys) open(ctx context.Context, r ProviderKeyRecord) ([]byte, error) {
	pt, err := p.vault.Open(r.ID, r.Ciphertext)
	if errors.Is(err, vault.ErrUnknownTerm) {
		if rerr := p.vault.Reload(ctx); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		pt, err = p.vault.Open(r.ID, r.Ciphertext)
	}
	return pt, err
}

// Reencrypt re-seals, under the vault's active term, every key sealed
// under an older one: online, one row at a time, each in its own short
// transaction (a compare-and-swap on the old ciphertext), so the router
// keeps reading keys throughout and old terms keep decrypting until the
// last row is done. progress (may be nil) is called after each row. A row
// that fails does not stop the others; the failures are returned joined.
// Vault rotation is Vault.Rotate, then Reencrypt.
func (p *ProviderKeys) Reencrypt(ctx context.Context, progress func(done, total int)) error {
	rows, err := p.st.ListProviderKeys(ctx, ProviderKeyFilter{NotTerm: p.vault.ActiveTerm()})
	if err != nil {
		return fmt.Errorf("keys: re-encrypt: %w", err)
	}
	var errs []error
	for i, r := range rows {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("keys: re-encrypt stopped after %d of %d keys: %w", i, len(rows), err))...)
		}
		if err := p.reseal(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("keys: re-encrypt provider key %s: %w", r.ID, err))
		}
		if progress != nil {
			progress(i+1, len(rows))
		}
	}
	return errors.Join(errs...)
}

func (p *ProviderKeys) reseal(ctx context.Context, r ProviderKeyRecord) error {
	for attempt := 0; attempt < 3; attempt++ {
		if r.Term == p.vault.ActiveTerm() {
			return nil
		}
		pt, err := p.open(ctx, r)
		if err != nil {
			return err
		}
		ct, err := p.vault.Seal(r.ID, pt)
		clear(pt)
		if err != nil {
			return err
		}
		err = p.st.SwapProviderKeyCiphertext(ctx, r.ID, r.Ciphertext, ct, vault.Term(ct), p.now())
		switch {
		case err == nil, errors.Is(err, dberr.ErrNotFound): // deleted meanwhile: nothing to do
			return nil
		case !errors.Is(err, dberr.ErrConflict):
			return err
		}
		// The row changed under us (another re-encrypt): look again.
		if r, err = p.st.ProviderKeyByID(ctx, r.ID); errors.Is(err, dberr.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return errors.New("the row kept changing")
}

func providerKeyFromRow(r ProviderKeyRecord) ProviderKey {
	return ProviderKey{
		ID: r.ID, Provider: r.Provider, Name: r.Name, Hint: r.Hint, Term: r.Term, Weight: r.Weight,
		Status: r.Status, DisabledReason: r.DisabledReason, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}
