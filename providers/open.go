package providers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"
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

// MaxResponseBytes bounds a non-streaming answer read into memory.
const MaxResponseBytes = 32 << 20

// Send performs a non-streaming call within the per-attempt timeout and
// returns the 200 answer's body (at most MaxResponseBytes). A non-200
// answer becomes upstreamErr's error; a failure to get an answer is a
// retryable *Error.
func Send(ctx context.Context, client *http.Client, provider string, timeout time.Duration,
	build func(ctx context.Context) (*http.Request, error),
	upstreamErr func(resp *http.Response, body []byte) error,
) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := build(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", provider, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, TransportError(provider, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, TransportError(provider, fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, upstreamErr(resp, body)
	}
	if len(body) > MaxResponseBytes {
		return nil, &Error{Provider: provider, Status: http.StatusBadGateway, Type: "server_error", Message: "upstream response too large"}
	}
	if !utf8.Valid(body) {
		// Replaced, not passed on (and not refused as invalid JSON): the
		// answer is still the answer. One pass; no copy when valid.
		body = bytes.ToValidUTF8(body, []byte("\uFFFD"))
	}
	return body, nil
}
