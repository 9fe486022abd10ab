// Package app wires xroute's parts together from a config. The binary and
// the end-to-end tests use the same wiring.
package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// App is the wired gateway.
type App struct {
	Handler http.Handler
	// Metrics serves /metrics when server.metrics_addr puts it on a
	// listener of its own (nil otherwise: Handler serves it, if enabled).
	Metrics  http.Handler
	DB       *store.DB
	Keys     *keys.Service
	Audit    *auditlog.Auditor
	Secrets  *Secrets
	Recorder *billing.Recorder
	Captures *billing.Captures // request captures of accounts with capture on
	Cache    *respcache.Cache  // the response cache (nil: no model caches)
	Ledger   *billing.Ledger
	Budgets  *billing.Budgets
	// Issuers are the token exchange's trusted issuers (config file and
	// admin API).
	Issuers  *exchange.Registry
	closers  closers
	upstream *http.Client
}

// closers are the cleanups of what Build started, in order of
// construction; run calls them backwards.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }

func (c *closers) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// CloseIdleUpstreams closes the pooled idle connections to providers
// (a measurement of what requests leave behind must not count them).
func (a *App) CloseIdleUpstreams() { a.upstream.CloseIdleConnections() }

// sweepResponses deletes stored Responses API answers past their
// retention, every interval until ctx ends. Replicas may all sweep: each
// batch takes rows no other sweep has locked.
func sweepResponses(ctx context.Context, db *store.DB, interval time.Duration, log *zap.Logger) {
	repeatEvery(ctx, interval, func(ctx context.Context) {
		n, err := db.SweepResponses(ctx, time.Now(), 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("sweeping expired responses", zap.Error(err))
		case n > 0:
			log.Info("expired responses deleted", zap.Int("responses", n))
		}
	})
}

// sweepCaptures deletes request captures past their retention, every
// interval until ctx ends (as sweepResponses).
func sweepCaptures(ctx context.Context, db *store.DB, interval time.Duration, log *zap.Logger) {
	repeatEvery(ctx, interval, func(ctx context.Context) {
		n, err := db.SweepCaptures(ctx, time.Now(), 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("sweeping expired request captures", zap.Error(err))
		case n > 0:
			log.Info("expired request captures deleted", zap.Int("captures", n))
		}
	})
}

// OpenStore opens the configured store: PostgreSQL when database.url is
// set (shared by several replicas), else the embedded SQLite file.
func OpenStore(ctx context.Context, cfg config.Config) (*store.DB, error) {
	if cfg.Database.Postgres() {
		return store.OpenPostgres(ctx, cfg.Database.URL)
	}
	return store.OpenSQLite(ctx, cfg.Database.Path)
}

// StoreName says which store cfg opens, for logs: the SQLite path, or
// the PostgreSQL host and database (never the user or password).
func StoreName(cfg config.Config) string {
	if !cfg.Database.Postgres() {
		return cfg.Database.Path
	}
	u, err := url.Parse(cfg.Database.URL)
	if err != nil {
		return "postgres"
	}
	return "postgres://" + u.Host + u.Path
}

// SpoolDir is where the usage spool lives.
func SpoolDir(cfg config.Config) string {
	if cfg.Usage.SpoolDir != "" {
		return cfg.Usage.SpoolDir
	}
	return cfg.Database.Path + ".spool"
}

// RecoverUsage opens the usage spool and writes to the store the records a
// previous process spooled but did not commit (a crash, a kill -9); inserts
// are idempotent, so records that did reach the store are not counted
// twice. A store that cannot take them does not stop the start: they stay
// in the spool, and the usage recorder replays them once it answers.
func RecoverUsage(ctx context.Context, db *store.DB, dir string, log *zap.Logger, opts ...billing.SpoolOption) (*billing.Spool, error) {
	spool, err := billing.OpenSpool(dir, opts...)
	if err != nil {
		return nil, err
	}
	n, err := spool.Replay(ctx, db, 1000)
	if n > 0 {
		log.Warn("replayed usage records left in the spool by a previous process", zap.Int("records", n))
	}
	if err != nil {
		left, _ := spool.Stats()
		log.Warn("usage records left in the spool by a previous process wait for the database", zap.Int64("records", left), zap.Error(err))
	}
	return spool, nil
}

// AuditHook returns the key service's event hook that writes lifecycle
// events to the audit log.
func AuditHook(audit *auditlog.Auditor, log *zap.Logger) func(context.Context, keys.LifecycleEvent) {
	return func(ctx context.Context, ev keys.LifecycleEvent) {
		actor := ev.Actor
		if actor == "" {
			actor = "system"
		}
		if err := audit.Record(ctx, auditlog.Event{Kind: ev.Kind, Actor: actor, AccountID: ev.AccountID, Subject: ev.Subject, Details: ev.Details}); err != nil {
			log.Error("audit log write failed", zap.String("kind", ev.Kind), zap.String("subject", ev.Subject), zap.Error(err))
		}
	}
}

// Close stops background work, flushes queued usage records and closes the
// store. Call it after the HTTP server has stopped.
func (a *App) Close() { a.closeAll() }

func (a *App) closeAll() { a.closers.run() }

// Announcer is how a process that is not a replica (the CLI on the
// database directly) tells the running replicas what it changed, through
// Redis pub/sub: they then refuse a revoked key, or reload provider keys,
// at once instead of after a cache TTL or timer. Without Redis, publish
// does nothing. Publish failures are logged to log.
func Announcer(cfg config.Config, log *zap.Logger) (publish func(string), closeFn func(), err error) {
	if cfg.Redis.URL == "" {
		return func(string) {}, func() {}, nil
	}
	opts, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis.url: %w", err)
	}
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	return newPublisher(rdb, log), func() { rdb.Close() }, nil
}

// OpenKeys builds the key service on db with the configured peppers.
// onInvalidate (may be nil) gets the hash of every key it revokes,
// suspends, resumes or rotates, to announce to the other replicas.
func OpenKeys(db *store.DB, cfg config.Config, onEvent func(context.Context, keys.LifecycleEvent), onInvalidate func(string)) (*keys.Service, error) {
	peppers, err := keys.LoadPeppers(cfg.Auth)
	if err != nil {
		return nil, err
	}
	return keys.NewService(db, keys.Options{Peppers: peppers, CacheTTL: cfg.Auth.CacheTTL, Now: time.Now, OnEvent: onEvent, OnInvalidate: onInvalidate,
		Children: db, EphemeralMaxTTL: cfg.Auth.EphemeralMaxTTL})
}

// upstreamTransport keeps many idle connections per provider, up to
// perHost (router.idle_conns_per_host): a gateway talks to few hosts at
// high concurrency.
func upstreamTransport(perHost int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(4096, 4*perHost)
	t.MaxIdleConnsPerHost = perHost
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// repeatEvery runs fn every interval until ctx ends (not at once: what it does
// was just done, or need not be, when the loop starts). The sweeps and
// polls of the background work share it.
func repeatEvery(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}
