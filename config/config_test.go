package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xroute.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
	if cfg.Server.Addr != "127.0.0.1:8080" || cfg.Database.Path != "xroute.db" {
		t.Fatalf("unexpected defaults: %+v", cfg.Server)
	}
}

func TestLoadFileAndEnvPrecedence(t *testing.T) {
	p := writeFile(t, `
server:
  addr: 127.0.0.1:9999
  shutdown_timeout: 5s
providers:
  - name: up
    type: openai
    base_url: http://127.0.0.1:1/v1
    api_key_env: UP_KEY
models:
  - name: m
    deployments: [{provider: up, model: upstream-m}]
`)
	cfg, err := Load(p, []string{"XROUTE_SERVER_ADDR=0.0.0.0:1", "XROUTE_USAGE_BATCH_SIZE=7", "XROUTE_ROUTER_BREAKER_COOLDOWN=1m", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "0.0.0.0:1" {
		t.Errorf("env must override file: addr=%q", cfg.Server.Addr)
	}
	if cfg.Server.ShutdownTimeout != 5*time.Second {
		t.Errorf("file must override default: %v", cfg.Server.ShutdownTimeout)
	}
	if cfg.Usage.BatchSize != 7 || cfg.Router.BreakerCooldown != time.Minute {
		t.Errorf("env ints/durations: %+v %+v", cfg.Usage, cfg.Router)
	}
	if got := cfg.Providers[0].ProviderKey(func(k string) string { return map[string]string{"UP_KEY": "sk-1"}[k] }); got != "sk-1" {
		t.Errorf("api_key_env: got %q", got)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{"bad duration", "server:\n  shutdown_timeout: soon\n", nil, []string{"shutdown_timeout"}},
		{"bad level", "log:\n  level: loud\n", nil, []string{"log.level", "loud"}},
		{"unknown provider", "models:\n  - name: m\n    deployments: [{provider: nope, model: x}]\n", nil, []string{"models[0].deployments[0].provider", `unknown provider "nope"`}},
		{"duplicate model", "providers: [{name: p, type: openai}]\nmodels:\n  - {name: m, deployments: [{provider: p, model: x}]}\n  - {name: m, deployments: [{provider: p, model: y}]}\n", nil, []string{"models[1].name", "duplicate"}},
		{"bad base url", "providers: [{name: p, type: openai, base_url: ftp://x}]\n", nil, []string{"providers[0].base_url"}},
		{"free and priced", "providers: [{name: p, type: openai}]\nmodels:\n  - {name: m, deployments: [{provider: p, model: x, free: true, output_price: \"1\"}]}\n", nil, []string{"models[0].deployments[0].free", "no prices"}},
		{"bad env int", "", []string{"XROUTE_USAGE_BATCH_SIZE=lots"}, []string{"XROUTE_USAGE_BATCH_SIZE", "usage.batch_size", "not an integer"}},
		{"short pepper", "", []string{"XROUTE_AUTH_PEPPER=short"}, []string{"auth.pepper", "32"}},
		{"several at once", "server:\n  max_body_bytes: -1\nusage:\n  batch_size: 0\n", nil, []string{"server.max_body_bytes", "usage.batch_size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.yaml), tt.env)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnvNamesCoverScalars(t *testing.T) {
	names := map[string]string{}
	for _, kv := range EnvNames() {
		names[kv[0]] = kv[1]
	}
	for _, want := range []string{"XROUTE_SERVER_ADDR", "XROUTE_DATABASE_PATH", "XROUTE_AUTH_PEPPER", "XROUTE_USAGE_FLUSH_INTERVAL"} {
		if _, ok := names[want]; !ok {
			t.Errorf("missing %s in %v", want, names)
		}
	}
	if _, ok := names["XROUTE_PROVIDERS"]; ok {
		t.Error("lists are file-only")
	}
}
