package app

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// IssuersChanged is the fan-out message (the CLI announces it too) of a change to the trusted
// issuers (admin API or CLI): every replica reads them again.
const IssuersChanged = "issuers"

// issuerPoll is how often every replica reads the stored issuers even
// without a message: a replica without Redis, or one that missed the
// message, trusts a change within this time.
const issuerPoll = 5 * time.Second

// exchangeParts are the token exchange and the registry of its issuers.
type exchangeParts struct {
	svc *exchange.Service
	reg *exchange.Registry
	// reload reads the issuers (config and stored) and swaps them into the
	// service; calls are serialised, so an older read never lands last.
	reload func(context.Context) error
	stop   func()
}

// openExchange builds the token exchange, with the config file's issuers
// and those stored through the admin API or the CLI, and starts the sweep
// of exchanged tokens' jtis and the poll of the stored issuers, stopped by
// stop. POST /v1/auth/token is served even with no issuer yet: one may be
// added through the admin API at any time. announce (may be nil) tells
// the other replicas that the issuers changed.
func openExchange(ctx context.Context, cfg config.Config, db *store.DB, ks *keys.Service, audit *auditlog.Auditor, client *http.Client, outcome func(string), log *zap.Logger, poll time.Duration, announce func()) (*exchangeParts, error) {
	x, err := exchange.New(exchange.Options{Issuers: cfg.Auth.Issuers, Minter: ks, Store: db, Audit: audit, Client: client, OnOutcome: outcome})
	if err != nil {
		return nil, err
	}
	p := &exchangeParts{svc: x}
	var mu sync.Mutex
	p.reload = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		list, skipped, err := p.reg.Active(ctx)
		if err != nil {
			return err
		}
		for _, e := range skipped {
			log.Warn("a stored trusted issuer is not trusted", zap.Error(e))
		}
		x.SetIssuers(list)
		return nil
	}
	p.reg = exchange.NewRegistry(cfg.Auth.Issuers, db, audit, time.Now, func() {
		// In force here before the admin API answers; the others are told.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.reload(rctx); err != nil {
			log.Warn("reloading trusted issuers after a change failed; retried by the poll", zap.Error(err))
		}
		if announce != nil {
			announce()
		}
	})
	if err := p.reload(ctx); err != nil {
		return nil, fmt.Errorf("trusted issuers: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sweepJTIs(bg, db, time.Minute, log)
	}()
	go func() {
		defer wg.Done()
		pollIssuers(bg, p.reload, poll, log)
	}()
	p.stop = func() { stop(); wg.Wait() }
	return p, nil
}

// pollIssuers reloads the trusted issuers every interval until ctx ends.
func pollIssuers(ctx context.Context, reload func(context.Context) error, interval time.Duration, log *zap.Logger) {
	repeatEvery(ctx, interval, func(ctx context.Context) {
		if err := reload(ctx); err != nil && ctx.Err() == nil {
			log.Warn("reloading trusted issuers failed; the last ones read stay in force", zap.Error(err))
		}
	})
}

// exchangedKeyGrace is how long an exchanged key's row outlives its
// expiry: long enough that the request log and the admin API still name
// the key of a recent request, short enough that a busy exchange (one
// row per token) does not grow api_keys without bound.
const exchangedKeyGrace = 24 * time.Hour

// sweepJTIs deletes the jtis of identity tokens past their expiry (they
// can no longer be presented, so their replay needs no memory), the
// refresh tokens of families that have ended, and the rows of exchanged
// keys expired more than exchangedKeyGrace ago. The key sweep writes no
// audit row: the key's creation is audited (key.created, token.exchanged)
// and its expiry is in that row; deleting an unusable row is
// housekeeping, logged with its count.
func sweepJTIs(ctx context.Context, db *store.DB, interval time.Duration, log *zap.Logger) {
	repeatEvery(ctx, interval, func(ctx context.Context) {
		if _, err := db.SweepJTIs(ctx, time.Now(), 1000); err != nil && ctx.Err() == nil {
			log.Warn("sweeping exchanged token ids", zap.Error(err))
		}
		if _, err := db.SweepRefreshTokens(ctx, time.Now(), 1000); err != nil && ctx.Err() == nil {
			log.Warn("sweeping ended refresh token families", zap.Error(err))
		}
		n, err := db.SweepExchangedKeys(ctx, time.Now().Add(-exchangedKeyGrace), 500)
		if err != nil && ctx.Err() == nil {
			log.Warn("sweeping expired exchanged keys", zap.Error(err))
		}
		if n > 0 {
			log.Info("swept expired exchanged keys", zap.Int("keys", n))
		}
	})
}
