package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// Regression tests of issue 17, "streams and slow peers end in bounded
// time". Each is named after the hole it closes. Timeouts are short so
// the tests are quick; hangGuard only bounds how long a regression takes
// to fail, it asserts nothing about speed.
const hangGuard = 10 * time.Second

// directive makes the wrapped mock obey spec on every request (the
// deployment it serves misbehaves, the others do not).
func directive(spec string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set(mock.DirectiveHeader, spec)
			h.ServeHTTP(w, r)
		})
	}
}

// serveReal serves g's app as the binary does (app.Server: pre-auth cap,
// shutdown that cuts streams) on a loopback listener, which wrap may
// adjust. It returns the server and its address.
func serveReal(t *testing.T, g *gateway, wrap func(net.Listener) net.Listener) (*app.Server, string) {
	t.Helper()
	srv, err := g.app.NewServer(g.cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx, time.Second)
	})
	return srv, addr
}

// postStream posts body to path with the caller's key (and Anthropic's
// headers on /v1/messages) and reads the whole answer.
func postStream(t *testing.T, g *gateway, path, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/v1/messages") {
		req.Header.Set("x-api-key", g.key)
		req.Header.Set("anthropic-version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+g.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, string(b)
}

// TestHoleStalledAfterHeadersFailsOver: an upstream that sends its
// headers and then nothing held the caller until server.request_timeout
// and never failed over (504, one attempt). Past router.first_byte_timeout
// the next deployment answers, the caller having seen nothing.
func TestHoleStalledAfterHeadersFailsOver(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{backup: &mock.Config{}, wrapPrimary: directive("stall=0"), mutate: func(c *config.Config) {
		c.Router.FirstByteTimeout = 100 * time.Millisecond
		c.Server.RequestTimeout = 5 * time.Second // the old hang ends here, as a 504
	}})
	resp, body := postStream(t, g, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("x-xroute-attempts") != "2" || resp.Header.Get("x-xroute-provider") != "backup" {
		t.Fatalf("status %d, headers %v, body %q", resp.StatusCode, resp.Header, body)
	}
	if !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Contains(body, `"error"`) {
		t.Fatalf("answer %q", body)
	}
	rec := g.usageFor(resp.Header.Get("x-request-id"))
	if rec.Status != 200 || rec.Attempts != 2 || rec.Provider != "backup" {
		t.Fatalf("usage record %+v", rec)
	}
	// The stalled attempt was abandoned, not left hanging upstream.
	testutil.Eventually(t, "the stalled upstream call to end", func() bool { return g.primary.Stats().Canceled == 1 })
}

// TestHoleStalledAfterFirstChunkEndsWithErrorEvent: an upstream that sent
// a first chunk and then nothing held the caller until
// server.request_timeout. Past router.stream_idle_timeout the stream ends
// with an error event in the caller's format, and the delivered part is
// billed; meanwhile the caller gets sparse keep-alives.
func TestHoleStalledAfterFirstChunkEndsWithErrorEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format, path, body string
		end, why, ping     string // the error event, what it says, the keep-alive
	}{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, `data: {"error":`, `"code":"upstream_stalled"`, ": ping\n\n"},
		{"completions", "/v1/completions", `{"model":"gpt-4o-mini","stream":true,"max_tokens":64,"prompt":"hi"}`, `data: {"error":`, `"code":"upstream_stalled"`, ": ping\n\n"},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","stream":true,"max_output_tokens":64,"input":"hi"}`, "event: response.failed\n", `"code":"upstream_stalled"`, ": ping\n\n"},
		// Anthropic's error event has a type and a message, no code.
		{"messages", "/v1/messages", `{"model":"gpt-4o-mini","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, "event: error\n", `"type":"timeout_error"`, "event: ping\n"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			// The role chunk and one content chunk, then silence.
			g := newGateway(t, gwOptions{wrapPrimary: directive("stall=2"), mutate: func(c *config.Config) {
				priced(c)
				c.Router.StreamIdleTimeout = 300 * time.Millisecond
				c.Server.StreamKeepAlive = 20 * time.Millisecond
				c.Server.RequestTimeout = 5 * time.Second // the old hang ends here
			}})
			if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 10*billing.NanoPerUSD, "t", "test"); err != nil {
				t.Fatal(err)
			}
			resp, body := postStream(t, g, tc.path, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			errAt := strings.LastIndex(body, tc.end)
			if errAt < 0 || !strings.Contains(body[errAt:], tc.why) || !strings.Contains(body[errAt:], "went silent") {
				t.Fatalf("no %q event with %s at the end of %q", tc.end, tc.why, body)
			}
			if !strings.Contains(body[:errAt], tc.ping) {
				t.Fatalf("no keep-alive %q on the quiet stream %q", tc.ping, body)
			}
			rec := g.usageFor(resp.Header.Get("x-request-id"))
			if rec.ErrorCode != "upstream_stalled" || rec.Status != http.StatusGatewayTimeout || rec.CompletionTokens == 0 || rec.CostNano <= 0 {
				t.Fatalf("the delivered part must be billed and the stall named: %+v", rec)
			}
		})
	}
}

// TestHoleMalformedUpstreamStreamLabelled: a stream cut off mid-JSON was
// reported as upstream_unreachable, which sends operators looking at the
// network; it is upstream_malformed, in the error event and the record.
func TestHoleMalformedUpstreamStreamLabelled(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	resp, body := postStream(t, g, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi #mock:malformed"}]}`)
	errAt := strings.LastIndex(body, `data: {"error":`)
	if resp.StatusCode != 200 || errAt < 0 || !strings.Contains(body[errAt:], `"code":"upstream_malformed"`) {
		t.Fatalf("status %d, answer %q", resp.StatusCode, body)
	}
	rec := g.usageFor(resp.Header.Get("x-request-id"))
	if rec.ErrorCode != "upstream_malformed" || rec.Status != http.StatusBadGateway {
		t.Fatalf("usage record %+v", rec)
	}
}

