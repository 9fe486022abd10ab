package auditsink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xroute/xroute/keys/auditlog"
)

// syslogPRI is facility 13 (log audit) at severity 5 (notice).
const syslogPRI = 13*8 + 5

// syslogSDID is the structured-data id carrying the seq. 32473 is the
// private enterprise number RFC 5612 reserves for examples and
// documentation; xroute has none of its own.
const syslogSDID = "xroute@32473"

// Syslog writes each row as an RFC 5424 message with octet-counting
// framing (RFC 6587) over one TCP (or TLS) connection. TCP has no
// application-level acknowledgement: a write that completes counts as
// delivered. Rows in the kernel's buffers when the connection breaks may
// be lost by the network and are not resent; on a write error the
// connection is dropped and the next attempt, on a new one, resends the
// whole batch from the last persisted seq (at least once, receivers
// dedupe by the seq in the structured data).
type Syslog struct {
	addr    string
	tls     *tls.Config // nil: plain TCP
	app     string
	host    string
	timeout time.Duration
	mu      sync.Mutex
	conn    net.Conn
}

// NewSyslog returns a sink writing to addr (host:port), over TLS when
// tlsConf is set, with app as APP-NAME and host as HOSTNAME.
func NewSyslog(addr string, tlsConf *tls.Config, app, host string, timeout time.Duration) *Syslog {
	if app == "" {
		app = "xroute"
	}
	if host == "" {
		host = "-"
	}
	return &Syslog{addr: addr, tls: tlsConf, app: app, host: host, timeout: timeout}
}

// Deliver writes rows, connecting first if need be.
func (s *Syslog) Deliver(ctx context.Context, rows []auditlog.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		d := &net.Dialer{Timeout: s.timeout}
		var c net.Conn
		var err error
		if s.tls != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(ctx, "tcp", s.addr)
		} else {
			c, err = d.DialContext(ctx, "tcp", s.addr)
		}
		if err != nil {
			return fmt.Errorf("syslog: connect %s: %w", s.addr, err)
		}
		s.conn = c
	}
	var buf []byte
	for _, r := range rows {
		msg := s.message(r)
		buf = strconv.AppendInt(buf, int64(len(msg)), 10)
		buf = append(buf, ' ')
		buf = append(buf, msg...)
	}
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(buf); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("syslog: write to %s: %w", s.addr, err)
	}
	return nil
}

// message is r as an RFC 5424 message: the JSON line is the MSG, the seq
// and kind also in structured data so a receiver can dedupe and route
// without parsing the MSG.
func (s *Syslog) message(r auditlog.Row) []byte {
	line := AppendJSONL(nil, []auditlog.Row{r})
	line = line[:len(line)-1]
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s %s - audit [%s seq=\"%d\" kind=\"%s\"] ",
		syslogPRI, time.UnixMilli(r.At).UTC().Format("2006-01-02T15:04:05.000Z"), s.host, s.app,
		syslogSDID, r.Seq, sdEscape(r.Kind))
	b.Write(line)
	return []byte(b.String())
}

// sdEscape escapes a structured-data parameter value (RFC 5424 6.3.3).
func sdEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(v)
}

// Close closes the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
