package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Audit configures what happens to the audit log beyond the database.
type Audit struct {
	// Sinks receive every audit row, in seq order, at least once: each
	// resumes after the last seq its receiver acknowledged (kept in the
	// database, so across restarts and replicas).
	Sinks []AuditSink `yaml:"sinks"`
}

// AuditSink is one receiver of the audit log: an HTTPS webhook (JSON
// lines, signed) or a syslog server (RFC 5424 over TCP, TLS optional).
type AuditSink struct {
	// Name identifies the sink's cursor in the database: renaming a sink
	// starts it again from the first row.
	Name string `yaml:"name"`
	Type string `yaml:"type"` // "webhook" or "syslog"

	// Webhook: URL gets POSTs of JSON lines signed like anomaly webhooks
	// (X-Xroute-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">)
	// with the secret (Secret, else the contents of SecretFile).
	URL        string `yaml:"url"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`

	// Syslog: Address is host:port; TLS on with an optional CA bundle
	// (else the system roots); AppName is the APP-NAME field (default
	// "xroute").
	Address string `yaml:"address"`
	TLS     bool   `yaml:"tls"`
	CAFile  string `yaml:"ca_file"`
	AppName string `yaml:"app_name"`

	// Tuning (zero: the default). BatchSize rows per delivery (100);
	// PollInterval between looks for new rows when nothing nudges (1s);
	// Timeout of one delivery (10s); MaxBackoff between retries of a
	// failing receiver (1m).
	BatchSize    int           `yaml:"batch_size"`
	PollInterval time.Duration `yaml:"poll_interval"`
	Timeout      time.Duration `yaml:"timeout"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
}

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Validate checks audit.sinks, naming the field of each problem.
func (a Audit) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]bool{}
	for i, s := range a.Sinks {
		f := fmt.Sprintf("audit.sinks[%d]", i)
		switch {
		case !sinkName.MatchString(s.Name):
			bad(f+".name", "must be 1-64 characters of a-z, 0-9, _, . and - (it names the sink's cursor); got %q", s.Name)
		case seen[s.Name]:
			bad(f+".name", "%q names two sinks", s.Name)
		}
		seen[s.Name] = true
		switch s.Type {
		case "webhook":
			if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
				bad(f+".url", "a webhook sink needs an http(s) URL")
			}
			if s.Secret == "" && s.SecretFile == "" {
				bad(f+".secret_file", "webhook sinks are signed: set secret_file (or secret)")
			}
			if s.Secret != "" && len(s.Secret) < 16 {
				bad(f+".secret", "must be at least 16 characters")
			}
		case "syslog":
			if _, _, err := net.SplitHostPort(s.Address); err != nil {
				bad(f+".address", "a syslog sink needs host:port; got %q", s.Address)
			}
			if s.CAFile != "" && !s.TLS {
				bad(f+".ca_file", "is for tls: true")
			}
		default:
			bad(f+".type", "must be webhook or syslog; got %q", s.Type)
		}
		if s.BatchSize < 0 || s.PollInterval < 0 || s.Timeout < 0 || s.MaxBackoff < 0 {
			bad(f, "batch_size, poll_interval, timeout and max_backoff must not be negative")
		}
	}
	return errors.Join(errs...)
}
