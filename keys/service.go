package keys

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/xroute/xroute/internal/dberr"
)

// Key kinds.
const (
	KindCaller = "caller"
	KindAdmin  = "admin"
)

// Errors Verify returns; httpapi maps each to its answer. Every unknown-key
// variant (malformed, bad checksum, not found) is ErrUnknown or
// ErrMalformed and gets the same 401 body.
var (
	ErrMalformed = errors.New("malformed API key")
	ErrUnknown   = errors.New("unknown API key")
	ErrRevoked   = errors.New("API key revoked")
	ErrExpired   = errors.New("API key expired")
	ErrSuspended = errors.New("API key suspended")
)

// Store is what the key service needs from persistence.
type Store interface {
	CreateKey(ctx context.Context, k Record) error
	KeyByHash(ctx context.Context, hash string) (Record, error)
	KeyByID(ctx context.Context, id string) (Record, error)
	ListKeys(ctx context.Context, f KeyFilter) ([]Record, error)
	RevokeKey(ctx context.Context, id string, t time.Time) (changed bool, err error)
	SuspendKey(ctx context.Context, id string, t time.Time, reason string) (changed bool, err error)
	ResumeKey(ctx context.Context, id string) (changed bool, err error)
	RotateKey(ctx context.Context, id string, next func(old Record, successor string) (Record, time.Time, error)) (Record, error)
	SetKeyRole(ctx context.Context, id, role string) (changed bool, err error)
	SetKeyMetadata(ctx context.Context, id string, meta map[string]string) error
	RehashKey(ctx context.Context, id, hash string, pepperVersion int) error
	CreateAccount(ctx context.Context, a Account) error
	AccountByID(ctx context.Context, id string) (Account, error)
	ListAccounts(ctx context.Context, after string, limit int) ([]Account, error)
}

// LifecycleEvent is a lifecycle event the service reports to its hook (the audit
// log). Details never hold key material.
type LifecycleEvent struct {
	Kind      string // key.created, key.rotated, key.revoked, key.suspended, key.resumed, account.created
	Actor     string
	AccountID string
	Subject   string
	Details   map[string]any
}

// Service creates and verifies keys.
type Service struct {
	store    Store
	peppers  []*pepper // current first
	now      func() time.Time
	cacheTTL time.Duration
	onEvent  func(ctx context.Context, ev LifecycleEvent)
	onInval  func(hexHash string)
	// found caches verified keys by the first 8 bytes of their hash (the
	// full hash is compared in constant time on a hit); missing caches
	// unknown hashes so a flood of well-formed random keys does not reach
	// the database. Both are bounded by cost, so neither can exhaust memory.
	found   *ristretto.Cache[uint64, *Key]
	missing *ristretto.Cache[uint64, struct{}]
	// children stores ephemeral child keys (nil: none can be minted);
	// maxTTL is the longest life a child may ask for.
	children ChildStore
	maxTTL   time.Duration
}

// Options configure a Service.
type Options struct {
	// Peppers are HMAC secrets, current first, then older ones still
	// accepted (keys hashed with them are re-hashed on first use).
	Peppers  [][]byte
	CacheTTL time.Duration
	Now      func() time.Time
	// OnEvent receives lifecycle events (wire it to the audit log).
	OnEvent func(ctx context.Context, ev LifecycleEvent)
	// OnInvalidate is told the hash of every key this replica invalidated
	// (revoke, suspend, resume, rotate), so other replicas can drop it too.
	OnInvalidate func(hexHash string)
	// Children stores ephemeral child keys (nil: minting is off);
	// EphemeralMaxTTL caps their life (0: DefaultMaxTTL).
	Children        ChildStore
	EphemeralMaxTTL time.Duration
}

