package app

import (
	"context"
	"fmt"
	"net/http"
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
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/vault"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/builtin"
	"github.com/xroute/xroute/providers/catalog"
	"github.com/xroute/xroute/router"
)

// Build wires every part of the gateway from config, in stages: each
// stage is a function that takes what the earlier ones built and returns
// its own parts, fully built (nothing is set on a part after its
// constructor). Announcements to the other replicas go out through a
// publisher built with Redis, before everything that announces; the
// subscriber that reloads is built last, after everything it reloads.
// Close releases it all.
func Build(ctx context.Context, cfg config.Config, log *zap.Logger, opts ...Option) (_ *App, err error) {
	// Every log line of the gateway, and every upstream error text before
	// it reaches a caller, passes the redactor: provider keys (config and
	// vault) and anything shaped like a credential are replaced.
	red := keys.NewRedactor()
	log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return keys.RedactCore(c, red) }))
	a := &App{}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	cl := &a.closers
	st, err := openStores(ctx, cfg, cl, log)
	if err != nil {
		return nil, err
	}
	rdb, err := openRedis(cfg, cl)
	if err != nil {
		return nil, err
	}
	announce := newPublisher(rdb, log.Named("fanout"))
	ks, err := OpenKeys(st.db, cfg, AuditHook(st.audit, log), announce)
	if err != nil {
		return nil, err
	}
	cl.add(ks.Close)

	cat, err := loadCatalog(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	cfg = withCatalog(cfg, cat, os.Getenv)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	red.Set("config", configSecrets(cfg, os.Getenv)...)
	tel, err := openTelemetry(ctx, cfg, cl, log, opts)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: tel.Transport(upstreamTransport(cfg.Router.IdleConnsPerHost))}
	cl.add(client.CloseIdleConnections)
	rs, err := buildRouting(ctx, cfg, cat, st, rdb, client, tel, red, announce, cl, log)
	if err != nil {
		return nil, err
	}
	bl, err := buildBilling(ctx, cfg, st, red, announce, cl, log)
	if err != nil {
		return nil, err
	}
	g := newGuard(cfg, ks, st.audit, rdb, bl.hook, log.Named("guard"))
	cl.add(g.close)
	mt := buildMetrics(cfg, st, bl, rs.router, rdb, g)
	o := options{issuerPoll: issuerPoll}
	for _, opt := range opts {
		opt(&o)
	}
	// Identity tokens for short-lived keys; the issuers' discovery and
	// JWKS are fetched with a client of their own (not the upstream one).
	xch, err := openExchange(ctx, cfg, st.db, ks, st.audit, &http.Client{Timeout: 10 * time.Second}, mt.exchangeOutcome, log.Named("exchange"), o.issuerPoll,
		func() { announce(IssuersChanged) })
	if err != nil {
		return nil, err
	}
	cl.add(xch.stop)
	rc, err := newResponseCache(ctx, cfg, st.db, rdb, mt.config.Registry, log.Named("cache"), announce)
	if err != nil {
		return nil, err
	}
	if rc.Cache != nil {
		cl.add(rc.Cache.Close)
	}
	h, err := buildHTTP(cfg, st, ks, rs, bl, g, mt, xch, rc, tel, log)
	if err != nil {
		return nil, err
	}
	if err := subscribe(cfg, st.db, rdb, ks, rs, bl, xch, rc, cl, log); err != nil {
		return nil, err
	}
	*a = App{Handler: h, DB: st.db, Keys: ks, Audit: st.audit, Secrets: rs.secrets, Recorder: bl.recorder, Captures: bl.captures,
		Cache: rc.Cache, Ledger: bl.ledger, Budgets: bl.credits.budgets, Issuers: xch.reg, closers: a.closers, upstream: client}
	if cfg.Server.MetricsAddr != "" {
		a.Metrics = h.MetricsHandler()
	}
	return a, nil
}

// stores are the database, the vault and the audit log.
type stores struct {
	db    *store.DB
	vault *vault.Vault
	sinks *auditSinks
	audit *auditlog.Auditor
}

