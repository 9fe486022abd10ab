package httpapi

import (
	"time"

	"go.uber.org/zap"
)

// base is what the planes share: the config they were built from (with
// its defaults applied), read where it is used rather than copied field
// by field, and the few values derived from it once. Its methods read
// only the shared top of the config; each plane reads its own part
// (Config.Model, Config.Admin) through its own field. The middleware every
// request passes (begin, authenticate, the store gate, tracing, body
// reading) hangs off it, since both the model and the admin API use it.
type base struct {
	cfg     *Config
	log     *zap.Logger
	metrics *metrics
	// captureOn caches the accounts' capture settings (nil: no capture):
	// the model API reads it, the admin API invalidates it on a change.
	captureOn *captureSettings
	// corsOn caches the accounts' browser origins (nil: no CORS): the model
	// API reads it, the admin API invalidates it on a change.
	corsOn *corsOrigins
}

// newBase applies cfg's defaults and derives what needs deriving.
func newBase(cfg Config) (*base, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestLog == nil {
		cfg.Captures = nil // captures are only written where settings can be read
	}
	b := &base{cfg: &cfg, log: cfg.Log}
	if cfg.CORS != nil {
		b.corsOn = &corsOrigins{src: cfg.CORS, log: cfg.Log}
	}
	if cfg.Captures != nil {
		b.captureOn = &captureSettings{src: cfg.RequestLog, log: cfg.Log}
	}
	m, err := newMetrics(cfg.Metrics, cfg.Router)
	if err != nil {
		return nil, err
	}
	b.metrics = m
	return b, nil
}

// now is the config's clock.
func (s *base) now() time.Time { return s.cfg.Now() }
