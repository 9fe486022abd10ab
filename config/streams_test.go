package config

import (
	"errors"
	"testing"
	"time"
)

// TestStreamAndPeerSettings: the stream timeouts and the slow-peer bounds
// have defaults, are read from the file and the environment (the
// per-deployment overrides from routing.deployments), and a bad value is
// refused naming its field.
func TestStreamAndPeerSettings(t *testing.T) {
	cfg, err := Load(writeFile(t, `router:
  first_byte_timeout: 90s
routing:
  deployments:
    "openai/o3": {first_byte_timeout: 5m, stream_idle_timeout: 3m}
`), []string{"XROUTE_SERVER_WRITE_TIMEOUT=5s", "XROUTE_SERVER_PREAUTH_CONNS_PER_IP=0"})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Routing.Deployments["openai/o3"]
	if cfg.Router.FirstByteTimeout != 90*time.Second || cfg.Router.StreamIdleTimeout != time.Minute ||
		cfg.Server.WriteTimeout != 5*time.Second || cfg.Server.BodyReadTimeout != 30*time.Second || cfg.Server.PreAuthConns != 0 ||
		d.FirstByteTimeout != 5*time.Minute || d.StreamIdleTimeout != 3*time.Minute {
		t.Fatalf("loaded %+v %+v %+v", cfg.Router, cfg.Server, d)
	}
	for _, c := range []struct{ yaml, field string }{
		{"router:\n  first_byte_timeout: -1s\n", "router.first_byte_timeout"},
		{"router:\n  stream_idle_timeout: -1s\n", "router.stream_idle_timeout"},
		{"server:\n  body_read_timeout: 0s\n", "server.body_read_timeout"},
		{"server:\n  write_timeout: 0s\n", "server.write_timeout"},
		{"server:\n  preauth_conns_per_ip: -1\n", "server.preauth_conns_per_ip"},
		{"routing:\n  deployments:\n    \"a/b\": {stream_idle_timeout: -1s}\n", `routing.deployments["a/b"].stream_idle_timeout`},
	} {
		_, err := Load(writeFile(t, c.yaml), nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%q: error %v, want one naming %s", c.yaml, err, c.field)
		}
	}
}
