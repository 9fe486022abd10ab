package keys

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"
)

// A key's response cache policy (issue 20) is kept with the key, in
// three reserved metadata entries, so that it needs no column of its own
// and the older `cache: off` metadata keeps its meaning:
//
//	cache                  "off" (nothing this key asks is cached) or "on"
//	cache_ttl              a Go duration ("10m"): entries it stores live at most this long
//	cache_max_entry_bytes  an integer: answers larger than this are not stored
//
// A key's policy only narrows its model's (see CachePolicy.Narrow): it can
// turn the cache off, shorten the TTL and lower the entry size, never turn
// the cache on for a model whose configuration has it off, lengthen a TTL
// or widen the scope; what is cached is the operator's decision per model,
// a key only opts out of part of it.
const (
	MetaCache         = "cache"
	MetaCacheTTL      = "cache_ttl"
	MetaCacheMaxEntry = "cache_max_entry_bytes"
)

// CachePolicy is a key's narrowing of the response cache. The zero value
// changes nothing.
type CachePolicy struct {
	// Off: the key's requests are neither looked up nor stored.
	Off bool
	// TTL bounds the life of the entries the key's requests store (0: the
	// model's).
	TTL time.Duration
	// MaxEntryBytes bounds the size of an entry the key's requests store
	// (0: the model's).
	MaxEntryBytes int
}

// CachePolicy is the key's policy from its metadata; an entry that does
// not parse (written before validation existed) is ignored.
func (k *Key) CachePolicy() CachePolicy { return CachePolicyOf(k.Metadata) }

// CachePolicyOf is the policy of a key's metadata (unreadable entries
// ignored).
func CachePolicyOf(meta map[string]string) CachePolicy {
	p, _ := cachePolicyOf(meta)
	return p
}

// cachePolicyOf reads the reserved entries; the error names the first bad
// one.
func cachePolicyOf(meta map[string]string) (CachePolicy, error) {
	var p CachePolicy
	var firstErr error
	fail := func(field, msg string) {
		if firstErr == nil {
			firstErr = &ValidationError{field, msg}
		}
	}
	switch v := meta[MetaCache]; v {
	case "", "on":
	case "off":
		p.Off = true
	default:
		fail("metadata."+MetaCache, fmt.Sprintf("must be \"on\" or \"off\", got %q", v))
	}
	if v := meta[MetaCacheTTL]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fail("metadata."+MetaCacheTTL, fmt.Sprintf("must be a positive duration such as 10m, got %q", v))
		} else {
			p.TTL = d
		}
	}
	if v := meta[MetaCacheMaxEntry]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail("metadata."+MetaCacheMaxEntry, fmt.Sprintf("must be a positive number of bytes, got %q", v))
		} else {
			p.MaxEntryBytes = n
		}
	}
	return p, firstErr
}

// Metadata writes p into meta's reserved entries (a copy; meta is not
// changed): zero fields remove theirs.
func (p CachePolicy) Metadata(meta map[string]string) map[string]string {
	out := maps.Clone(meta)
	if out == nil {
		out = map[string]string{}
	}
	delete(out, MetaCache)
	delete(out, MetaCacheTTL)
	delete(out, MetaCacheMaxEntry)
	if p.Off {
		out[MetaCache] = "off"
	}
	if p.TTL > 0 {
		out[MetaCacheTTL] = p.TTL.String()
	}
	if p.MaxEntryBytes > 0 {
		out[MetaCacheMaxEntry] = strconv.Itoa(p.MaxEntryBytes)
	}
	return out
}

// Validate refuses negative bounds.
func (p CachePolicy) Validate() error {
	if p.TTL < 0 {
		return &ValidationError{"cache.ttl", "must not be negative"}
	}
	if p.MaxEntryBytes < 0 {
		return &ValidationError{"cache.max_entry_bytes", "must not be negative"}
	}
	return nil
}

// SetCachePolicy replaces a key's response cache policy, effective on its
// next request on every replica (the cached key is dropped and the drop
// announced). The audit's key.cache_policy_changed names the old and the
// new policy; setting the policy the key has writes nothing.
func (s *Service) SetCachePolicy(ctx context.Context, id string, p CachePolicy, actor string) (Key, error) {
	if err := p.Validate(); err != nil {
		return Key{}, err
	}
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return Key{}, fmt.Errorf("keys: set cache policy of %s: %w", id, err)
	}
	from, _ := cachePolicyOf(row.Metadata)
	meta := p.Metadata(row.Metadata)
	changed := from != p || !maps.Equal(meta, row.Metadata)
	if changed {
		if err := s.store.SetKeyMetadata(ctx, id, meta); err != nil {
			return Key{}, fmt.Errorf("keys: %w", err)
		}
	}
	row.Metadata = meta
	s.transitioned(ctx, changed, row, LifecycleEvent{Kind: "key.cache_policy_changed", Actor: actor, AccountID: row.AccountID, Subject: id,
		Details: map[string]any{"from": from.describe(), "to": p.describe()}})
	return fromRow(row)
}

func (p CachePolicy) describe() map[string]any {
	return map[string]any{"enabled": !p.Off, "ttl": p.TTL.String(), "max_entry_bytes": p.MaxEntryBytes}
}
