package config

import (
	"errors"
	"testing"
)

// TestIdleConnsPerHost: the bound on idle upstream connections per host
// defaults to 1,024, is read from the file and the environment (the
// environment wins), and a bound that keeps none is refused naming its
// field.
func TestIdleConnsPerHost(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		env        []string
		want       int
	}{
		{"default", "", nil, 1024},
		{"file", "router:\n  idle_conns_per_host: 8192\n", nil, 8192},
		{"environment", "router:\n  idle_conns_per_host: 8192\n", []string{"XROUTE_ROUTER_IDLE_CONNS_PER_HOST=2048"}, 2048},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(writeFile(t, c.yaml), c.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Router.IdleConnsPerHost != c.want {
				t.Fatalf("idle_conns_per_host %d, want %d", cfg.Router.IdleConnsPerHost, c.want)
			}
		})
	}
	for _, v := range []string{"0", "-1"} {
		_, err := Load(writeFile(t, "router:\n  idle_conns_per_host: "+v+"\n"), nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "router.idle_conns_per_host" {
			t.Errorf("idle_conns_per_host %s: error %v, want one naming router.idle_conns_per_host", v, err)
		}
	}
}
