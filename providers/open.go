package providers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// OpenStream sends a streaming request and waits for the response headers.
// The per-attempt timeout covers only that wait: a stream that started may
// run as long as the caller's context allows. When the timeout fires the
// error is a retryable timeout (context.DeadlineExceeded), not the
// cancellation it caused. A non-200 answer is read (up to 1 MiB) and
// turned into an error by upstreamErr. On success the caller owns the
// body and must call the returned cancel when done with the stream.
func OpenStream(ctx context.Context, client *http.Client, provider string, timeout time.Duration,
	build func(ctx context.Context) (*http.Request, error),
	upstreamErr func(resp *http.Response, body []byte) error,
) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, cancel)
	}
	req, err := build(ctx)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s: %w", provider, err)
	}
	resp, err := client.Do(req)
	if timer != nil && !timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		err = fmt.Errorf("no response headers within %s: %w", timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, nil, TransportError(provider, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		return nil, nil, upstreamErr(resp, body)
	}
	return resp, cancel, nil
}