// openStores opens the store, then the vault: its keys make the audit
// log and the ledger tamper-evident, and everything after this may write
// to them.
func openStores(ctx context.Context, cfg config.Config, cl *closers, log *zap.Logger) (stores, error) {
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return stores{}, err
	}
	cl.add(func() {
		if err := db.Close(); err != nil {
			log.Error("closing database", zap.Error(err))
		}
	})
	vault, err := OpenVault(ctx, db, cfg.Vault, log)
	if err != nil {
		return stores{}, err
	}
	// Audit sinks before the auditor: every row it appends nudges them.
	sinks, err := startAuditSinks(cfg.Audit, db, log.Named("audit_sinks"))
	if err != nil {
		return stores{}, err
	}
	cl.add(sinks.shippers.Close)
	audit := keyChainsOn(db, sinks.store(db), vault)
	if err := SealChains(ctx, db, vault, audit, log); err != nil {
		return stores{}, err
	}
	return stores{db: db, vault: vault, sinks: sinks, audit: audit}, nil
}

// openRedis opens the Redis client redis.url names (nil: none).
func openRedis(cfg config.Config, cl *closers) (*redis.Client, error) {
	if cfg.Redis.URL == "" {
		return nil, nil
	}
	opts, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	// Per-call deadlines (redis.timeout, 200 ms by default) must bound reads from a
	// Redis that accepts connections but never answers.
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	cl.add(func() { rdb.Close() })
	return rdb, nil
}

// routing is the router and the provider keys that fill its pools.
type routing struct {
	router  *router.Router
	secrets *Secrets
}

// buildRouting builds the providers' adapters, the router over them and
// the provider-key manager, and loads the stored keys into the pools.
func buildRouting(ctx context.Context, cfg config.Config, cat *catalog.Catalog, st stores, rdb *redis.Client, client *http.Client, tel *telemetry.Tracer,
	red *keys.Redactor, announce func(string), cl *closers, log *zap.Logger) (routing, error) {
	reg := builtin.Registry()
	build := func(pc config.Provider) (providers.Provider, error) {
		return reg.New(pc, providers.Deps{Client: client, Getenv: os.Getenv})
	}
	adapters := make(map[string]providers.Provider, len(cfg.Providers))
	for _, pc := range cfg.Providers {
		ad, err := build(pc)
		if err != nil {
			return routing{}, err
		}
		adapters[pc.Name] = ad
	}
	own, err := priced(cfg, cat)
	if err != nil {
		return routing{}, err
	}
	rejected := newRejectedKeys(st.vault, st.db, st.audit, announce, log.Named("secrets"))
	ropts := []router.Option{router.WithRouting(cfg.Routing), router.WithStrategies(router.BuiltinStrategies()), router.WithRedactor(red),
		router.WithTracer(tel.Tracer()), router.WithOnRejected(rejected.disable)}
	if rdb != nil {
		ropts = append(ropts, router.WithAffinityRedis(rdb, cfg.Redis.Timeout)) // session pins shared by the replicas
	}
	rt, err := router.New(cfg, adapters, log.Named("router"), time.Now, catalogLookup(cat, own, cfg), ropts...)
	if err != nil {
		return routing{}, err
	}
	cl.add(rt.Close) // key probes in flight
	warnUnpriced(rt, log)
	sec := NewSecrets(cfg, SecretsDeps{Vault: st.vault, DB: st.db, Audit: st.audit, Router: rt, Build: build, Redact: red,
		Announce: announce, Log: log.Named("secrets")})
	if err := sec.ReloadAll(ctx); err != nil {
		return routing{}, err
	}
	return routing{router: rt, secrets: sec}, nil
}

// billingParts meter, hold and record what requests cost.
type billingParts struct {
	health       *storeHealth
	recorder     *billing.Recorder
	ledger       *billing.Ledger
	credits      *credits
	creditsAdmin *CreditsAdmin
	captures     *billing.Captures
	hook         *webhook
}

