package auditsink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
)

// Metrics are the sinks' Prometheus series, labelled by sink name.
type Metrics struct {
	lag    *prometheus.GaugeVec
	acked  *prometheus.GaugeVec
	errors *prometheus.CounterVec
}

// NewMetrics returns unregistered series; Collectors lists them.
func NewMetrics() *Metrics {
	return &Metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xroute_audit_sink_lag",
			Help: "Audit rows written but not yet acknowledged by the sink (sequence numbers behind).",
		}, []string{"sink"}),
		acked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xroute_audit_sink_acked_seq",
			Help: "The highest audit sequence number the sink acknowledged.",
		}, []string{"sink"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xroute_audit_sink_errors_total",
			Help: "Failed audit sink deliveries (each is retried from the last acknowledged sequence number).",
		}, []string{"sink"}),
	}
}

// Collectors are the series to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.lag, m.acked, m.errors}
}

// Options tune Start; zero fields take defaults.
type Options struct {
	Metrics *Metrics         // nil: series kept but not exported
	Now     func() time.Time // the clock (time.Now)
	Client  *http.Client     // webhooks' client (one with the sink's timeout)
	Owner   string           // this process's lease name (host, pid and a random part)
	Sinks   map[string]Sink  // tests: a sink by name instead of the one its config builds
}

// Shippers runs one shipper per configured sink.
type Shippers struct {
	nudges []chan struct{}
	sinks  []Sink
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start builds the configured sinks and starts shipping them; Close
// stops them. With no sinks it starts nothing (and Close is a no-op).
func Start(cfgs []config.AuditSink, st Store, log *zap.Logger, o Options) (*Shippers, error) {
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Owner == "" {
		o.Owner = owner()
	}
	sh := &Shippers{}
	var shippers []*shipper
	for _, c := range cfgs {
		timeout := durOr(c.Timeout, 10*time.Second)
		sink := o.Sinks[c.Name]
		if sink == nil {
			var err error
			if sink, err = build(c, timeout, o); err != nil {
				sh.closeSinks()
				return nil, err
			}
		}
		sh.sinks = append(sh.sinks, sink)
		o.Metrics.errors.WithLabelValues(c.Name) // exported from the start, at 0
		nudge := make(chan struct{}, 1)
		sh.nudges = append(sh.nudges, nudge)
		maxBackoff := durOr(c.MaxBackoff, time.Minute)
		batch := c.BatchSize
		if batch <= 0 {
			batch = 100
		}
		shippers = append(shippers, &shipper{
			name: c.Name, sink: sink, st: st, log: log.With(zap.String("sink", c.Name)), m: o.Metrics, owner: o.Owner,
			batch: batch, poll: durOr(c.PollInterval, time.Second), timeout: timeout,
			minBackoff: min(100*time.Millisecond, maxBackoff), maxBackoff: maxBackoff, now: o.Now, nudge: nudge,
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh.cancel = cancel
	for _, s := range shippers {
		sh.wg.Add(1)
		go func() { defer sh.wg.Done(); s.run(ctx) }()
	}
	return sh, nil
}

// Nudge tells every shipper that a row was appended, so delivery does not
// wait for the poll interval. It never blocks.
func (sh *Shippers) Nudge() {
	for _, n := range sh.nudges {
		select {
		case n <- struct{}{}:
		default:
		}
	}
}

// Close stops the shippers (a delivery in flight is cancelled and resent
// by the next start), gives their leases up and closes the sinks.
func (sh *Shippers) Close() {
	sh.cancel()
	sh.wg.Wait()
	sh.closeSinks()
}

func (sh *Shippers) closeSinks() {
	for _, s := range sh.sinks {
		s.Close()
	}
}

func build(c config.AuditSink, timeout time.Duration, o Options) (Sink, error) {
	switch c.Type {
	case "webhook":
		secret, err := readSecret(c)
		if err != nil {
			return nil, err
		}
		client := o.Client
		if client == nil {
			client = &http.Client{Timeout: timeout}
		}
		return NewWebhook(c.URL, secret, client, o.Now), nil
	case "syslog":
		var tc *tls.Config
		if c.TLS {
			host, _, _ := strings.Cut(c.Address, ":")
			tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
			if c.CAFile != "" {
				pem, err := os.ReadFile(c.CAFile)
				if err != nil {
					return nil, fmt.Errorf("audit sink %s: ca_file: %w", c.Name, err)
				}
				tc.RootCAs = x509.NewCertPool()
				if !tc.RootCAs.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("audit sink %s: ca_file %s holds no PEM certificate", c.Name, c.CAFile)
				}
			}
		}
		host, _ := os.Hostname()
		return NewSyslog(c.Address, tc, c.AppName, host, timeout), nil
	}
	return nil, fmt.Errorf("audit sink %s: unknown type %q", c.Name, c.Type)
}

// readSecret is the webhook's signing secret: secret, else the contents
// of secret_file. The secret itself never appears in an error or a log.
func readSecret(c config.AuditSink) ([]byte, error) {
	if c.Secret != "" {
		return []byte(c.Secret), nil
	}
	data, err := os.ReadFile(c.SecretFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit sink %s: secret_file %s does not exist: create it with a random secret (e.g. openssl rand -hex 32 > %s) and give the receiver the same", c.Name, c.SecretFile, c.SecretFile)
	}
	if err != nil {
		return nil, fmt.Errorf("audit sink %s: secret_file: %w", c.Name, err)
	}
	s := strings.TrimSpace(string(data))
	if len(s) < 16 {
		return nil, fmt.Errorf("audit sink %s: secret_file %s holds fewer than 16 characters", c.Name, c.SecretFile)
	}
	return []byte(s), nil
}

func durOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// owner names this process for the sinks' leases.
func owner() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
