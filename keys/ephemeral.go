package keys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/xroute/xroute/internal/dberr"
)

// EndpointMint is the scope a key must list, by name, to mint child keys
// (POST /v1/keys/ephemeral). Neither an empty endpoint list nor "*"
// grants it: minting is never a side effect of "every endpoint".
const EndpointMint = "keys.mint"

// Child lifetimes.
const (
	DefaultChildTTL = 10 * time.Minute
	DefaultMaxTTL   = time.Hour
)

// ErrChildCap is the refusal of a child key's request that its own spend
// cap or request cap cannot cover.
var ErrChildCap = errors.New("ephemeral key cap reached")

// ChildStore is what ephemeral child keys need from persistence.
type ChildStore interface {
	CreateEphemeralKey(ctx context.Context, k Record, e ChildRecord) error
	EphemeralByKey(ctx context.Context, keyID string) (ChildRecord, error)
	RevokeChildren(ctx context.Context, parentID string, t time.Time) (hashes []string, err error)
	CountEphemeralRequest(ctx context.Context, keyID string) (bool, error)
	HoldEphemeralSpend(ctx context.Context, keyID string, amount int64) (bool, error)
	SettleEphemeralSpend(ctx context.Context, keyID string, held, cost int64) error
}

// Child is what makes a key an ephemeral child: its parent and its caps.
type Child struct {
	ParentID    string
	SpendCap    int64 // nano-USD; 0: only the parent's account limits it
	MaxRequests int64 // 0: none

	parentHash [sha256.Size]byte // the parent's cache entry
}

// CanMint reports whether the key may mint child keys: its endpoint list
// names keys.mint, and it is no child itself.
func (k *Key) CanMint() bool {
	return k.Child == nil && slices.Contains(k.AllowedEndpoints, EndpointMint)
}

// MintParams are what a caller asks of a child key; every zero value
// inherits the parent's.
type MintParams struct {
	Name          string
	Models        []string
	Endpoints     []string
	CIDRs         []string
	RPM           int
	TPM           int
	MaxConcurrent int
	TTL           time.Duration // 0: DefaultChildTTL
	SpendCap      int64         // nano-USD; 0: none of its own
	MaxRequests   int64         // 0: none
}

