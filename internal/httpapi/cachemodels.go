package httpapi

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/internal/store"
)

// Per-model response cache policies at run time (issue 20): the admin API
// stores a model's policy in the database, where it replaces the model's
// `cache:` config on every replica (this one at once, the others when the
// change is announced through Redis, or on their periodic reload) until
// it is deleted.

// CacheModelStore keeps the runtime policies (the store).
type CacheModelStore interface {
	CacheModels(ctx context.Context) ([]store.CacheModel, error)
	PutCacheModel(ctx context.Context, m store.CacheModel) error
	DeleteCacheModel(ctx context.Context, model string) (bool, error)
}

// CachePolicies is the policy table the cache consults on every request:
// the config's policies with the stored ones over them.
type CachePolicies struct {
	base map[string]respcache.Policy
	st   CacheModelStore
	cur  atomic.Pointer[map[string]store.CacheModel]
	// changed, when set, announces a change to the other replicas (they
	// call Load).
	changed func()
}

// NewCachePolicies is the table of the config's policies (base) and the
// store's (st may be nil: config only). Call Load before serving.
// changed (nil: one replica) announces an admin change to the other
// replicas.
func NewCachePolicies(base map[string]respcache.Policy, st CacheModelStore, changed func()) *CachePolicies {
	p := &CachePolicies{base: base, st: st, changed: changed}
	p.cur.Store(&map[string]store.CacheModel{})
	return p
}

// Load reads the stored policies again.
func (p *CachePolicies) Load(ctx context.Context) error {
	if p == nil || p.st == nil {
		return nil
	}
	list, err := p.st.CacheModels(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]store.CacheModel, len(list))
	for _, cm := range list {
		m[cm.Model] = cm
	}
	p.cur.Store(&m)
	return nil
}

// Policy is model's policy now, and whether it comes from the store.
func (p *CachePolicies) Policy(model string) (pol respcache.Policy, stored bool) {
	if p == nil {
		return respcache.Policy{}, false
	}
	if cm, ok := (*p.cur.Load())[model]; ok {
		return respcache.Policy{Enabled: cm.Enabled, TTL: cm.TTL, Scope: cm.Scope, Sampled: cm.Sampled, MaxEntryBytes: cm.MaxEntryBytes}, true
	}
	return p.base[model], false
}

// Any reports whether some model may cache (config or store), so that
// the app builds the cache.
func (p *CachePolicies) Any() bool {
	for _, pol := range p.base {
		if pol.Enabled {
			return true
		}
	}
	for _, cm := range *p.cur.Load() {
		if cm.Enabled {
			return true
		}
	}
	return false
}

// cachePolicy is the request path's lookup.
func (s *base) cachePolicy(model string) (respcache.Policy, bool) {
	if s.cfg.Cache.Live != nil {
		pol, _ := s.cfg.Cache.Live.Policy(model)
		return pol, pol.Enabled
	}
	pol, ok := s.cfg.Cache.Policies[model]
	return pol, ok && pol.Enabled
}

