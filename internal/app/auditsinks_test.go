package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
)

// TestAuditSinkOffTheRequestPath: with the sink's receiver hanging, an
// admin action (creating a key through the admin API) completes at once;
// once the receiver answers again it gets the action's audit row, and
// /metrics shows the sink's series.
func TestAuditSinkOffTheRequestPath(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unhang := func() { once.Do(func() { close(release) }) }
	defer unhang()
	got := make(chan string, 100)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		body, _ := io.ReadAll(r.Body)
		got <- string(body)
	}))
	defer recv.Close()

	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Server.Metrics = true
	cfg.Audit.Sinks = []config.AuditSink{{Name: "siem", Type: "webhook", URL: recv.URL, Secret: "0123456789abcdef-secret",
		PollInterval: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}}
	a, err := Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	defer func() { unhang(); srv.Close(); a.Close() }()
	admin, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "ops", Kind: keys.KindAdmin, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}

	// The receiver hangs: the admin API answers anyway.
	req, _ := http.NewRequest("POST", srv.URL+"/admin/v1/keys", strings.NewReader(`{"name":"while-the-sink-hangs"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("creating a key while the sink hangs: %d", resp.StatusCode)
	}

	unhang()
	deadline := time.After(30 * time.Second) // a hang guard
	for delivered := false; !delivered; {
		select {
		case body := <-got:
			delivered = strings.Contains(body, "while-the-sink-hangs")
		case <-deadline:
			t.Fatal("the key's audit row never reached the sink")
		}
	}
	mreq, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer "+admin)
	mresp, err := http.DefaultClient.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, series := range []string{`xroute_audit_sink_lag{sink="siem"}`, `xroute_audit_sink_errors_total{sink="siem"}`} {
		if !strings.Contains(string(m), series) {
			t.Errorf("/metrics (%d) lacks %s", mresp.StatusCode, series)
		}
	}
}

// TestAuditSinkSecretRedacted: an audit sink's signing secret is among
// the config's secrets the redactor takes out of every log line.
func TestAuditSinkSecretRedacted(t *testing.T) {
	cfg := config.Default()
	cfg.Audit.Sinks = []config.AuditSink{{Name: "siem", Type: "webhook", URL: "https://siem.example", Secret: "sink-secret-0123456789"}}
	red := keys.NewRedactor()
	red.Set("config", configSecrets(cfg, func(string) string { return "" })...)
	if out := red.Redact("posting with sink-secret-0123456789 failed"); strings.Contains(out, "sink-secret") {
		t.Fatalf("the sink's secret survives redaction: %q", out)
	}
}