// NewService builds a key service.
func NewService(st Store, o Options) (*Service, error) {
	if len(o.Peppers) == 0 {
		return nil, errors.New("keys: no pepper")
	}
	s := &Service{store: st, now: o.Now, cacheTTL: o.CacheTTL, onEvent: o.OnEvent, onInval: o.OnInvalidate,
		children: o.Children, maxTTL: o.EphemeralMaxTTL}
	if s.maxTTL <= 0 {
		s.maxTTL = DefaultMaxTTL
	}
	for i, p := range o.Peppers {
		if len(p) < 32 {
			return nil, fmt.Errorf("keys: pepper %d must be at least 32 bytes", i)
		}
		s.peppers = append(s.peppers, newPepper(p))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onEvent == nil {
		s.onEvent = func(context.Context, LifecycleEvent) {}
	}
	var err error
	s.found, err = ristretto.NewCache(&ristretto.Config[uint64, *Key]{NumCounters: 1e5, MaxCost: 1e4, BufferItems: 64})
	if err != nil {
		return nil, fmt.Errorf("keys: cache: %w", err)
	}
	s.missing, err = ristretto.NewCache(&ristretto.Config[uint64, struct{}]{NumCounters: 1e5, MaxCost: 1e4, BufferItems: 64})
	if err != nil {
		s.found.Close()
		return nil, fmt.Errorf("keys: negative cache: %w", err)
	}
	return s, nil
}

// Close stops the caches' goroutines.
func (s *Service) Close() {
	s.found.Close()
	s.missing.Close()
}

func cacheKey(h [sha256.Size]byte) uint64 { return binary.LittleEndian.Uint64(h[:8]) }

// Hash is the stored form of a key under the current pepper.
func (s *Service) Hash(key string) string {
	h := s.peppers[0].sum(key)
	return hex.EncodeToString(h[:])
}

// CreateParams are the properties of a new key.
type CreateParams struct {
	AccountID        string
	Kind             string // KindCaller (default) or KindAdmin
	Role             string // an admin key's role (default RoleOwner); must be empty for a caller key
	Name             string
	AllowedModels    []string
	AllowedEndpoints []string
	AllowedCIDRs     []string
	RPM              int
	TPM              int
	MaxConcurrent    int
	Metadata         map[string]string
	ExpiresAt        *time.Time
	Actor            string // who asked, for the audit log
}

// ValidationError is a bad key property (a 400 for the admin API).
type ValidationError struct{ Field, Msg string }

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

func (p *CreateParams) validate() error {
	if strings.TrimSpace(p.Name) == "" {
		return &ValidationError{"name", "a key needs a name"}
	}
	switch p.Kind {
	case "":
		p.Kind = KindCaller
	case KindCaller, KindAdmin:
	default:
		return &ValidationError{"kind", fmt.Sprintf("must be %q or %q", KindCaller, KindAdmin)}
	}
	switch {
	case p.Kind == KindCaller && p.Role != "":
		return &ValidationError{"role", "only an admin key has a role"}
	case p.Kind == KindAdmin && p.Role == "":
		p.Role = RoleOwner
	case p.Kind == KindAdmin && !ValidRole(p.Role):
		return &ValidationError{"role", fmt.Sprintf("unknown role %q (known: %s)", p.Role, strings.Join(Roles, ", "))}
	}
	for _, pat := range p.AllowedModels {
		if _, err := path.Match(pat, ""); err != nil {
			return &ValidationError{"allowed_models", fmt.Sprintf("bad pattern %q", pat)}
		}
	}
	for _, e := range p.AllowedEndpoints {
		if e != "*" && !slices.Contains(Endpoints, e) {
			return &ValidationError{"allowed_endpoints", fmt.Sprintf("unknown endpoint %q (known: %s)", e, strings.Join(Endpoints, ", "))}
		}
	}
	for _, c := range p.AllowedCIDRs {
		if _, err := parseCIDR(c); err != nil {
			return &ValidationError{"allowed_cidrs", err.Error()}
		}
	}
	if _, err := cachePolicyOf(p.Metadata); err != nil {
		return err
	}
	if p.RPM < 0 || p.TPM < 0 || p.MaxConcurrent < 0 {
		return &ValidationError{"limits", "rpm, tpm and max_concurrent must not be negative"}
	}
	if p.AccountID == "" {
		p.AccountID = DefaultAccountID
	}
	return nil
}

// parseCIDR accepts a prefix ("10.0.0.0/8") or a single address.
func parseCIDR(c string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(c); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(c)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", c)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Create makes a key and returns it in plain text (the only time it is
// ever visible) with its stored properties.
func (s *Service) Create(ctx context.Context, p CreateParams) (string, Key, error) {
	if err := p.validate(); err != nil {
		return "", Key{}, err
	}
	if _, err := s.store.AccountByID(ctx, p.AccountID); err != nil {
		if errors.Is(err, dberr.ErrNotFound) {
			return "", Key{}, &ValidationError{"account_id", fmt.Sprintf("no account %q", p.AccountID)}
		}
		return "", Key{}, err
	}
	plain := Generate()
	if p.Kind == KindAdmin {
		plain = GenerateAdmin()
	}
	row := Record{
		ID:               NewID("key_"),
		AccountID:        p.AccountID,
		Kind:             p.Kind,
		Role:             p.Role,
		Name:             p.Name,
		Hash:             s.Hash(plain),
		PepperVersion:    s.peppers[0].version,
		Hint:             Hint(plain),
		AllowedModels:    p.AllowedModels,
		AllowedEndpoints: p.AllowedEndpoints,
		AllowedCIDRs:     p.AllowedCIDRs,
		RPM:              p.RPM,
		TPM:              p.TPM,
		MaxConcurrent:    p.MaxConcurrent,
		Metadata:         p.Metadata,
		CreatedAt:        s.now().UTC().Truncate(time.Millisecond),
		ExpiresAt:        p.ExpiresAt,
	}
	if err := s.store.CreateKey(ctx, row); err != nil {
		return "", Key{}, err
	}
	h := s.peppers[0].sum(plain)
	s.missing.Del(cacheKey(h))
	k, err := fromRow(row)
	if err != nil {
		return "", Key{}, err
	}
	s.onEvent(ctx, LifecycleEvent{Kind: "key.created", Actor: p.Actor, AccountID: k.AccountID, Subject: k.ID,
		Details: createdDetails(k)})
	return plain, k, nil
}

// Verify authenticates a presented key. On a cache hit it does no I/O and
// no allocation: checksum, one HMAC, one cache lookup, one constant-time
// comparison.
func (s *Service) Verify(ctx context.Context, presented string) (*Key, error) {
	if !WellFormed(presented) {
		return nil, ErrMalformed
	}
	h := s.peppers[0].sum(presented)
	ck := cacheKey(h)
	now := s.now()
	if k, ok := s.found.Get(ck); ok && subtle.ConstantTimeCompare(k.hash[:], h[:]) == 1 {
		return k, s.checkChild(ctx, k, now)
	}
	if _, ok := s.missing.Get(ck); ok {
		return nil, ErrUnknown
	}
	k, err := s.lookup(ctx, presented, h)
	if errors.Is(err, ErrUnknown) {
		s.missing.SetWithTTL(ck, struct{}{}, 1, s.cacheTTL)
		return nil, ErrUnknown
	}
	if err != nil {
		return nil, err
	}
	if kindOf(presented) != k.Kind {
		return nil, ErrUnknown // an admin row presented with a caller prefix, or the reverse
	}
	if err := s.loadChild(ctx, k); err != nil {
		return nil, err
	}
	s.found.SetWithTTL(ck, k, 1, s.cacheTTL)
	return k, s.checkChild(ctx, k, now)
}

// lookup finds a key in the store under the current pepper, then under
// older ones (re-hashing a key found with an old pepper).
func (s *Service) lookup(ctx context.Context, presented string, current [sha256.Size]byte) (*Key, error) {
	row, err := s.store.KeyByHash(ctx, hex.EncodeToString(current[:]))
	if err == nil {
		return fromRowPtr(row)
	}
	if !errors.Is(err, dberr.ErrNotFound) {
		return nil, fmt.Errorf("keys: verify: %w", err)
	}
	for _, old := range s.peppers[1:] {
		h := old.sum(presented)
		row, err := s.store.KeyByHash(ctx, hex.EncodeToString(h[:]))
		if errors.Is(err, dberr.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keys: verify: %w", err)
		}
		newHash := hex.EncodeToString(current[:])
		if err := s.store.RehashKey(ctx, row.ID, newHash, s.peppers[0].version); err != nil {
			return nil, fmt.Errorf("keys: rehash %s: %w", row.ID, err)
		}
		row.Hash, row.PepperVersion = newHash, s.peppers[0].version
		return fromRowPtr(row)
	}
	return nil, ErrUnknown
}

// Get returns a key's properties by id.
func (s *Service) Get(ctx context.Context, id string) (Key, error) {
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return Key{}, fmt.Errorf("keys: %s: %w", id, err)
	}
	return fromRow(row)
}

// List returns keys' properties (never the keys).
func (s *Service) List(ctx context.Context, f KeyFilter) ([]Key, error) {
	rows, err := s.store.ListKeys(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(rows))
	for _, r := range rows {
		k, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// invalidate drops a key from this replica's cache, so the very next
// request with it reads the store again, and tells the other replicas.
func (s *Service) invalidate(hexHash string) {
	s.InvalidateHash(hexHash)
	if s.onInval != nil {
		s.onInval(hexHash)
	}
}

// InvalidateHash drops a key, named by its stored hash, from this
// replica's cache only (an invalidation another replica announced).
func (s *Service) InvalidateHash(hexHash string) {
	raw, err := hex.DecodeString(hexHash)
	if err != nil || len(raw) != sha256.Size {
		return
	}
	s.found.Del(cacheKey([sha256.Size]byte(raw)))
}

// Revoke revokes a key now; the next request with it is refused.
// Revoking a revoked key changes nothing and writes no second audit row.
func (s *Service) Revoke(ctx context.Context, id, actor string) error {
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return fmt.Errorf("keys: revoke %s: %w", id, err)
	}
	changed, err := s.store.RevokeKey(ctx, id, s.now())
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	s.transitioned(ctx, changed, row, LifecycleEvent{Kind: "key.revoked", Actor: actor, AccountID: row.AccountID, Subject: id})
	return s.endChildren(ctx, id)
}

// Suspend blocks a key until Resume (an operator's or the anomaly
// detector's decision, reversible unlike Revoke). Suspending a suspended
// key changes nothing: the first suspension's time and reason stay.
func (s *Service) Suspend(ctx context.Context, id, actor, reason string) error {
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return fmt.Errorf("keys: suspend %s: %w", id, err)
	}
	changed, err := s.store.SuspendKey(ctx, id, s.now(), reason)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	s.transitioned(ctx, changed, row, LifecycleEvent{Kind: "key.suspended", Actor: actor, AccountID: row.AccountID, Subject: id, Details: map[string]any{"reason": reason}})
	return s.endChildren(ctx, id)
}

// Resume lifts a suspension; resuming a key that is not suspended changes
// nothing.
func (s *Service) Resume(ctx context.Context, id, actor string) error {
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return fmt.Errorf("keys: resume %s: %w", id, err)
	}
	changed, err := s.store.ResumeKey(ctx, id)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	s.transitioned(ctx, changed, row, LifecycleEvent{Kind: "key.resumed", Actor: actor, AccountID: row.AccountID, Subject: id})
	return nil
}