// buildBilling builds the usage recorder (and the store's outage monitor
// that reads it), the ledger, budgets and credits, the request captures
// and the sweeps of what expires.
func buildBilling(ctx context.Context, cfg config.Config, st stores, red *keys.Redactor, announce func(string), cl *closers, log *zap.Logger) (billingParts, error) {
	db := st.db
	spool, err := RecoverUsage(ctx, db, SpoolDir(cfg), log, billing.WithSpoolLimit(cfg.Usage.SpoolMaxBytes), billing.WithSpoolLogger(log.Named("usage")))
	if err != nil {
		return billingParts{}, err
	}
	// Store outage: the monitor gates new requests while the database is
	// unreachable (pings, and the recorder's own failures).
	state := newStoreState(log.Named("store"))
	rec := billing.NewRecorder(db, log.Named("usage"), cfg.Usage.BatchSize, cfg.Usage.QueueSize, cfg.Usage.FlushInterval,
		billing.WithSpool(spool), billing.WithOnOutage(state.markDown))
	health := newStoreHealth(state, db.Ping, rec, time.Second, time.Second)
	health.start()
	cl.add(health.close)
	cl.add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			log.Error("flushing usage records", zap.Error(err))
		}
	})
	var ledgerOpts []billing.LedgerOption
	var budgetOpts []billing.BudgetsOption
	if db.Shared() {
		// Several replicas spend the same accounts: holds live in the
		// shared database, and any replica frees those of a dead one.
		sh := billing.NewSharedHolds(db, cfg.Database.HoldTTL, log.Named("holds"))
		ledgerOpts = append(ledgerOpts, billing.WithHolds(sh), billing.WithMultiplierTTL(30*time.Second))
		goUntilClose(cl, func(ctx context.Context) { sh.Sweep(ctx, min(cfg.Database.HoldTTL/4, 30*time.Second)) })
		// Other replicas spend too: re-read budgets' spend every second.
		budgetOpts = append(budgetOpts, billing.WithSpendRefresh(time.Second))
	}
	ledger := billing.NewLedger(db, time.Now, ledgerOpts...)
	hook, err := newWebhook(cfg.Anomaly, log)
	if err != nil {
		return billingParts{}, err
	}
	cr := newCredits(ledger, db, st.audit, hook, log.Named("credits"), budgetOpts...)
	cl.add(cr.close)
	goUntilClose(cl, func(ctx context.Context) {
		sweepResponses(ctx, db, cfg.Responses.SweepInterval, log.Named("responses"))
	})
	// Request captures: written off the request path, redacted first (the
	// redactor knows the config's and the vault's provider keys); expired
	// ones are swept like stored responses.
	captures := billing.NewCaptures(db, red.RedactBytes, log.Named("captures"), 256)
	cl.add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := captures.Close(ctx); err != nil {
			log.Error("flushing request captures", zap.Error(err))
		}
	})
	goUntilClose(cl, func(ctx context.Context) {
		sweepCaptures(ctx, db, cfg.Responses.SweepInterval, log.Named("captures"))
	})
	return billingParts{health: health, recorder: rec, ledger: ledger, credits: cr,
		creditsAdmin: NewCreditsAdmin(ledger, cr.budgets, st.audit, announce), captures: captures, hook: hook}, nil
}

// goUntilClose runs fn on a goroutine of its own until the app closes;
// closing waits for it to return.
func goUntilClose(cl *closers, fn func(ctx context.Context)) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	cl.add(func() { stop(); <-done })
}

// metricsParts are the gateway's own Prometheus registry (never the
// global default one) and the hooks that count into it.
type metricsParts struct {
	config          httpapi.MetricsConfig // zero: metrics off
	exchangeOutcome func(string)          // nil: metrics off
}