// rawConn dials addr for a test that speaks HTTP by hand; every read is
// bounded by hangGuard so that a regression fails instead of hanging.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(hangGuard))
	return c, bufio.NewReader(c)
}

// readStatus reads an answer's status line and headers.
func readStatus(t *testing.T, r *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return resp
}

// TestHoleSlowBodyUnknownKeyClosedUnread: 200 sockets with an unknown key,
// Content-Length 200000 and a byte every 5 s were all open 70 s later:
// net/http read the unread body (up to 256 KiB) at the caller's pace
// before it wrote the 401. Now the 401 goes out at once, from the headers
// alone, and the connection closes without reading the body.
func TestHoleSlowBodyUnknownKeyClosedUnread(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	_, addr := serveReal(t, g, nil)
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		c, r := rawConn(t, addr)
		if _, err := io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer xr-bogus\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		resp := readStatus(t, r)
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Fatalf("%s: status %d, headers %v", path, resp.StatusCode, resp.Header)
		}
		io.Copy(io.Discard, resp.Body)
		// The server closes its end without waiting for the 199999 bytes.
		if _, err := io.Copy(io.Discard, r); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("%s: connection not closed: %v", path, err)
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestHoleContentLengthOverLimitAnsweredAtOnce: a 50 MB body was read up
// to the limit before the 413, and the caller, still sending, got a broken
// pipe instead. A Content-Length over server.max_body_bytes is answered
// 413 before a byte of the body is read.
func TestHoleContentLengthOverLimitAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{maxBody: 1 << 20})
	_, addr := serveReal(t, g, nil)
	c, r := rawConn(t, addr)
	if _, err := io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+g.key+"\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{\"model\":"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "request_too_large") {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

// TestHolePreAuthConnectionCap: one address could hold any number of
// connections that never authenticate. Past server.preauth_conns_per_ip
// a new connection is refused (429) at once; one that authenticates
// leaves the count, making room.
func TestHolePreAuthConnectionCap(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) { c.Server.PreAuthConns = 3 }})
	srv, addr := serveReal(t, g, nil)
	models := "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + g.key + "\r\n\r\n"
	var idle []net.Conn
	var first *bufio.Reader
	for i := 0; i < 3; i++ { // silent connections: headers never come
		c, r := rawConn(t, addr)
		idle = append(idle, c)
		if i == 0 {
			first = r
		}
	}
	// Accepted in dialing order: the fourth finds the cap reached.
	c4, r4 := rawConn(t, addr)
	io.WriteString(c4, models)
	if resp := readStatus(t, r4); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth pre-auth connection: status %d", resp.StatusCode)
	}
	if srv.Limiter().Refused() != 1 {
		t.Fatalf("refused %d", srv.Limiter().Refused())
	}
	// The first one authenticates: it is a caller's now, and room is made.
	io.WriteString(idle[0], models)
	if resp := readStatus(t, first); resp.StatusCode != http.StatusOK {
		t.Fatalf("authenticated request: status %d", resp.StatusCode)
	}
	c5, r5 := rawConn(t, addr)
	io.WriteString(c5, models)
	if resp := readStatus(t, r5); resp.StatusCode != http.StatusOK {
		t.Fatalf("a connection after one authenticated: status %d", resp.StatusCode)
	}
}