// transitioned finishes a revoke, suspend or resume. Only a change is an
// event: repeating one (a retried CLI call, two operators, the anomaly
// detector suspending a key again) answers the same and writes no second
// audit row. The cache is dropped either way, so that this replica reads
// the stored state even when another one made the change.
func (s *Service) transitioned(ctx context.Context, changed bool, row Record, ev LifecycleEvent) {
	s.invalidate(row.Hash)
	if changed {
		s.onEvent(ctx, ev)
	}
}

// ErrNotRotatable is matched by a rotation the key's state does not
// allow (httpapi answers 409 with the reason).
var ErrNotRotatable = errors.New("key cannot be rotated")

// notRotatable is a refused rotation; its text is the reason, for the
// operator.
type notRotatable struct{ reason string }

func (e *notRotatable) Error() string        { return e.reason }
func (e *notRotatable) Is(target error) bool { return target == ErrNotRotatable }

// Rotate issues a new key with the old one's properties and lets the old
// key live for overlap (0: it stops at once), then it expires by itself.
// The new key's state is the truth about it:
//
//   - an active key's successor is active;
//   - a suspended key's successor is suspended too, with the same reason:
//     rotating never lifts a suspension (resume the new key to use it), so
//     rotating a key suspended as compromised issues its replacement
//     without letting the old one back in;
//   - a revoked or expired key cannot be rotated (ErrNotRotatable);
//   - a key already rotated (its successor exists, it lives out its
//     overlap) cannot be rotated again (ErrNotRotatable): a second
//     successor would inherit the overlap's expiry while looking active;
//     rotate the successor instead.
//
// The check and the writes are one transaction on the old row, so two
// concurrent rotations of a key cannot both succeed.
func (s *Service) Rotate(ctx context.Context, id, actor string, overlap time.Duration) (string, Key, error) {
	if overlap < 0 {
		return "", Key{}, &ValidationError{"overlap", "must not be negative"}
	}
	if child, err := s.isChild(ctx, id); err != nil {
		return "", Key{}, err
	} else if child {
		return "", Key{}, &notRotatable{"This is an ephemeral key: it cannot be rotated. Mint a new one instead."}
	}
	now := s.now()
	var plain, oldHash string
	row, err := s.store.RotateKey(ctx, id, func(old Record, successor string) (Record, time.Time, error) {
		switch {
		case old.RevokedAt != nil:
			return Record{}, time.Time{}, &notRotatable{"This key is revoked: a revoked key cannot be rotated. Create a new key instead."}
		case successor != "":
			return Record{}, time.Time{}, &notRotatable{"This key was already rotated (its successor is " + successor + "): rotate that key instead."}
		case old.ExpiresAt != nil && !now.Before(*old.ExpiresAt):
			return Record{}, time.Time{}, &notRotatable{"This key has expired: an expired key cannot be rotated. Create a new key instead."}
		}
		plain = Generate()
		if old.Kind == KindAdmin {
			plain = GenerateAdmin()
		}
		oldHash = old.Hash
		row := old
		row.ID = NewID("key_")
		row.Hash = s.Hash(plain)
		row.PepperVersion = s.peppers[0].version
		row.Hint = Hint(plain)
		row.CreatedAt = now.UTC().Truncate(time.Millisecond)
		row.RevokedAt, row.SuspendedAt, row.SuspendReason = nil, nil, ""
		if old.SuspendedAt != nil {
			at := row.CreatedAt
			row.SuspendedAt, row.SuspendReason = &at, old.SuspendReason
		}
		row.RotatedFrom = old.ID
		return row, now.Add(overlap), nil
	})
	if err != nil {
		if errors.Is(err, ErrNotRotatable) {
			return "", Key{}, err
		}
		return "", Key{}, fmt.Errorf("keys: rotate %s: %w", id, err)
	}
	s.invalidate(oldHash)
	// The rotated-out key's children end now, not when its overlap does.
	// Should this fail, they still end with their TTL (at most
	// auth.ephemeral_max_ttl) or the old key's expiry, whichever is first.
	childErr := s.endChildren(ctx, id)
	k, err := fromRow(row)
	if err != nil {
		return "", Key{}, err
	}
	s.onEvent(ctx, LifecycleEvent{Kind: "key.rotated", Actor: actor, AccountID: k.AccountID, Subject: id,
		Details: map[string]any{"new_key_id": k.ID, "overlap": overlap.String(), "status": k.Status(now), "children_ended": childErr == nil}})
	return plain, k, nil
}

// CreateAccount adds an account.
func (s *Service) CreateAccount(ctx context.Context, name, actor string, meta map[string]string) (Account, error) {
	if strings.TrimSpace(name) == "" {
		return Account{}, &ValidationError{"name", "an account needs a name"}
	}
	a := Account{ID: NewID("acct_"), Name: name, Status: AccountActive, Metadata: meta, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := s.store.CreateAccount(ctx, a); err != nil {
		return Account{}, err
	}
	s.onEvent(ctx, LifecycleEvent{Kind: "account.created", Actor: actor, AccountID: a.ID, Subject: a.ID, Details: map[string]any{"name": name}})
	return a, nil
}

// Account returns one account.
func (s *Service) Account(ctx context.Context, id string) (Account, error) {
	return s.store.AccountByID(ctx, id)
}

// Accounts pages through accounts.
func (s *Service) Accounts(ctx context.Context, after string, limit int) ([]Account, error) {
	return s.store.ListAccounts(ctx, after, limit)
}
