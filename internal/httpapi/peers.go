package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// PreAuthLimiter caps the connections one client IP holds open before
// any request on them authenticated. Such a connection costs a goroutine
// and a file descriptor while it sends its headers slowly (up to the
// server's header timeout) and may be anyone: without a cap, one address
// could hold thousands. A connection leaves the count when a request on
// it authenticates, or when it closes; past the cap a new connection is
// answered 429 and closed at once. Connections from trusted proxies are
// not counted (every client behind them shares their address).
type PreAuthLimiter struct {
	max     int
	trusted []netip.Prefix

	mu      sync.Mutex
	pending map[netip.Addr]int
	refused atomic.Int64
}

// NewPreAuthLimiter returns a limiter of max connections per IP (0: no
// cap) that does not count the trusted proxies (IPs or CIDRs).
func NewPreAuthLimiter(max int, trustedProxies []string) (*PreAuthLimiter, error) {
	l := &PreAuthLimiter{max: max, pending: map[netip.Addr]int{}}
	for _, p := range trustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", p, err)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		l.trusted = append(l.trusted, pfx.Masked())
	}
	return l, nil
}

// Refused counts the connections refused so far.
func (l *PreAuthLimiter) Refused() int64 { return l.refused.Load() }

// Listener wraps ln so that its connections are counted.
func (l *PreAuthLimiter) Listener(ln net.Listener) net.Listener {
	if l.max <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, l: l}
}

// ConnContext is the http.Server hook that lets a request find its
// connection (to take it out of the count once it authenticates).
func (l *PreAuthLimiter) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*pendingConn); ok {
		return context.WithValue(ctx, pendingConnKey{}, pc)
	}
	return ctx
}

// tooMany is written to a refused connection; a fresh socket's send
// buffer takes it whole, so it never blocks the accept loop.
var tooMany = func() []byte {
	body := `{"error":{"message":"Too many unauthenticated connections from your address.","type":"rate_limit_error","param":null,"code":"too_many_connections"}}`
	return fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

type limitedListener struct {
	net.Listener
	l *PreAuthLimiter
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !ip.IsValid() || ll.l.isTrusted(ip) {
			return c, nil
		}
		if ll.l.admit(ip) {
			return &pendingConn{Conn: c, l: ll.l, ip: ip}, nil
		}
		ll.l.refused.Add(1)
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(tooMany)
		_ = c.Close()
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (l *PreAuthLimiter) isTrusted(ip netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *PreAuthLimiter) admit(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[ip] >= l.max {
		return false
	}
	l.pending[ip]++
	return true
}

func (l *PreAuthLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.pending[ip] - 1; n > 0 {
		l.pending[ip] = n
	} else {
		delete(l.pending, ip)
	}
}

// Pending is how many connections from ip are counted now.
func (l *PreAuthLimiter) Pending(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending[ip]
}

type pendingConnKey struct{}

// pendingConn is a connection counted until it authenticates or closes.
type pendingConn struct {
	net.Conn
	l        *PreAuthLimiter
	ip       netip.Addr
	released atomic.Bool
}

func (c *pendingConn) release() {
	if c.released.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
}

func (c *pendingConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// connAuthenticated takes the request's connection out of the pre-auth
// count: it belongs to a caller with a valid key from now on.
func connAuthenticated(c *gin.Context) {
	if pc, ok := c.Request.Context().Value(pendingConnKey{}).(*pendingConn); ok {
		pc.release()
	}
}
