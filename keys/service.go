package keys

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
)

// Errors Verify returns; httpapi maps each to a 401 with its own message.
var (
	ErrMalformed = errors.New("malformed API key")
	ErrUnknown   = errors.New("unknown API key")
	ErrRevoked   = errors.New("API key revoked")
	ErrExpired   = errors.New("API key expired")
)

// Store is what the key service needs from persistence.
type Store interface {
	CreateKey(ctx context.Context, k store.APIKey) error
	KeyByHash(ctx context.Context, hash string) (store.APIKey, error)
	KeyByID(ctx context.Context, id string) (store.APIKey, error)
	ListKeys(ctx context.Context) ([]store.APIKey, error)
	RevokeKey(ctx context.Context, id string, t time.Time) error
}

// Key is a verified caller key's properties, as the request path sees them.
type Key struct {
	ID            string
	Name          string
	Hint          string
	AllowedModels []string
	CreatedAt     time.Time
	ExpiresAt     *time.Time
	RevokedAt     *time.Time
}

// AllowsModel reports whether the key may use model. An empty list allows
// every model; entries are globs ("gpt-4o*", "claude-*").
func (k *Key) AllowsModel(model string) bool {
	if len(k.AllowedModels) == 0 {
		return true
	}
	for _, pat := range k.AllowedModels {
		if ok, _ := path.Match(pat, model); ok {
			return true
		}
	}
	return false
}

func (k *Key) check(now time.Time) error {
	if k.RevokedAt != nil && !now.Before(*k.RevokedAt) {
		return ErrRevoked
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return ErrExpired
	}
	return nil
}

// Service creates and verifies caller keys.
type Service struct {
	store    Store
	pepper   []byte
	version  int
	now      func() time.Time
	cacheTTL time.Duration
	// found caches verified keys by hash; missing caches unknown hashes
	// so a flood of well-formed random keys does not reach the database.
	// Both are bounded by cost, so neither can exhaust memory.
	found   *ristretto.Cache[string, *Key]
	missing *ristretto.Cache[string, struct{}]
}

// NewService builds a key service. pepper is the HMAC secret (never stored
// in the database); cacheTTL bounds how long a cached key is trusted.
func NewService(st Store, pepper []byte, cacheTTL time.Duration, now func() time.Time) (*Service, error) {
	if len(pepper) < 32 {
		return nil, errors.New("keys: pepper must be at least 32 bytes")
	}
	found, err := ristretto.NewCache(&ristretto.Config[string, *Key]{NumCounters: 1e5, MaxCost: 1e4, BufferItems: 64})
	if err != nil {
		return nil, fmt.Errorf("keys: cache: %w", err)
	}
	missing, err := ristretto.NewCache(&ristretto.Config[string, struct{}]{NumCounters: 1e5, MaxCost: 1e4, BufferItems: 64})
	if err != nil {
		found.Close()
		return nil, fmt.Errorf("keys: negative cache: %w", err)
	}
	return &Service{store: st, pepper: pepper, version: 1, now: now, cacheTTL: cacheTTL, found: found, missing: missing}, nil
}

// Close stops the caches' goroutines.
func (s *Service) Close() {
	s.found.Close()
	s.missing.Close()
}

// Hash is the stored form of a key: hex HMAC-SHA256(pepper, key).
func (s *Service) Hash(key string) string {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// CreateParams are the properties of a new key.
type CreateParams struct {
	Name          string
	AllowedModels []string
	ExpiresAt     *time.Time
}

// Create makes a key and returns it in plain text (the only time it is
// ever visible) with its stored properties.
func (s *Service) Create(ctx context.Context, p CreateParams) (string, Key, error) {
	if strings.TrimSpace(p.Name) == "" {
		return "", Key{}, errors.New("keys: a key needs a name")
	}
	for _, pat := range p.AllowedModels {
		if _, err := path.Match(pat, ""); err != nil {
			return "", Key{}, fmt.Errorf("keys: bad model pattern %q: %w", pat, err)
		}
	}
	plain := Generate()
	row := store.APIKey{
		ID:            NewID("key_"),
		Name:          p.Name,
		Hash:          s.Hash(plain),
		PepperVersion: s.version,
		Hint:          Hint(plain),
		AllowedModels: p.AllowedModels,
		CreatedAt:     s.now().UTC().Truncate(time.Millisecond),
		ExpiresAt:     p.ExpiresAt,
	}
	if err := s.store.CreateKey(ctx, row); err != nil {
		return "", Key{}, err
	}
	s.missing.Del(row.Hash)
	return plain, fromRow(row), nil
}

// Verify authenticates a presented key.
func (s *Service) Verify(ctx context.Context, presented string) (*Key, error) {
	if !WellFormed(presented) {
		return nil, ErrMalformed
	}
	h := s.Hash(presented)
	now := s.now()
	if k, ok := s.found.Get(h); ok {
		return k, k.check(now)
	}
	if _, ok := s.missing.Get(h); ok {
		return nil, ErrUnknown
	}
	row, err := s.store.KeyByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		s.missing.SetWithTTL(h, struct{}{}, 1, s.cacheTTL)
		return nil, ErrUnknown
	}
	if err != nil {
		return nil, fmt.Errorf("keys: verify: %w", err)
	}
	k := fromRow(row)
	kp := &k
	s.found.SetWithTTL(h, kp, 1, s.cacheTTL)
	return kp, kp.check(now)
}

// Revoke revokes a key now and drops it from this replica's cache, so the
// very next request with it is refused.
func (s *Service) Revoke(ctx context.Context, id string) error {
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return fmt.Errorf("keys: revoke %s: %w", id, err)
	}
	if err := s.store.RevokeKey(ctx, id, s.now()); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	s.found.Del(row.Hash)
	return nil
}

// List returns every key's properties (never the key).
func (s *Service) List(ctx context.Context) ([]Key, error) {
	rows, err := s.store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

func fromRow(r store.APIKey) Key {
	return Key{ID: r.ID, Name: r.Name, Hint: r.Hint, AllowedModels: r.AllowedModels, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}
}

// LoadPepper returns the HMAC pepper: XROUTE_AUTH_PEPPER (via config) wins;
// otherwise the pepper file, created with a fresh random secret (mode 0600)
// when it does not exist yet.
func LoadPepper(a config.Auth) ([]byte, error) {
	if a.Pepper != "" {
		return []byte(a.Pepper), nil
	}
	data, err := os.ReadFile(a.PepperFile)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		rand.Read(raw)
		secret := base64.RawURLEncoding.EncodeToString(raw)
		f, err := os.OpenFile(a.PepperFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadPepper(a) // another process created it first
		}
		if err != nil {
			return nil, fmt.Errorf("keys: create pepper file %s: %w", a.PepperFile, err)
		}
		if _, err := f.WriteString(secret + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("keys: write pepper file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("keys: write pepper file: %w", err)
		}
		return []byte(secret), nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: read pepper file %s: %w", a.PepperFile, err)
	}
	p := strings.TrimSpace(string(data))
	if len(p) < 32 {
		return nil, fmt.Errorf("keys: pepper file %s holds fewer than 32 characters", a.PepperFile)
	}
	return []byte(p), nil
}
