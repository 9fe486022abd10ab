package app

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/respcache"
)

// newResponseCache builds the response cache when at least one model
// turns it on (a zero config otherwise: no cache, no metrics). With
// Redis configured (and cache.redis not false) the replicas share it.
//
// announce publishes a purge to the other replicas (their fan-out
// subscriber hands it to respcache.PurgeLocal).
//
// The policies set through the admin API (st) are read first: a model one
// of them turns on builds the cache too.
func newResponseCache(ctx context.Context, cfg config.Config, st httpapi.CacheModelStore, rdb *redis.Client, reg *prometheus.Registry, log *zap.Logger, announce func(string)) (httpapi.CacheConfig, error) {
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
	var changed func()
	if rdb != nil {
		changed = func() { announce(cacheModelsChanged) }
	}
	live := httpapi.NewCachePolicies(pols, st, changed)
	if err := live.Load(ctx); err != nil {
		return httpapi.CacheConfig{}, fmt.Errorf("response cache policies: %w", err)
	}
	if !live.Any() {
		return httpapi.CacheConfig{}, nil
	}
	cm, err := httpapi.NewCacheMetrics(reg)
	if err != nil {
		return httpapi.CacheConfig{}, err
	}
	rc := respcache.Config{MaxBytes: cfg.Cache.MaxBytes, Log: log, Metrics: cm}
	if rdb != nil && (cfg.Cache.Redis == nil || *cfg.Cache.Redis) {
		rc.Redis = rdb
	}
	if rdb != nil {
		// Purges reach the other replicas' memory through the fan-out
		// even when the entries themselves are not shared.
		rc.Announce = announce
	}
	c, err := respcache.New(rc)
	if err != nil {
		return httpapi.CacheConfig{}, err
	}
	if err := httpapi.RegisterCacheBytes(reg, c.Bytes); err != nil {
		c.Close()
		return httpapi.CacheConfig{}, err
	}
	return httpapi.CacheConfig{Cache: c, Policies: pols, Live: live, PriceFraction: cfg.Cache.PriceFraction,
		CountTPM: cfg.Cache.CountTPM, Metrics: cm}, nil
}
