package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
)

// TestHoleBudgetWebhookUnsigned: budget alerts were posted to the webhook
// unsigned. They carry X-Xroute-Signature (t=<unix>,v1=<hex HMAC-SHA256
// of "<t>.<body>">) under the secret of anomaly.webhook_secret_file,
// created 0600 on the first start that has a webhook, and read again,
// unchanged, on the next.
func TestHoleBudgetWebhookUnsigned(t *testing.T) {
	type delivery struct {
		sig, ts string
		body    []byte
	}
	got := make(chan delivery, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Get("X-Xroute-Signature"), r.Header.Get("X-Xroute-Timestamp"), body}
	}))
	defer srv.Close()

	dir := t.TempDir()
	cfg := config.Default().Anomaly
	cfg.Webhook = srv.URL
	cfg.WebhookSecretFile = filepath.Join(dir, "webhook_secret")
	hook, err := newWebhook(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.WebhookSecretFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(cfg.WebhookSecretFile)
	secret := strings.TrimSpace(string(raw))
	if again, err := newWebhook(cfg, zap.NewNop()); err != nil || string(again.secret) != secret {
		t.Fatalf("a restart must read the same secret: %v", err)
	}

	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCredits(billing.NewLedger(db, time.Now), db, auditlog.NewAuditor(db, time.Now), hook, zap.NewNop())
	c.enqueue(billing.Alert{Budget: billing.Budget{Scope: billing.ScopeAccount, ScopeID: "acct_x", Period: billing.Daily, Limit: 100}, Percent: 80, Spent: 80})
	var d delivery
	select {
	case d = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook call")
	}
	c.close()

	ts, mac, ok := strings.Cut(strings.TrimPrefix(d.sig, "t="), ",v1=")
	if !ok || ts != d.ts {
		t.Fatalf("signature header %q, timestamp %q", d.sig, d.ts)
	}
	if unix, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(unix, 0)) > time.Minute {
		t.Fatalf("timestamp %q", ts)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(d.body)
	if want := hex.EncodeToString(m.Sum(nil)); mac != want {
		t.Fatalf("v1 %s, want %s", mac, want)
	}
	if !strings.Contains(string(d.body), `"type":"budget.alert"`) {
		t.Fatalf("body %s", d.body)
	}
}
