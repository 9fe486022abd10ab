package app

import (
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/respcache"
)

// newResponseCache builds the response cache when at least one model
// turns it on (a zero config otherwise: no cache, no metrics). With
// Redis configured (and cache.redis not false) the replicas share it.
func newResponseCache(cfg config.Config, rdb *redis.Client, log *zap.Logger) (httpapi.CacheConfig, error) {
	pols := map[string]respcache.Policy{}
	for _, m := range cfg.Models {
		if m.Cache == nil || !m.Cache.Enabled {
			continue
		}
		scope := m.Cache.Scope
		if scope == "" {
			scope = respcache.ScopeAccount
		}
		pols[m.Name] = respcache.Policy{Enabled: true, TTL: m.Cache.TTL, Scope: scope,
			Sampled: m.Cache.Sampled, MaxEntryBytes: m.Cache.MaxEntryBytes}
	}
	if len(pols) == 0 {
		return httpapi.CacheConfig{}, nil
	}
	cm := &httpapi.CacheMetrics{}
	rc := respcache.Config{MaxBytes: cfg.Cache.MaxBytes, Log: log, Metrics: cm}
	if rdb != nil && (cfg.Cache.Redis == nil || *cfg.Cache.Redis) {
		rc.Redis = rdb
	}
	c, err := respcache.New(rc)
	if err != nil {
		return httpapi.CacheConfig{}, err
	}
	return httpapi.CacheConfig{Cache: c, Policies: pols, PriceFraction: cfg.Cache.PriceFraction,
		CountTPM: cfg.Cache.CountTPM, Metrics: cm}, nil
}
