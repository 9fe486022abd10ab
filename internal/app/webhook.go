package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/auditsink"
)

// Webhook signature headers. A receiver recomputes HMAC-SHA256 with the
// shared secret over "<t>.<raw body>", compares it in constant time with
// v1, and refuses a t older than a few minutes (a replay); see README.
const (
	HeaderWebhookSignature = "X-Xroute-Signature" // t=<unix seconds>,v1=<hex HMAC-SHA256>
	HeaderWebhookTimestamp = "X-Xroute-Timestamp" // the same t, for logs and routing
)

// webhook posts signed JSON events (anomaly and budget alerts) to the
// operator's endpoint.
type webhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// newWebhook returns the sender for cfg.Webhook (nil when none is set),
// with the secret from anomaly.webhook_secret or its file, created on
// first use like the pepper file.
func newWebhook(cfg config.Anomaly, log *zap.Logger) (*webhook, error) {
	if cfg.Webhook == "" {
		return nil, nil
	}
	secret, created, err := webhookSecret(cfg)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("generated a webhook signing secret; give it to the webhook's receiver to verify X-Xroute-Signature",
			zap.String("file", cfg.WebhookSecretFile))
	}
	return &webhook{url: cfg.Webhook, secret: secret, client: &http.Client{Timeout: 5 * time.Second}, now: time.Now}, nil
}

// webhookSecret reads the signing secret: the configured value, else the
// file (created with a random secret, mode 0600, when missing).
func webhookSecret(cfg config.Anomaly) (secret []byte, created bool, err error) {
	if cfg.WebhookSecret != "" {
		return []byte(cfg.WebhookSecret), false, nil
	}
	path := cfg.WebhookSecretFile
	if path == "" {
		return nil, false, errors.New("anomaly.webhook_secret_file: webhooks are signed; set it or XROUTE_ANOMALY_WEBHOOK_SECRET")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		rand.Read(raw)
		s := base64.RawURLEncoding.EncodeToString(raw)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return webhookSecret(cfg) // another process created it first
		}
		if err != nil {
			return nil, false, fmt.Errorf("anomaly.webhook_secret_file: create %s: %w", path, err)
		}
		_, werr := f.WriteString(s + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return nil, false, fmt.Errorf("anomaly.webhook_secret_file: write %s: %w", path, werr)
		}
		return []byte(s), true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("anomaly.webhook_secret_file: read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(data))
	if len(s) < 16 {
		return nil, false, fmt.Errorf("anomaly.webhook_secret_file: %s holds fewer than 16 characters", path)
	}
	return []byte(s), false, nil
}

// signWebhook is the X-Xroute-Signature value of body sent at t.
func signWebhook(secret []byte, t int64, body []byte) string { return auditsink.Sign(secret, t, body) }

// post sends body, signed, and reports a transport failure or a non-2xx
// answer.
func (w *webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	t := w.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "xroute-webhook")
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(t, 10))
	req.Header.Set(HeaderWebhookSignature, signWebhook(w.secret, t, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("the webhook answered %d", resp.StatusCode)
	}
	return nil
}
