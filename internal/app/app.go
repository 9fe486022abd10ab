// Package app wires xroute's parts together from a config. The binary and
// the end-to-end tests use the same wiring.
package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/builtin"
	"github.com/xroute/xroute/router"
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
	log      *zap.Logger
	closers  []func() // in order of construction; Close runs them backwards
	upstream *http.Client
}

// CloseIdleUpstreams closes the pooled idle connections to providers
// (a measurement of what requests leave behind must not count them).
func (a *App) CloseIdleUpstreams() { a.upstream.CloseIdleConnections() }

// Build wires every part of the gateway from config. Close releases it.
func Build(ctx context.Context, cfg config.Config, log *zap.Logger, opts ...Option) (_ *App, err error) {
	// Every log line of the gateway, and every upstream error text before
	// it reaches a caller, passes the redactor: provider keys (config and
	// vault) and anything shaped like a credential are replaced.
	red := keys.NewRedactor()
	log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return keys.RedactCore(c, red) }))
	a := &App{log: log}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.DB = db
	a.closers = append(a.closers, func() {
		if err := db.Close(); err != nil {
			log.Error("closing database", zap.Error(err))
		}
	})
	// The vault first: its keys make the audit log and the ledger
	// tamper-evident, and everything after this may write to them.
	vault, err := OpenVault(ctx, db, cfg.Vault, log)
	if err != nil {
		return nil, err
	}
	// Audit sinks before the auditor: every row it appends nudges them.
	sinks, err := startAuditSinks(cfg.Audit, db, log.Named("audit_sinks"))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, sinks.shippers.Close)
	a.Audit = keyChainsOn(db, sinks.store(db), vault)
	if err := SealChains(ctx, db, vault, a.Audit, log); err != nil {
		return nil, err
	}
	var fo *fanout
	ks, err := OpenKeys(db, cfg, AuditHook(a.Audit, log), func(h string) {
		if fo != nil {
			fo.publish(h)
		}
	})
	if err != nil {
		return nil, err
	}
	a.Keys = ks
	a.closers = append(a.closers, ks.Close)
	var rdb *redis.Client
	if cfg.Redis.URL != "" {
		opts, err := redis.ParseURL(cfg.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		// Per-call deadlines (redis.timeout, 200 ms by default) must bound reads from a
		// Redis that accepts connections but never answers.
		opts.ContextTimeoutEnabled = true
		rdb = redis.NewClient(opts)
		a.closers = append(a.closers, func() { rdb.Close() })
	}

	cat, err := loadCatalog(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	cfg = withCatalog(cfg, cat, os.Getenv)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	red.Set("config", configSecrets(cfg, os.Getenv)...)
	tel, err := openTelemetry(ctx, cfg, a, log, opts)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: tel.Transport(upstreamTransport())}
	a.closers = append(a.closers, client.CloseIdleConnections)
	a.upstream = client
	reg := builtin.Registry()
	adapters := make(map[string]providers.Provider, len(cfg.Providers))
	for _, pc := range cfg.Providers {
		ad, err := reg.New(pc, providers.Deps{Client: client, Getenv: os.Getenv})
		if err != nil {
			return nil, err
		}
		adapters[pc.Name] = ad
	}
	own, err := priced(cfg, cat)
	if err != nil {
		return nil, err
	}
	ropts := []router.Option{router.WithRouting(cfg.Routing), router.WithRedactor(red), router.WithTracer(tel.Tracer())}
	if rdb != nil {
		ropts = append(ropts, router.WithAffinityRedis(rdb, cfg.Redis.Timeout)) // session pins shared by the replicas
	}
	rt, err := router.New(cfg, adapters, log.Named("router"), time.Now, catalogLookup(cat, own, cfg), ropts...)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, rt.Close) // key probes in flight
	warnUnpriced(rt, log)
	build := func(pc config.Provider) (providers.Provider, error) {
		return reg.New(pc, providers.Deps{Client: client, Getenv: os.Getenv})
	}
	a.Secrets = NewSecrets(vault, db, a.Audit, rt, cfg, build, log.Named("secrets"))
	a.Secrets.redact = red
	if err := a.Secrets.ReloadAll(ctx); err != nil {
		return nil, err
	}
	spool, err := RecoverUsage(ctx, db, SpoolDir(cfg), log, billing.WithSpoolLimit(cfg.Usage.SpoolMaxBytes), billing.WithSpoolLogger(log.Named("usage")))
	if err != nil {
		return nil, err
	}
	// Store outage: the monitor gates new requests while the database is
	// unreachable (pings, and the recorder's own failures).
	health := newStoreHealth(db.Ping, log.Named("store"), time.Second, time.Second)
	a.closers = append(a.closers, health.close)
	rec := billing.NewRecorder(db, log.Named("usage"), cfg.Usage.BatchSize, cfg.Usage.QueueSize, cfg.Usage.FlushInterval,
		billing.WithSpool(spool), billing.WithOnOutage(health.markDown))
	a.Recorder = rec
	health.usage = rec
	health.start()
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			log.Error("flushing usage records", zap.Error(err))
		}
	})
	var ledgerOpts []billing.LedgerOption
	if db.Dialect() == "postgres" {
		// Several replicas spend the same accounts: holds live in the
		// shared database, and any replica frees those of a dead one.
		sh := billing.NewSharedHolds(db, cfg.Database.HoldTTL, log.Named("holds"))
		ledgerOpts = append(ledgerOpts, billing.WithHolds(sh), billing.WithMultiplierTTL(30*time.Second))
		sweepCtx, stopSweep := context.WithCancel(context.Background())
		swept := make(chan struct{})
		go func() { defer close(swept); sh.Sweep(sweepCtx, min(cfg.Database.HoldTTL/4, 30*time.Second)) }()
		a.closers = append(a.closers, func() { stopSweep(); <-swept })
	}
	a.Ledger = billing.NewLedger(db, time.Now, ledgerOpts...)
	var budgetOpts []billing.BudgetsOption
	if db.Dialect() == "postgres" {
		// Other replicas spend too: re-read budgets' spend every second.
		budgetOpts = append(budgetOpts, billing.WithSpendRefresh(time.Second))
	}
	hook, err := newWebhook(cfg.Anomaly, log)
	if err != nil {
		return nil, err
	}
	cr := newCredits(a.Ledger, db, a.Audit, hook, log.Named("credits"), budgetOpts...)
	a.Budgets = cr.budgets
	a.closers = append(a.closers, cr.close)
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		sweepResponses(sweepCtx, db, cfg.Responses.SweepInterval, log.Named("responses"))
	}()
	a.closers = append(a.closers, func() { stopSweep(); <-swept })
	// Request captures: written off the request path, redacted first (the
	// redactor knows the config's and the vault's provider keys); expired
	// ones are swept like stored responses.
	a.Captures = billing.NewCaptures(db, red.RedactBytes, log.Named("captures"), 256)
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Captures.Close(ctx); err != nil {
			log.Error("flushing request captures", zap.Error(err))
		}
	})
	capSweepCtx, stopCapSweep := context.WithCancel(context.Background())
	capSwept := make(chan struct{})
	go func() {
		defer close(capSwept)
		sweepCaptures(capSweepCtx, db, cfg.Responses.SweepInterval, log.Named("captures"))
	}()
	a.closers = append(a.closers, func() { stopCapSweep(); <-capSwept })
	g := newGuard(cfg, ks, a.Audit, rdb, hook, log.Named("guard"))
	a.closers = append(a.closers, g.close)

	creditsAdmin := NewCreditsAdmin(a.Ledger, a.Budgets, a.Audit)
	usageAdmin, usageCaller := httpapi.UsageRoutes(billing.NewReporter(db, time.Now))
	// The gateway's own registry, never the global default one.
	var metrics httpapi.MetricsConfig
	var exchangeOutcome func(string)
	if cfg.Server.Metrics {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg.MustRegister(health.collectors()...) // store outage: xroute_store_up, xroute_usage_spool_*
		// xroute_audit_sink_lag, xroute_audit_sink_errors_total
		reg.MustRegister(sinks.metrics.Collectors()...)
		if rdb != nil {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "xroute_redis_fallbacks_total",
				Help: "Rate-limit and concurrency decisions this replica took alone because Redis did not answer (limits then hold per replica).",
			}, g.redisFallbacks))
		}
		// Session affinity outcomes (router/affinity.go).
		for _, o := range []struct {
			outcome string
			n       func(router.AffinityStats) uint64
		}{
			{"hit", func(s router.AffinityStats) uint64 { return s.Hits }},
			{"miss", func(s router.AffinityStats) uint64 { return s.Misses }},
			{"repin", func(s router.AffinityStats) uint64 { return s.Repins }},
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "xroute_affinity_total",
				Help:        "Requests of a session by affinity outcome: hit (served where its prompt cache is warm), miss (no pin: a new or idle session), repin (pinned elsewhere, served here: breaker, cooldown, cheaper, caller's order).",
				ConstLabels: prometheus.Labels{"outcome": o.outcome},
			}, func() float64 { return float64(o.n(rt.AffinityStats())) }))
		}
		// Token exchanges and refreshes by outcome ("issued", "refreshed" or
		// the refusal's reason: refresh_reused is the theft signal).
		exchanges := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xroute_token_exchanges_total",
			Help: "POST /v1/auth/token outcomes: issued, refreshed, or the refusal's reason (expired, wrong_audience, replayed_jti, no_rule, refresh_reused, ...).",
		}, []string{"outcome"})
		reg.MustRegister(exchanges)
		exchangeOutcome = func(o string) { exchanges.WithLabelValues(o).Inc() }
		metrics = httpapi.MetricsConfig{Registry: reg, Deployments: rt.Deployments, UsageQueue: rec.Pending,
			Token: cfg.Server.MetricsToken, Elsewhere: cfg.Server.MetricsAddr != ""}
	}
	// Identity tokens for short-lived keys; the issuers' discovery and
	// JWKS are fetched with a client of their own (not the upstream one).
	o := options{issuerPoll: issuerPoll}
	for _, opt := range opts {
		opt(&o)
	}
	xch, err := openExchange(ctx, cfg, db, ks, a.Audit, &http.Client{Timeout: 10 * time.Second}, exchangeOutcome, log.Named("exchange"), o.issuerPoll, func() {
		if fo != nil {
			fo.publish(IssuersChanged)
		}
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, xch.stop)
	a.Issuers = xch.reg
	rc, err := newResponseCache(ctx, cfg, db, rdb, log.Named("cache"), func(msg string) {
		if fo != nil {
			fo.publish(msg)
		}
	})
	if err != nil {
		return nil, err
	}
	if rc.Cache != nil {
		a.Cache = rc.Cache
		a.closers = append(a.closers, rc.Cache.Close)
	}
	gin.SetMode(gin.ReleaseMode)
	h, err := httpapi.New(httpapi.Config{
		Keys:            ks,
		Router:          rt,
		Usage:           rec,
		Log:             log,
		MaxBodyBytes:    cfg.Server.MaxBodyBytes,
		RequestTimeout:  cfg.Server.RequestTimeout,
		Health:          db.Ping,
		Admin:           ks,
		RotationOverlap: cfg.Auth.RotationOverlap,
		TrustedProxies:  cfg.Server.TrustedProxies,
		Throttle:        g.throttle,
		Guessing:        g.guessing,
		Observe:         g.observe,
		Limits:          g.limits,
		AdminRoutes:     []func(*gin.RouterGroup){usageAdmin, httpapi.DeploymentsRoute(rt), httpapi.AuditExportRoute(db), httpapi.IssuersRoute(xch.reg)},
		CallerRoutes:    []func(*gin.RouterGroup){usageCaller},
		Meter:           childMeter{credits: cr, keys: ks},
		Credits:         creditsAdmin,
		AuditLog:        a.Audit,
		ProviderKeys:    a.Secrets,
		Metrics:         metrics,
		StoreHealth:     health, // store outage: 503 store_unavailable

		Responses:         db,
		ResponseRetention: cfg.Responses.Retention,
		Tokens:            cr,
		StreamKeepAlive:   cfg.Server.StreamKeepAlive,
		BodyReadTimeout:   cfg.Server.BodyReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,

		RequestLog:  db,
		Captures:    a.Captures,
		AuditWriter: a.Audit,
		Tracer:      tel,
		Exchange:    xch.svc,

		Children: ks, // POST /v1/keys/ephemeral
		CORS:     db, // per-account browser origins
		Cache:    rc,
	})
	if err != nil {
		return nil, err
	}
	// State other replicas change is reloaded when they say so (Redis),
	// and with a shared database also every 30 s, in case a message was
	// missed or there is no Redis.
	var every time.Duration
	if db.Dialect() == "postgres" {
		every = 30 * time.Second
	}
	reloads := map[string]func(context.Context) error{
		budgetsChanged:      a.Budgets.Load,
		providerKeysChanged: a.Secrets.Refresh,
		IssuersChanged:      xch.reload,
	}
	if rc.Live != nil {
		reloads[cacheModelsChanged] = rc.Live.Load
	}
	rl := newReloader(log.Named("reload"), every, reloads)
	a.closers = append(a.closers, rl.close)
	if rdb != nil {
		// Subscribed last: what changed before this point is read fresh
		// from the store by the parts built above.
		fo = newFanout(rdb, log.Named("fanout"), func(msg string) {
			switch {
			case msg == budgetsChanged, msg == providerKeysChanged, msg == IssuersChanged, msg == cacheModelsChanged:
				rl.ask(msg)
			case strings.HasPrefix(msg, accountChanged):
				a.Ledger.Invalidate(strings.TrimPrefix(msg, accountChanged))
			case strings.HasPrefix(msg, cachePurged):
				if t, ok := respcache.ParsePurge(msg); ok && a.Cache != nil {
					a.Cache.PurgeLocal(t)
				}
			default:
				ks.InvalidateHash(msg)
			}
		})
		a.closers = append(a.closers, fo.close)
		a.Secrets.OnChange(fo.publish)
		creditsAdmin.changed = fo.publish
		if rc.Live != nil {
			rc.Live.Changed = func() { fo.publish(cacheModelsChanged) }
		}
	}
	a.Handler = h
	if cfg.Server.MetricsAddr != "" {
		a.Metrics = h.MetricsHandler()
	}
	return a, nil
}

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

func (a *App) closeAll() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

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
	f := &fanout{rdb: rdb, log: log}
	return f.publish, func() { rdb.Close() }, nil
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

// upstreamTransport keeps many idle connections per provider: a gateway
// talks to few hosts at high concurrency.
func upstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4096
	t.MaxIdleConnsPerHost = 1024
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
