package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/keys"
)

// A key's response cache policy in the admin API (issue 20). It only
// narrows its models' policy (keys.CachePolicy): off, a shorter TTL, a
// smaller entry; it never turns the cache on for a model whose
// configuration has it off.

// KeyCache is a key's cache policy as the admin API shows it: TTL and
// MaxEntryBytes are empty/0 when the key leaves the model's.
type KeyCache struct {
	Enabled       bool   `json:"enabled"`
	TTL           string `json:"ttl,omitempty"`
	MaxEntryBytes int    `json:"max_entry_bytes,omitempty"`
}

func newKeyCache(p keys.CachePolicy) KeyCache {
	kc := KeyCache{Enabled: !p.Off, MaxEntryBytes: p.MaxEntryBytes}
	if p.TTL > 0 {
		kc.TTL = p.TTL.String()
	}
	return kc
}

// keyCacheUpdate is the "cache" object of a key's creation or update:
// absent fields keep their value; ttl "" and max_entry_bytes 0 return to
// the model's.
type keyCacheUpdate struct {
	Enabled       *bool   `json:"enabled"`
	TTL           *string `json:"ttl"`
	MaxEntryBytes *int    `json:"max_entry_bytes"`
}

// apply is p changed by u; the error is the caller's, in the admin API's
// shape.
func (u *keyCacheUpdate) apply(p keys.CachePolicy) (keys.CachePolicy, *apiError) {
	if u == nil {
		return p, nil
	}
	if u.Enabled != nil {
		p.Off = !*u.Enabled
	}
	if u.TTL != nil {
		p.TTL = 0
		if *u.TTL != "" {
			d, err := time.ParseDuration(*u.TTL)
			if err != nil || d <= 0 {
				return p, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value",
					"cache.ttl must be a positive duration such as 10m (or \"\" for the model's).").withParam("cache.ttl")
			}
			p.TTL = d
		}
	}
	if u.MaxEntryBytes != nil {
		if *u.MaxEntryBytes < 0 {
			return p, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value",
				"cache.max_entry_bytes must be a positive number of bytes (or 0 for the model's).").withParam("cache.max_entry_bytes")
		}
		p.MaxEntryBytes = *u.MaxEntryBytes
	}
	return p, nil
}

// adminUpdateKey is PATCH /admin/v1/keys/:id: {"cache": {...}} changes
// the key's response cache policy (the only property updated in place;
// the rest is fixed at creation or has its own action).
func (s *adminAPI) adminUpdateKey(c *gin.Context) {
	var req struct {
		Cache *keyCacheUpdate `json:"cache"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if req.Cache == nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "missing_field", "Name what to change: cache.").withParam("cache"))
		return
	}
	if !s.ownerForAdminKey(c) {
		return
	}
	k, err := s.own.Keys.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		adminError(c, err)
		return
	}
	p, e := req.Cache.apply(k.CachePolicy())
	if e != nil {
		writeError(c, e)
		return
	}
	k, err = s.own.Keys.SetCachePolicy(c.Request.Context(), k.ID, p, actor(c))
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, NewKeyObject(k, s.now()))
}

// narrowPolicy is the model's policy as the key narrows it; ok is false
// when the key turns the cache off.
func narrowPolicy(pol respcache.Policy, k *keys.Key) (respcache.Policy, bool) {
	if k == nil {
		return pol, true
	}
	kp := k.CachePolicy()
	if kp.Off {
		return pol, false
	}
	if kp.TTL > 0 && (pol.TTL <= 0 || kp.TTL < pol.TTL) {
		pol.TTL = kp.TTL
	}
	if kp.MaxEntryBytes > 0 && (pol.MaxEntryBytes <= 0 || kp.MaxEntryBytes < pol.MaxEntryBytes) {
		pol.MaxEntryBytes = kp.MaxEntryBytes
	}
	return pol, true
}
