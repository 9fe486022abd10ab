package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuditSinksValidate(t *testing.T) {
	hook := AuditSink{Name: "siem", Type: "webhook", URL: "https://siem.example/in", SecretFile: "/etc/xroute/siem.secret"}
	sys := AuditSink{Name: "syslog", Type: "syslog", Address: "logs.example:6514", TLS: true}
	tests := []struct {
		name  string
		sinks []AuditSink
		want  string // "" valid, else the field the error names
	}{
		{"none", nil, ""},
		{"webhook and syslog", []AuditSink{hook, sys}, ""},
		{"same name twice", []AuditSink{hook, hook}, "audit.sinks[1].name"},
		{"bad name", []AuditSink{{Name: "SIEM!", Type: "webhook", URL: hook.URL, SecretFile: "f"}}, "audit.sinks[0].name"},
		{"unknown type", []AuditSink{{Name: "x", Type: "kafka"}}, "audit.sinks[0].type"},
		{"webhook without URL", []AuditSink{{Name: "x", Type: "webhook", SecretFile: "f"}}, "audit.sinks[0].url"},
		{"webhook unsigned", []AuditSink{{Name: "x", Type: "webhook", URL: hook.URL}}, "audit.sinks[0].secret_file"},
		{"short secret", []AuditSink{{Name: "x", Type: "webhook", URL: hook.URL, Secret: "short"}}, "audit.sinks[0].secret"},
		{"syslog without port", []AuditSink{{Name: "x", Type: "syslog", Address: "logs.example"}}, "audit.sinks[0].address"},
		{"ca without tls", []AuditSink{{Name: "x", Type: "syslog", Address: "h:514", CAFile: "ca.pem"}}, "audit.sinks[0].ca_file"},
		{"negative tuning", []AuditSink{{Name: "x", Type: "syslog", Address: "h:514", PollInterval: -time.Second}}, "audit.sinks[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Audit{Sinks: tc.sinks}.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestAuditSinksFromYAML(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.yaml")
	os.WriteFile(p, []byte("vault:\n  master_key_file: m\naudit:\n  sinks:\n    - name: siem\n      type: webhook\n      url: https://siem.example/in\n      secret_file: siem.secret\n      max_backoff: 30s\n"), 0o600)
	cfg, warnings, err := LoadWithWarnings(p, nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%v %v", err, warnings)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Audit.Sinks) != 1 || cfg.Audit.Sinks[0].MaxBackoff != 30*time.Second || cfg.Audit.Sinks[0].URL != "https://siem.example/in" {
		t.Fatalf("sinks %+v", cfg.Audit.Sinks)
	}
}