// smallBuffers shrinks the send buffer of every accepted connection, so
// that a caller that stops reading blocks the server's writes after a few
// KiB rather than after the megabytes loopback buffers hold.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestHoleCallerThatStopsReadingIsCut: a caller that stops reading held
// its stream, the upstream call and its credit hold until the request
// deadline. A write that cannot complete within server.write_timeout ends
// the stream: the upstream call is cancelled and the request recorded as
// client_write_timeout.
func TestHoleCallerThatStopsReadingIsCut(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{CompletionTokens: 50000}, mutate: func(c *config.Config) {
		c.Server.WriteTimeout = 200 * time.Millisecond
	}})
	_, addr := serveReal(t, g, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	body := `{"model":"gpt-4o-mini","stream":true,"max_tokens":50000,"messages":[{"role":"user","content":"a long story"}]}`
	io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+g.key+"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	c.SetReadDeadline(time.Now().Add(hangGuard))
	r := bufio.NewReaderSize(c, 512)
	h := readStatus(t, r).Header
	// Then the caller reads nothing more.
	rec := g.usageFor(h.Get("x-request-id"))
	if rec.Status != 499 || rec.ErrorCode != "client_write_timeout" {
		t.Fatalf("usage record %+v", rec)
	}
	testutil.Eventually(t, "the upstream call to be cancelled", func() bool { return g.primary.Stats().Canceled == 1 })
}

// TestHoleShutdownCutStreamRecordedAsServerCut: a stream still running at
// the shutdown deadline was closed under the caller, which saw a broken
// connection, and recorded as 499 client_closed as if the caller had
// left. It ends with an error event in the caller's format and is
// recorded as cut by the server, its delivered part billed.
func TestHoleShutdownCutStreamRecordedAsServerCut(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mock: mock.Config{TokensPerSec: 20, CompletionTokens: 400}, mutate: priced})
	if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 10*billing.NanoPerUSD, "t", "test"); err != nil {
		t.Fatal(err)
	}
	srv, addr := serveReal(t, g, nil)
	body := `{"model":"gpt-4o-mini","stream":true,"max_tokens":400,"messages":[{"role":"user","content":"a long story"}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for { // up to the first text delivered
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"content":"`) && !strings.Contains(line, `"content":""`) {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx, hangGuard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v (the stream should have outlived the deadline)", err)
	}
	rest, _ := io.ReadAll(r)
	errAt := strings.LastIndex(string(rest), `data: {"error":`)
	if errAt < 0 || !strings.Contains(string(rest[errAt:]), `"code":"server_shutdown"`) {
		t.Fatalf("the stream did not end with a server_shutdown event: ...%q", rest[max(0, len(rest)-200):])
	}
	rec := g.usageFor(resp.Header.Get("x-request-id"))
	if rec.Status != http.StatusServiceUnavailable || rec.ErrorCode != "server_shutdown" || rec.CompletionTokens == 0 || rec.CostNano <= 0 {
		t.Fatalf("usage record %+v", rec)
	}
}
