package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
	"github.com/xroute/xroute/providers/catalog"
)

// providerKey is the key xroute presents to the mock; it must never appear
// in a log line or an answer.
const providerKey = "sk-upstream-secret-0123456789abcdef"

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type gwOptions struct {
	mock          mock.Config
	backup        *mock.Config // a second deployment behind the first
	maxBody       int64
	allowedModels []string
	// noProviderKey leaves the primary provider's config key empty, so
	// only vault keys can authenticate to it.
	noProviderKey bool
	// mutate adjusts the config before the app is built.
	mutate func(*config.Config)
	// wrapPrimary wraps the primary mock's handler (to record requests).
	wrapPrimary func(http.Handler) http.Handler
	// strictPrices leaves deployments without prices unpriced, as in
	// production (refused); otherwise the harness marks them free.
	strictPrices bool
	// tracer traces the gateway (nil: tracing off, as by default).
	tracer *telemetry.Tracer
}

// gateway is xroute wired exactly as the binary wires it, in front of
// in-process mock upstreams, with logs captured at debug level.
type gateway struct {
	t       *testing.T
	app     *app.App
	srv     *httptest.Server
	primary *mock.Server
	backup  *mock.Server
	base    string // http://host/v1
	key     string
	logs    *syncBuffer
	closed  bool
	cfg     config.Config // as the app was built with
}

func newGateway(t *testing.T, o gwOptions) *gateway {
	t.Helper()
	if o.mock.APIKey == "" {
		o.mock.APIKey = providerKey
	}
	g := &gateway{t: t, logs: &syncBuffer{}}
	g.primary = mock.New(o.mock)
	var h http.Handler = g.primary
	if o.wrapPrimary != nil {
		h = o.wrapPrimary(h)
	}
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)

	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "xroute.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Anomaly.WebhookSecretFile = filepath.Join(dir, "webhook_secret")
	cfg.Usage.FlushInterval = 10 * time.Millisecond
	if o.maxBody > 0 {
		cfg.Server.MaxBodyBytes = o.maxBody
	}
	cfg.Providers = []config.Provider{{Name: "primary", Type: "openai", BaseURL: up.URL + "/v1", APIKey: o.mock.APIKey}}
	if o.noProviderKey {
		cfg.Providers[0].APIKey = ""
	}
	deps := []config.Deployment{{Provider: "primary", Model: "mock-small"}}
	if o.backup != nil {
		if o.backup.APIKey == "" {
			o.backup.APIKey = providerKey
		}
		g.backup = mock.New(*o.backup)
		bup := httptest.NewServer(g.backup)
		t.Cleanup(bup.Close)
		cfg.Providers = append(cfg.Providers, config.Provider{Name: "backup", Type: "openai", BaseURL: bup.URL + "/v1", APIKey: o.backup.APIKey})
		deps = append(deps, config.Deployment{Provider: "backup", Model: "mock-small-b"})
	}
	cfg.Models = []config.Model{
		{Name: "gpt-4o-mini", Deployments: deps},
		{Name: "gpt-4o", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-large"}}},
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	if !o.strictPrices {
		// Nothing is free unless the operator says so: the harness says
		// so for the deployments a test leaves without prices on the
		// providers it names itself (the catalog prices the presets').
		for i := range cfg.Models {
			for j := range cfg.Models[i].Deployments {
				d := &cfg.Models[i].Deployments[j]
				if _, preset := catalog.PresetByName(d.Provider); !d.Priced() && !preset {
					d.Free = true
				}
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(g.logs), zapcore.DebugLevel))

	a, err := app.Build(context.Background(), cfg, log, app.WithTracer(o.tracer))
	if err != nil {
		t.Fatal(err)
	}
	g.app, g.cfg = a, cfg
	g.srv = httptest.NewServer(a.Handler)
	g.base = g.srv.URL + "/v1"
	g.key, _, err = a.Keys.Create(context.Background(), keys.CreateParams{Name: "test", AllowedModels: o.allowedModels})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	return g
}

// close stops the server and flushes usage records; idempotent.
func (g *gateway) close() {
	if g.closed {
		return
	}
	g.closed = true
	g.srv.Close()
	g.app.Close()
	g.assertNoSecretsInLogs()
}

// usage returns the stored records after flushing the recorder's queue.
func (g *gateway) usage() []books.UsageRecord {
	g.t.Helper()
	if err := g.app.Recorder.Flush(context.Background()); err != nil {
		g.t.Fatal(err)
	}
	recs, err := g.app.DB.ListUsage(context.Background(), books.UsageFilter{})
	if err != nil {
		g.t.Fatal(err)
	}
	return recs
}

func (g *gateway) usageFor(requestID string) books.UsageRecord {
	g.t.Helper()
	var rec books.UsageRecord
	testutil.Eventually(g.t, "the usage record of request "+requestID, func() bool {
		recs, err := g.app.DB.ListUsage(context.Background(), books.UsageFilter{RequestID: requestID})
		if err != nil {
			g.t.Fatal(err)
		}
		if len(recs) == 1 {
			rec = recs[0]
		}
		return len(recs) == 1
	})
	return rec
}

// assertNoSecretsInLogs is the leak check every test runs at cleanup:
// neither the caller's key nor the provider's key, whole or in part,
// appears in any log line.
func (g *gateway) assertNoSecretsInLogs() {
	g.t.Helper()
	logs := g.logs.String()
	for _, secret := range []string{g.key, g.key[3:20], providerKey, providerKey[3:20], "Bearer xr-", "Bearer sk-"} {
		if strings.Contains(logs, secret) {
			g.t.Errorf("log output contains key material %q", secret)
		}
	}
}

func storeFilter(requestID string) books.UsageFilter { return books.UsageFilter{RequestID: requestID} }
