package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRedisTimeout: redis.timeout defaults to 200ms, is set from the file
// or XROUTE_REDIS_TIMEOUT, and must be above 0 and at most 5s.
func TestRedisTimeout(t *testing.T) {
	for _, c := range []struct {
		name    string
		yaml    string
		env     string
		want    time.Duration
		wantErr bool
	}{
		{name: "default", want: 200 * time.Millisecond},
		{name: "from the file", yaml: "redis:\n  timeout: 750ms\n", want: 750 * time.Millisecond},
		{name: "env over the file", yaml: "redis:\n  timeout: 750ms\n", env: "1s", want: time.Second},
		{name: "at the ceiling", env: "5s", want: 5 * time.Second},
		{name: "a millisecond", env: "1ms", want: time.Millisecond},
		{name: "over the ceiling", env: "5001ms", wantErr: true},
		{name: "a minute", yaml: "redis:\n  timeout: 1m\n", wantErr: true},
		{name: "zero", env: "0s", wantErr: true},
		{name: "negative", env: "-1s", wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var env []string
			if c.env != "" {
				env = append(env, "XROUTE_REDIS_TIMEOUT="+c.env)
			}
			cfg, err := Load(writeFile(t, c.yaml), env)
			if !c.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Redis.Timeout != c.want {
					t.Errorf("redis.timeout = %s, want %s", cfg.Redis.Timeout, c.want)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "redis.timeout" {
				t.Fatalf("error %v, want one naming redis.timeout", err)
			}
			if !strings.Contains(err.Error(), "at most 5s") {
				t.Errorf("error %q does not say the bound", err)
			}
		})
	}
}
