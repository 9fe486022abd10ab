package config

import (
	"errors"
	"strings"
	"testing"
)

// TestHoldTTLKeepsMarginOverRequestTimeout: a credit hold must outlive
// its request by a minute (the usage writer's retries and flush interval).
func TestHoldTTLKeepsMarginOverRequestTimeout(t *testing.T) {
	for _, c := range []struct {
		name           string
		requestTimeout string
		holdTTL        string
		wantErr        bool
	}{
		{"defaults", "", "", false},
		{"exactly a minute over", "10m", "11m", false},
		{"less than a minute over", "10m", "10m59s", true},
		{"equal", "10m", "10m", true},
		{"shorter", "10m", "5m", true},
		{"short requests, a minute", "5s", "65s", false},
		{"short requests, under a minute", "5s", "1m", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var env []string
			if c.requestTimeout != "" {
				env = append(env, "XROUTE_SERVER_REQUEST_TIMEOUT="+c.requestTimeout)
			}
			if c.holdTTL != "" {
				env = append(env, "XROUTE_DATABASE_HOLD_TTL="+c.holdTTL)
			}
			_, err := Load("", env)
			if !c.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "database.hold_ttl" {
				t.Fatalf("error %v, want one naming database.hold_ttl", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "server.request_timeout ("+c.requestTimeout) || !strings.Contains(msg, "got "+c.holdTTL) {
				t.Errorf("error %q names neither both settings nor their values", msg)
			}
		})
	}
}
