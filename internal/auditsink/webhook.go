package auditsink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/xroute/xroute/keys/auditlog"
)

// Headers of a webhook delivery (the first two as on anomaly webhooks).
const (
	HeaderSignature   = "X-Xroute-Signature" // t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
	HeaderTimestamp   = "X-Xroute-Timestamp" // the same t
	HeaderIdempotency = "Idempotency-Key"    // "<first seq>-<last seq>" of the batch
)

// Webhook POSTs batches of JSON lines, signed; any 2xx acknowledges the
// whole batch, anything else (or no answer) is retried.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewWebhook returns a sink posting to url, signing with secret.
func NewWebhook(url string, secret []byte, client *http.Client, now func() time.Time) *Webhook {
	return &Webhook{url: url, secret: secret, client: client, now: now}
}

// Deliver posts rows as one request.
func (w *Webhook) Deliver(ctx context.Context, rows []auditlog.Row) error {
	body := AppendJSONL(nil, rows)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	t := w.now().Unix()
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "xroute-audit-sink")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(t, 10))
	req.Header.Set(HeaderSignature, Sign(w.secret, t, body))
	req.Header.Set(HeaderIdempotency, strconv.FormatInt(rows[0].Seq, 10)+"-"+strconv.FormatInt(rows[len(rows)-1].Seq, 10))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("webhook: the receiver answered %d", resp.StatusCode)
	}
	return nil
}

// Close releases idle connections.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}
