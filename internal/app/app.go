// Package app wires xroute's parts together from a config. The binary and
// the end-to-end tests use the same wiring.
package app

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/builtin"
	"github.com/xroute/xroute/router"
)

// App is the wired gateway.
type App struct {
	Handler  http.Handler
	DB       *store.DB
	Keys     *keys.Service
	Recorder *billing.Recorder
	log      *zap.Logger
	client   *http.Client
}

// Build wires every part of the gateway from config. Close releases it.
func Build(ctx context.Context, cfg config.Config, log *zap.Logger) (*App, error) {
	db, err := store.OpenSQLite(ctx, cfg.Database.Path)
	if err != nil {
		return nil, err
	}
	ks, err := OpenKeys(db, cfg, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	client := &http.Client{Transport: upstreamTransport()}
	reg := builtin.Registry()
	adapters := make(map[string]providers.Provider, len(cfg.Providers))
	for _, pc := range cfg.Providers {
		a, err := reg.New(pc, providers.Deps{Client: client, Getenv: os.Getenv})
		if err != nil {
			ks.Close()
			db.Close()
			return nil, err
		}
		adapters[pc.Name] = a
	}
	rt, err := router.New(cfg, adapters, log.Named("router"), time.Now)
	if err != nil {
		ks.Close()
		db.Close()
		return nil, err
	}
	rec := billing.NewRecorder(db, log.Named("usage"), cfg.Usage.BatchSize, cfg.Usage.QueueSize, cfg.Usage.FlushInterval)
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
	})
	if err != nil {
		rec.Close(context.Background())
		ks.Close()
		db.Close()
		return nil, err
	}
	return &App{Handler: h, DB: db, Keys: ks, Recorder: rec, log: log, client: client}, nil
}

// Close flushes queued usage records and closes the store. Call it after
// the HTTP server has stopped.
func (a *App) Close() {
	log := a.log
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Recorder.Close(ctx); err != nil {
		log.Error("flushing usage records", zap.Error(err))
	}
	a.Keys.Close()
	a.client.CloseIdleConnections()
	if err := a.DB.Close(); err != nil {
		log.Error("closing database", zap.Error(err))
	}
}

// OpenKeys builds the key service on db with the configured peppers.
func OpenKeys(db *store.DB, cfg config.Config, onEvent func(context.Context, keys.LifecycleEvent)) (*keys.Service, error) {
	peppers, err := keys.LoadPeppers(cfg.Auth)
	if err != nil {
		return nil, err
	}
	return keys.NewService(db, keys.Options{Peppers: peppers, CacheTTL: cfg.Auth.CacheTTL, Now: time.Now, OnEvent: onEvent})
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