// CacheModelObject is a model's policy in the admin API.
type CacheModelObject struct {
	Object        string     `json:"object"`
	Model         string     `json:"model"`
	Source        string     `json:"source"` // "config" or "admin" (stored; DELETE returns to the config's)
	Enabled       bool       `json:"enabled"`
	TTL           string     `json:"ttl"`
	Scope         string     `json:"scope"`
	Sampled       bool       `json:"sampled"`
	MaxEntryBytes int        `json:"max_entry_bytes"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
	UpdatedBy     string     `json:"updated_by,omitempty"`
}

func (s *adminAPI) cacheModelObject(model string) CacheModelObject {
	pol, stored := s.cfg.Cache.Live.Policy(model)
	o := CacheModelObject{Object: "cache.model", Model: model, Source: "config", Enabled: pol.Enabled, Scope: pol.Scope,
		Sampled: pol.Sampled, MaxEntryBytes: pol.MaxEntryBytes}
	if o.Scope == "" {
		o.Scope = respcache.ScopeAccount
	}
	ttl := pol.TTL
	if ttl <= 0 {
		ttl = respcache.DefaultTTL
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = respcache.DefaultMaxEntry
	}
	o.TTL = ttl.String()
	if stored {
		cm := (*s.cfg.Cache.Live.cur.Load())[model]
		at := cm.UpdatedAt
		o.Source, o.UpdatedAt, o.UpdatedBy = "admin", &at, cm.UpdatedBy
	}
	return o
}

func (s *adminAPI) routeCacheModels(g *gin.RouterGroup) {
	g.GET("/cache/models", s.adminListCacheModels)
	g.GET("/cache/models/:model", s.adminGetCacheModel)
	g.PUT("/cache/models/:model", s.adminPutCacheModel)
	g.DELETE("/cache/models/:model", s.adminDeleteCacheModel)
}

// cacheModelsReady answers 400 cache_off when this replica has no cache
// or no store for policies, and 404 for a model the gateway does not
// serve.
func (s *adminAPI) cacheModelsReady(c *gin.Context, model string) bool {
	if s.cfg.Cache.Cache == nil || s.cfg.Cache.Live == nil || s.cfg.Cache.Live.st == nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "cache_off",
			"The response cache is not built on this server: turn it on for at least one model in the config (cache: enabled) and restart."))
		return false
	}
	if model != "" {
		if _, ok := s.cfg.Router.Lookup(model); !ok {
			writeError(c, newError(http.StatusNotFound, "invalid_request_error", "model_not_found", "No such model: "+model).withParam("model"))
			return false
		}
	}
	return true
}

// adminListCacheModels is GET /admin/v1/cache/models: every served
// model's policy now.
func (s *adminAPI) adminListCacheModels(c *gin.Context) {
	if !s.cacheModelsReady(c, "") {
		return
	}
	out := []CacheModelObject{}
	for _, m := range s.cfg.Router.Models() {
		out = append(out, s.cacheModelObject(m.Name))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

// adminGetCacheModel is GET /admin/v1/cache/models/:model.
func (s *adminAPI) adminGetCacheModel(c *gin.Context) {
	model := c.Param("model")
	if !s.cacheModelsReady(c, model) {
		return
	}
	c.JSON(http.StatusOK, s.cacheModelObject(model))
}

// adminPutCacheModel is PUT /admin/v1/cache/models/:model: the fields
// given change the model's policy now (absent ones keep theirs), stored
// so that every replica applies it.
func (s *adminAPI) adminPutCacheModel(c *gin.Context) {
	model := c.Param("model")
	var in struct {
		Enabled       *bool   `json:"enabled"`
		TTL           *string `json:"ttl"`
		Scope         *string `json:"scope"`
		Sampled       *bool   `json:"sampled"`
		MaxEntryBytes *int    `json:"max_entry_bytes"`
	}
	if !s.bindJSON(c, &in) || !s.cacheModelsReady(c, model) {
		return
	}
	pol, _ := s.cfg.Cache.Live.Policy(model)
	bad := func(param, msg string) {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", msg).withParam(param))
	}
	if in.Enabled != nil {
		pol.Enabled = *in.Enabled
	}
	if in.TTL != nil {
		d, err := time.ParseDuration(*in.TTL)
		if err != nil || d <= 0 {
			bad("ttl", "ttl must be a positive duration such as 10m.")
			return
		}
		pol.TTL = d
	}
	if in.Scope != nil {
		if *in.Scope != respcache.ScopeAccount && *in.Scope != respcache.ScopeGlobal {
			bad("scope", "scope must be account or global.")
			return
		}
		pol.Scope = *in.Scope
	}
	if in.Sampled != nil {
		pol.Sampled = *in.Sampled
	}
	if in.MaxEntryBytes != nil {
		if *in.MaxEntryBytes <= 0 {
			bad("max_entry_bytes", "max_entry_bytes must be a positive number of bytes.")
			return
		}
		pol.MaxEntryBytes = *in.MaxEntryBytes
	}
	if pol.Scope == "" {
		pol.Scope = respcache.ScopeAccount
	}
	cm := store.CacheModel{Model: model, Enabled: pol.Enabled, TTL: pol.TTL, Scope: pol.Scope, Sampled: pol.Sampled,
		MaxEntryBytes: pol.MaxEntryBytes, UpdatedAt: s.now().UTC().Truncate(time.Millisecond), UpdatedBy: actor(c)}
	if !s.saveCacheModels(c, func(ctx context.Context) error { return s.cfg.Cache.Live.st.PutCacheModel(ctx, cm) }) {
		return
	}
	c.JSON(http.StatusOK, s.cacheModelObject(model))
}

// adminDeleteCacheModel is DELETE /admin/v1/cache/models/:model: the
// model's config policy applies again.
func (s *adminAPI) adminDeleteCacheModel(c *gin.Context) {
	model := c.Param("model")
	if !s.cacheModelsReady(c, model) {
		return
	}
	if !s.saveCacheModels(c, func(ctx context.Context) error {
		_, err := s.cfg.Cache.Live.st.DeleteCacheModel(ctx, model)
		return err
	}) {
		return
	}
	c.JSON(http.StatusOK, s.cacheModelObject(model))
}

// saveCacheModels writes, reloads this replica's table and announces the
// change to the others.
func (s *adminAPI) saveCacheModels(c *gin.Context, write func(context.Context) error) bool {
	ctx := c.Request.Context()
	err := write(ctx)
	if err == nil {
		err = s.cfg.Cache.Live.Load(ctx)
	}
	if err != nil {
		writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The cache policy could not be saved."))
		infoOf(c).errMsg = err.Error()
		return false
	}
	if s.cfg.Cache.Live.changed != nil {
		s.cfg.Cache.Live.changed()
	}
	return true
}
