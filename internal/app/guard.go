package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/keys/limits"
)

// limiter is a rate limiter the guard sweeps: local, or shared in Redis.
type limiter interface {
	httpapi.RateLimiter
	Sweep() int
}

// guard owns the token-control machinery that runs beside the request
// path: rate limiters, the failed-auth throttle, the anomaly detector and
// the worker that acts on its alerts (audit, webhook, suspension). It owns
// two goroutines, plus the lease refresher of the shared concurrency cap
// when Redis is configured, all stopped by close.
type guard struct {
	limits   *httpapi.Limits
	requests limiter
	tokens   limiter
	// conc is the concurrency cap shared through Redis; nil when the cap
	// is per replica (it then owns no goroutine).
	conc     *limits.RedisConcurrency
	throttle *limits.AuthThrottle
	burst    int // auth.failed_auth_burst
	detector *auditlog.Detector
	cfg      config.Anomaly
	keys     *keys.Service
	audit    *auditlog.Auditor
	log      *zap.Logger
	// hook signs and sends the webhook action's alerts (nil: no webhook).
	hook *webhook

	alerts chan auditlog.Alert
	stop   chan struct{}
	wg     sync.WaitGroup
}

// newGuard builds the limiters (shared through rdb when it is set, so a
// key's limits hold across replicas, each call bounded by redis.timeout)
// and starts the guard's goroutines.
// hook (nil: none) sends the webhook action's alerts, signed.
func newGuard(cfg config.Config, ks *keys.Service, audit *auditlog.Auditor, rdb *redis.Client, hook *webhook, log *zap.Logger) *guard {
	var requests, tokens limiter = limits.NewLimiter(time.Now), limits.NewLimiter(time.Now)
	var conc httpapi.ConcurrencyLimiter = limits.NewConcurrency()
	var shared *limits.RedisConcurrency
	if rdb != nil {
		timeout := limits.WithRedisTimeout(cfg.Redis.Timeout)
		requests = limits.NewRedisLimiter(rdb, "xroute:rl:req:", limits.NewLimiter(time.Now), log, timeout)
		tokens = limits.NewRedisLimiter(rdb, "xroute:rl:tok:", limits.NewLimiter(time.Now), log, timeout)
		shared = limits.NewRedisConcurrency(rdb, "xroute:conc:", log, timeout)
		conc = shared
	}
	g := &guard{
		requests: requests,
		tokens:   tokens,
		conc:     shared,
		throttle: limits.NewAuthThrottle(cfg.Auth.FailedAuthBurst, cfg.Auth.FailedAuthMaxBackoff, time.Now),
		burst:    cfg.Auth.FailedAuthBurst,
		cfg:      cfg.Anomaly,
		keys:     ks,
		audit:    audit,
		log:      log,
		hook:     hook,
		alerts:   make(chan auditlog.Alert, 1024),
		stop:     make(chan struct{}),
	}
	g.limits = &httpapi.Limits{Requests: g.requests, Tokens: g.tokens, Concurrency: conc,
		DefaultRPM: cfg.Limits.RPM, DefaultTPM: cfg.Limits.TPM, DefaultConc: cfg.Limits.MaxConcurrent}
	if cfg.Anomaly.Enabled {
		g.detector = auditlog.NewDetector(cfg.Anomaly, time.Now)
	}
	g.wg.Add(2)
	go g.sweep()
	go g.act()
	return g
}

// observe feeds the detector from the request path; it never blocks: if
// the alert queue is full the alert is logged and dropped.
func (g *guard) observe(o httpapi.Observation) {
	if g.detector == nil {
		return
	}
	ip := ""
	if o.IP.IsValid() {
		ip = o.IP.String()
	}
	for _, a := range g.detector.Observe(auditlog.Observation{KeyID: o.KeyID, AccountID: o.AccountID, IP: ip, Tokens: o.Tokens, Status: o.Status}) {
		select {
		case g.alerts <- a:
		default:
			g.log.Warn("anomaly alert queue full; alert only logged", zap.String("key_id", a.KeyID), zap.String("kind", a.Kind))
		}
	}
}

// guessing raises an auth_guessing alert for an address whose failed
// authentications started a block of the throttle (once per episode); it
// never blocks.
func (g *guard) guessing(ip netip.Addr) {
	a := auditlog.Alert{Kind: auditlog.AlertAuthGuessing, IP: ip.String(), At: time.Now(),
		Detail: fmt.Sprintf("%d failed authentications within a minute from %s", g.burst, ip)}
	if !g.cfg.Enabled {
		g.log.Warn("failed authentications burst", zap.String("ip", a.IP), zap.String("detail", a.Detail))
		return
	}
	select {
	case g.alerts <- a:
	default:
		g.log.Warn("anomaly alert queue full; alert only logged", zap.String("ip", a.IP), zap.String("kind", a.Kind))
	}
}

// act handles alerts off the request path, as config.Anomaly.Action says.
func (g *guard) act() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case a := <-g.alerts:
			g.handle(a)
		}
	}
}

func (g *guard) handle(a auditlog.Alert) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.log.Warn("anomaly", zap.String("key_id", a.KeyID), zap.String("account_id", a.AccountID), zap.String("ip", a.IP), zap.String("kind", a.Kind), zap.String("detail", a.Detail))
	subject := a.KeyID
	if subject == "" {
		subject = "ip:" + a.IP // an address, not a key (auth_guessing)
	}
	if err := g.audit.Record(ctx, auditlog.Event{Kind: "anomaly." + a.Kind, Actor: "system", AccountID: a.AccountID, Subject: subject,
		Details: map[string]any{"detail": a.Detail, "action": g.cfg.Action}}); err != nil {
		g.log.Error("audit anomaly", zap.Error(err))
	}
	switch g.cfg.Action {
	case "webhook":
		if g.hook == nil {
			return
		}
		body, _ := json.Marshal(map[string]any{"type": "anomaly", "kind": a.Kind, "key_id": a.KeyID, "account_id": a.AccountID, "ip": a.IP, "detail": a.Detail, "at": a.At})
		if err := g.hook.post(ctx, body); err != nil {
			g.log.Error("anomaly webhook", zap.Error(err))
		}
	case "suspend":
		if a.KeyID == "" {
			return // an address guessing keys has no key to suspend; the throttle slows it
		}
		if err := g.keys.Suspend(ctx, a.KeyID, "system:anomaly", "anomaly: "+a.Kind+": "+a.Detail); err != nil {
			g.log.Error("suspend after anomaly", zap.String("key_id", a.KeyID), zap.Error(err))
		}
	}
}

// sweep drops idle limiter, throttle and detector entries every minute so
// memory stays bounded by active keys and addresses.
func (g *guard) sweep() {
	defer g.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.requests.Sweep()
			g.tokens.Sweep()
			g.throttle.Sweep()
			if g.detector != nil {
				g.detector.Sweep()
			}
		}
	}
}

func (g *guard) close() {
	close(g.stop)
	g.wg.Wait()
	if g.conc != nil {
		g.conc.Close()
	}
}

// redisFallbacks counts limit decisions taken by this replica alone
// because Redis did not answer (0 without Redis).
func (g *guard) redisFallbacks() float64 {
	var n int64
	for _, l := range []limiter{g.requests, g.tokens} {
		if r, ok := l.(*limits.RedisLimiter); ok {
			n += r.Fallbacks()
		}
	}
	if g.conc != nil {
		n += g.conc.Fallbacks()
	}
	return float64(n)
}
