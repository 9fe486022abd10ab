package app

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// openExchange builds the token exchange when issuers are configured (nil
// otherwise: POST /v1/auth/token is not served) and starts the sweep of
// exchanged tokens' jtis, stopped by the returned func.
func openExchange(cfg config.Config, db *store.DB, ks *keys.Service, audit *keys.Auditor, client *http.Client, outcome func(string), log *zap.Logger) (*exchange.Service, func(), error) {
	if len(cfg.Auth.Issuers) == 0 {
		return nil, func() {}, nil
	}
	x, err := exchange.New(exchange.Options{Issuers: cfg.Auth.Issuers, Minter: ks, Store: db, Audit: audit, Client: client, OnOutcome: outcome})
	if err != nil {
		return nil, nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sweepJTIs(ctx, db, time.Minute, log)
	}()
	return x, func() { stop(); <-done }, nil
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
func sweepJTIs(ctx context.Context, db *store.DB, every time.Duration, log *zap.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
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
	}
}
