package keys

// A key's properties as the request path sees them, and the checks the
// request path asks of them (scope, IP allowlist, status).

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"time"
)

// Key is a key's properties, as the request path sees them. It never holds
// the key itself.
type Key struct {
	// Record is the key as stored, less its hash: fromRow clears Hash (the
	// check on a cache hit compares the parsed bytes below, and a Key is
	// rendered and logged where a hash has no business).
	Record
	// Networks is Record.AllowedCIDRs parsed (a bare address is one host).
	Networks []netip.Prefix
	Child    *Child // an ephemeral child key's parent and caps (nil: not a child)

	hash [sha256.Size]byte // for the constant-time check on a cache hit
}

// Endpoint names a key's endpoint scope may list.
const (
	EndpointChat        = "chat.completions"
	EndpointResponses   = "responses"
	EndpointCompletions = "completions"
	EndpointMessages    = "messages"
	EndpointEmbeddings  = "embeddings"
	EndpointModels      = "models"
	EndpointUsage       = "usage"
)

// Endpoints lists every endpoint name, in the order help texts show them.
var Endpoints = []string{EndpointChat, EndpointResponses, EndpointCompletions, EndpointMessages, EndpointEmbeddings, EndpointModels, EndpointUsage, EndpointMint}

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

// AllowsEndpoint reports whether the key may call an endpoint (one of the
// Endpoint* names). An empty list allows every endpoint.
func (k *Key) AllowsEndpoint(name string) bool {
	if len(k.AllowedEndpoints) == 0 {
		return true
	}
	for _, e := range k.AllowedEndpoints {
		if e == name || e == "*" {
			return true
		}
	}
	return false
}

// AllowsIP reports whether a request from ip may use the key. An empty
// allowlist allows every address; an unparsable ip is refused when a list
// exists.
func (k *Key) AllowsIP(ip netip.Addr) bool {
	if len(k.Networks) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range k.Networks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Status is "active", "suspended", "revoked" or "expired" at now.
func (k *Key) Status(now time.Time) string {
	switch k.check(now) {
	case ErrRevoked:
		return "revoked"
	case ErrExpired:
		return "expired"
	case ErrSuspended:
		return "suspended"
	}
	return "active"
}

func (k *Key) check(now time.Time) error {
	if k.RevokedAt != nil && !now.Before(*k.RevokedAt) {
		return ErrRevoked
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return ErrExpired
	}
	if k.SuspendedAt != nil {
		return ErrSuspended
	}
	return nil
}

func fromRowPtr(r Record) (*Key, error) {
	k, err := fromRow(r)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

func fromRow(r Record) (Key, error) {
	k := Key{Record: r}
	k.Hash = ""
	if raw, err := hex.DecodeString(r.Hash); err == nil && len(raw) == sha256.Size {
		k.hash = [sha256.Size]byte(raw)
	}
	for _, c := range r.AllowedCIDRs {
		p, err := parseCIDR(c)
		if err != nil {
			return Key{}, fmt.Errorf("key %s: %w", r.ID, err)
		}
		k.Networks = append(k.Networks, p)
	}
	return k, nil
}

// CIDRStrings renders the allowlist for display.
func (k *Key) CIDRStrings() []string {
	out := make([]string, len(k.Networks))
	for i, p := range k.Networks {
		out[i] = p.String()
	}
	return out
}