func buildMetrics(cfg config.Config, st stores, bl billingParts, rt *router.Router, rdb *redis.Client, g *guard) metricsParts {
	if !cfg.Server.Metrics {
		return metricsParts{}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(bl.health.collectors()...) // store outage: xroute_store_up, xroute_usage_spool_*
	// xroute_audit_sink_lag, xroute_audit_sink_errors_total
	reg.MustRegister(st.sinks.metrics.Collectors()...)
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
	return metricsParts{
		config: httpapi.MetricsConfig{Registry: reg, Deployments: rt.Deployments, UsageQueue: bl.recorder.Pending,
			Token: cfg.Server.MetricsToken, Elsewhere: cfg.Server.MetricsAddr != ""},
		exchangeOutcome: func(o string) { exchanges.WithLabelValues(o).Inc() },
	}
}

// buildHTTP builds the HTTP handler over the parts.
func buildHTTP(cfg config.Config, st stores, ks *keys.Service, rs routing, bl billingParts, g *guard, mt metricsParts,
	xch *exchangeParts, rc httpapi.CacheConfig, tel *telemetry.Tracer, log *zap.Logger) (*httpapi.Server, error) {
	db := st.db
	usageAdmin, usageCaller := httpapi.UsageRoutes(billing.NewReporter(db, time.Now))
	gin.SetMode(gin.ReleaseMode)
	return httpapi.New(httpapi.Config{
		Keys:            ks,
		Router:          rs.router,
		Log:             log,
		Health:          db.Ping,
		TrustedProxies:  cfg.Server.TrustedProxies,
		Throttle:        g.throttle,
		Guessing:        g.guessing,
		Observe:         g.observe,
		Credits:         bl.creditsAdmin,
		Metrics:         mt.config,
		StoreHealth:     bl.health, // store outage: 503 store_unavailable
		MaxBodyBytes:    cfg.Server.MaxBodyBytes,
		BodyReadTimeout: cfg.Server.BodyReadTimeout,
		WriteTimeout:    cfg.Server.WriteTimeout,
		RequestLog:      db,
		Captures:        bl.captures,
		Tracer:          tel,
		CORS:            db, // per-account browser origins
		Cache:           rc,

		Model: httpapi.ModelConfig{
			Usage:             bl.recorder,
			RequestTimeout:    cfg.Server.RequestTimeout,
			Limits:            g.limits,
			Meter:             childMeter{credits: bl.credits, keys: ks},
			CallerRoutes:      []httpapi.Mounter{usageCaller},
			Responses:         db,
			ResponseRetention: cfg.Responses.Retention,
			Tokens:            bl.credits,
			StreamKeepAlive:   cfg.Server.StreamKeepAlive,
			Exchange:          xch.svc,
			Children:          ks, // POST /v1/keys/ephemeral
		},
		Admin: httpapi.AdminConfig{
			Keys:            ks,
			Routes:          []httpapi.Mounter{usageAdmin, httpapi.DeploymentsRoute(rs.router), httpapi.AuditExportRoute(db), httpapi.IssuersRoute(xch.reg)},
			RotationOverlap: cfg.Auth.RotationOverlap,
			AuditLog:        st.audit,
			ProviderKeys:    rs.secrets,
			AuditWriter:     st.audit,
		},
	})
}

// subscribe reloads the state other replicas change when they say so
// (Redis), and with a shared store also every 30 s, in case a message
// was missed or there is no Redis. It is built last: what changed before
// this point is read fresh from the store by the parts built above.
func subscribe(cfg config.Config, db *store.DB, rdb *redis.Client, ks *keys.Service, rs routing, bl billingParts, xch *exchangeParts,
	rc httpapi.CacheConfig, cl *closers, log *zap.Logger) error {
	var every time.Duration
	if db.Shared() {
		every = 30 * time.Second
	}
	reloads := map[string]func(context.Context) error{
		budgetsChanged:      bl.credits.budgets.Load,
		providerKeysChanged: rs.secrets.Refresh,
		IssuersChanged:      xch.reload,
	}
	if rc.Live != nil {
		reloads[cacheModelsChanged] = rc.Live.Load
	}
	rl := newReloader(log.Named("reload"), every, reloads)
	cl.add(rl.close)
	if rdb == nil {
		return nil
	}
	fo := newFanout(rdb, log.Named("fanout"), func(msg string) {
		switch {
		case msg == budgetsChanged, msg == providerKeysChanged, msg == IssuersChanged, msg == cacheModelsChanged:
			rl.ask(msg)
		case strings.HasPrefix(msg, accountChanged):
			bl.ledger.Invalidate(strings.TrimPrefix(msg, accountChanged))
		case strings.HasPrefix(msg, cachePurged):
			if t, ok := respcache.ParsePurge(msg); ok && rc.Cache != nil {
				rc.Cache.PurgeLocal(t)
			}
		default:
			ks.InvalidateHash(msg)
		}
	})
	cl.add(fo.close)
	return nil
}