// Mint issues a child key of parent, narrowed to p: never wider than the
// parent (a wider ask is a *ValidationError naming the field), living at
// most the operator's cap and never past its parent.
func (s *Service) Mint(ctx context.Context, parent *Key, p MintParams) (string, Key, error) {
	if s.children == nil {
		return "", Key{}, errors.New("keys: ephemeral keys are not configured")
	}
	if !parent.CanMint() {
		return "", Key{}, &ValidationError{"endpoints", "this key may not mint keys (it needs the keys.mint scope, and a child key never has it)"}
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	row, child, err := s.narrow(parent, p, now)
	if err != nil {
		return "", Key{}, err
	}
	plain := Generate()
	row.ID = NewID("key_")
	row.Hash = s.Hash(plain)
	row.PepperVersion = s.peppers[0].version
	row.Hint = Hint(plain)
	if err := s.children.CreateEphemeralKey(ctx, row, ChildRecord{ParentID: parent.ID, SpendCap: child.SpendCap, MaxRequests: child.MaxRequests}); err != nil {
		return "", Key{}, fmt.Errorf("keys: mint: %w", err)
	}
	s.missing.Del(cacheKey(s.peppers[0].sum(plain)))
	k, err := fromRow(row)
	if err != nil {
		return "", Key{}, err
	}
	child.parentHash = parent.hash
	k.Child = &child
	s.onEvent(ctx, LifecycleEvent{Kind: "key.minted", Actor: parent.ID, AccountID: k.AccountID, Subject: k.ID,
		Details: map[string]any{"parent_id": parent.ID, "hint": k.Hint, "expires_at": k.ExpiresAt.Format(time.RFC3339)}})
	return plain, k, nil
}

// narrow builds the child's row from its parent and the request,
// refusing anything wider than the parent.
func (s *Service) narrow(parent *Key, p MintParams, now time.Time) (Record, Child, error) {
	bad := func(field, msg string) (Record, Child, error) {
		return Record{}, Child{}, &ValidationError{field, msg}
	}
	// Models: each pattern must be one the parent's patterns already match.
	models := p.Models
	for _, m := range models {
		if _, err := path.Match(m, ""); err != nil {
			return bad("models", fmt.Sprintf("bad pattern %q", m))
		}
		if len(parent.AllowedModels) > 0 && !parent.AllowsModel(m) {
			return bad("models", fmt.Sprintf("%q is wider than the parent key's models (%s)", m, strings.Join(parent.AllowedModels, ", ")))
		}
	}
	if len(models) == 0 {
		models = parent.AllowedModels
	}
	// Endpoints: the parent's, never keys.mint, and always an explicit
	// list (an empty one would mean "every endpoint").
	var endpoints []string
	for _, e := range p.Endpoints {
		switch {
		case e == EndpointMint:
			return bad("endpoints", "a child key cannot mint keys")
		case e == "*" || !slices.Contains(Endpoints, e):
			return bad("endpoints", fmt.Sprintf("unknown endpoint %q (known: %s)", e, strings.Join(modelEndpoints(), ", ")))
		case !parent.AllowsEndpoint(e):
			return bad("endpoints", fmt.Sprintf("%q is wider than the parent key's endpoints", e))
		}
		endpoints = append(endpoints, e)
	}
	if len(p.Endpoints) == 0 {
		for _, e := range modelEndpoints() {
			if parent.AllowsEndpoint(e) {
				endpoints = append(endpoints, e)
			}
		}
		if len(endpoints) == 0 {
			return bad("endpoints", "the parent key may call no endpoint a child could be given")
		}
	}
	// Client addresses: each inside one of the parent's prefixes.
	cidrs := p.CIDRs
	for _, c := range cidrs {
		pf, err := parseCIDR(c)
		if err != nil {
			return bad("allowed_cidrs", err.Error())
		}
		if len(parent.Networks) > 0 && !slices.ContainsFunc(parent.Networks, func(pp netip.Prefix) bool {
			return pp.Bits() <= pf.Bits() && pp.Contains(pf.Addr())
		}) {
			return bad("allowed_cidrs", fmt.Sprintf("%q is wider than the parent key's addresses", c))
		}
	}
	if len(cidrs) == 0 {
		cidrs = parent.CIDRStrings()
	}
	// Limits: 0 inherits; more than a limited parent is wider.
	rpm, err := narrowLimit("rpm", p.RPM, parent.RPM)
	if err != nil {
		return Record{}, Child{}, err
	}
	tpm, err := narrowLimit("tpm", p.TPM, parent.TPM)
	if err != nil {
		return Record{}, Child{}, err
	}
	conc, err := narrowLimit("max_concurrent", p.MaxConcurrent, parent.MaxConcurrent)
	if err != nil {
		return Record{}, Child{}, err
	}
	// Life: the default, at most the operator's cap, never past the parent.
	ttl := p.TTL
	switch {
	case ttl < 0:
		return bad("ttl_seconds", "must be positive")
	case ttl == 0:
		ttl = min(DefaultChildTTL, s.maxTTL)
	case ttl > s.maxTTL:
		return bad("ttl_seconds", fmt.Sprintf("at most %s (auth.ephemeral_max_ttl)", s.maxTTL))
	}
	exp := now.Add(ttl)
	if parent.ExpiresAt != nil && parent.ExpiresAt.Before(exp) {
		exp = *parent.ExpiresAt
	}
	if p.SpendCap < 0 {
		return bad("max_spend_usd", "must not be negative")
	}
	if p.MaxRequests < 0 {
		return bad("max_requests", "must not be negative")
	}
	name := strings.TrimSpace(p.Name)
	if name == "" {
		name = "ephemeral child of " + parent.Name
	}
	row := Record{AccountID: parent.AccountID, Kind: KindCaller, Name: name,
		AllowedModels: models, AllowedEndpoints: endpoints, AllowedCIDRs: cidrs, RPM: rpm, TPM: tpm, MaxConcurrent: conc,
		Metadata: map[string]string{"parent_id": parent.ID}, CreatedAt: now, ExpiresAt: &exp}
	return row, Child{ParentID: parent.ID, SpendCap: p.SpendCap, MaxRequests: p.MaxRequests}, nil
}

func narrowLimit(field string, asked, parent int) (int, error) {
	switch {
	case asked < 0:
		return 0, &ValidationError{field, "must not be negative"}
	case asked == 0:
		return parent, nil
	case parent > 0 && asked > parent:
		return 0, &ValidationError{field, fmt.Sprintf("%d is wider than the parent key's %d", asked, parent)}
	}
	return asked, nil
}

// modelEndpoints are the endpoints a child key may be given.
func modelEndpoints() []string {
	return slices.DeleteFunc(slices.Clone(Endpoints), func(e string) bool { return e == EndpointMint })
}

// loadChild marks k as a child when the store says it is one, with its
// parent's hash so that the parent is checked through the same cache.
func (s *Service) loadChild(ctx context.Context, k *Key) error {
	if s.children == nil || k.Kind != KindCaller {
		return nil
	}
	e, err := s.children.EphemeralByKey(ctx, k.ID)
	if errors.Is(err, dberr.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("keys: verify: %w", err)
	}
	c := &Child{ParentID: e.ParentID, SpendCap: e.SpendCap, MaxRequests: e.MaxRequests}
	if row, err := s.store.KeyByID(ctx, e.ParentID); err == nil {
		if raw, err := hex.DecodeString(row.Hash); err == nil && len(raw) == sha256.Size {
			c.parentHash = [sha256.Size]byte(raw)
		}
	} else if !errors.Is(err, dberr.ErrNotFound) {
		return fmt.Errorf("keys: verify parent: %w", err)
	}
	k.Child = c
	return nil
}

// checkChild is k's own state, then, for a child, its parent's: a parent
// that is revoked, suspended or expired ends its children at once. The
// parent is read through the auth cache (by its hash), so its revocation
// on any replica, which drops that entry, reaches its children too.
func (s *Service) checkChild(ctx context.Context, k *Key, now time.Time) error {
	if err := k.check(now); err != nil || k.Child == nil {
		return err
	}
	ck := cacheKey(k.Child.parentHash)
	parent, ok := s.found.Get(ck)
	if !ok || parent.hash != k.Child.parentHash {
		row, err := s.store.KeyByID(ctx, k.Child.ParentID)
		if errors.Is(err, dberr.ErrNotFound) {
			return ErrRevoked
		}
		if err != nil {
			return fmt.Errorf("keys: verify parent: %w", err)
		}
		if parent, err = fromRowPtr(row); err != nil {
			return err
		}
		if parent.hash == k.Child.parentHash {
			s.found.SetWithTTL(ck, parent, 1, s.cacheTTL)
		}
	}
	if parent.check(now) != nil {
		return ErrRevoked
	}
	return nil
}

// endChildren revokes every child of parentID and drops them from the
// auth caches (this replica's and, through OnInvalidate, the others').
func (s *Service) endChildren(ctx context.Context, parentID string) error {
	if s.children == nil {
		return nil
	}
	hashes, err := s.children.RevokeChildren(ctx, parentID, s.now())
	if err != nil {
		return fmt.Errorf("keys: end children of %s: %w", parentID, err)
	}
	for _, h := range hashes {
		s.invalidate(h)
	}
	return nil
}

// isChild reports whether key id is an ephemeral child.
func (s *Service) isChild(ctx context.Context, id string) (bool, error) {
	if s.children == nil {
		return false, nil
	}
	_, err := s.children.EphemeralByKey(ctx, id)
	if errors.Is(err, dberr.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// AdmitChild counts one model call of a child key against its request
// cap (ErrChildCap when used up). Other keys pass without I/O.
func (s *Service) AdmitChild(ctx context.Context, k *Key) error {
	if k.Child == nil || k.Child.MaxRequests == 0 || s.children == nil {
		return nil
	}
	ok, err := s.children.CountEphemeralRequest(ctx, k.ID)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: its %d requests are used", ErrChildCap, k.Child.MaxRequests)
	}
	return nil
}

// HoldChildSpend reserves amount nano-USD of a child key's spend cap
// (ErrChildCap when what it spent and holds plus amount passes the cap).
// The returned settle turns the reservation into the request's cost (0
// releases it); it is nil for a key without a cap.
func (s *Service) HoldChildSpend(ctx context.Context, k *Key, amount int64) (settle func(ctx context.Context, cost int64) error, err error) {
	if k.Child == nil || k.Child.SpendCap == 0 || s.children == nil {
		return nil, nil
	}
	ok, err := s.children.HoldEphemeralSpend(ctx, k.ID, amount)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: its spend cap cannot cover this request", ErrChildCap)
	}
	id := k.ID
	return func(ctx context.Context, cost int64) error {
		return s.children.SettleEphemeralSpend(ctx, id, amount, cost)
	}, nil
}
