package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// NewReverseProxy returns the benchmark's floor: a bare standard-library
// reverse proxy to upstream (scheme and host are used; the request path is
// kept), flushing every write so that streams pass through unbuffered.
func NewReverseProxy(upstream *url.URL, errLog *log.Logger) *httputil.ReverseProxy {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 20000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	target := &url.URL{Scheme: upstream.Scheme, Host: upstream.Host}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      errLog,
	}
}

// NewProxyHandler returns the reverse proxy of NewReverseProxy as a handler
// that may keep reading the request body after the response has started
// (full duplex). Without that, Go's HTTP/1 server closes the inbound body when
// the upstream's response headers are relayed; if the transport is still
// finishing its write of the outbound body at that moment (its final
// Content-Length check reads once more), it tears down the upstream connection
// and the stream is cut after its first chunk (golang/go#40747).
func NewProxyHandler(upstream *url.URL, errLog *log.Logger) http.Handler {
	rp := NewReverseProxy(upstream, errLog)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex() // best effort: unsupported writers proxy as before
		rp.ServeHTTP(w, r)
	})
}

// ServeProxy serves a reverse proxy to upstream on addr until ctx is done,
// then shuts down gracefully. ready, when not nil, receives the listening
// address once the listener is open.
func ServeProxy(ctx context.Context, addr string, upstream *url.URL, errOut io.Writer, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy: listen: %w", err)
	}
	errLog := log.New(errOut, "proxy: ", log.LstdFlags)
	srv := &http.Server{
		Handler:           NewProxyHandler(upstream, errLog),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("proxy: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("proxy: serve: %w", err)
	}
	return nil
}
