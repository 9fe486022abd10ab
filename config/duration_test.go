package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1w", want: 7 * 24 * time.Hour},
		{in: "1w2d3h", want: (9*24 + 3) * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "2d12h30m", want: 60*time.Hour + 30*time.Minute},
		{in: "-1d", want: -24 * time.Hour},
		{in: "", bad: true},
		{in: "d", bad: true},
		{in: "30", bad: true},
		{in: "30x", bad: true},
		{in: "1w2", bad: true},
		{in: "1y", bad: true},
		{in: "1..5d", bad: true},
		{in: "99999999999w", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.bad {
				if err == nil || !strings.Contains(err.Error(), "duration") {
					t.Fatalf("want a clear error, got %v, %v", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestFormatDurationRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{30 * 24 * time.Hour, "4w2d"},
		{24 * time.Hour, "1d"},
		{90 * time.Minute, "1h30m"},
		{1500 * time.Millisecond, "1.5s"},
		{0, "0s"},
	} {
		got := FormatDuration(tc.d)
		if got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
		if back, err := ParseDuration(got); err != nil || back != tc.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, tc.d)
		}
	}
}

func TestDurationYAMLAndFlag(t *testing.T) {
	var v struct {
		A Duration `yaml:"a"`
		B Duration `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: 1w\nb: 90s\n"), &v); err != nil {
		t.Fatal(err)
	}
	if time.Duration(v.A) != 7*24*time.Hour || time.Duration(v.B) != 90*time.Second {
		t.Fatalf("got %v %v", v.A, v.B)
	}
	if err := yaml.Unmarshal([]byte("a: soon\n"), &v); err == nil || !strings.Contains(err.Error(), "soon") {
		t.Fatalf("bad duration: %v", err)
	}
	var f Duration
	if err := f.Set("30d"); err != nil || time.Duration(f) != 30*24*time.Hour || f.Type() != "duration" {
		t.Fatalf("flag Set: %v %v", f, err)
	}
}

// TestConfigFileAndEnvTakeDays: every duration of the config, in the file
// and in XROUTE_* variables, takes days and weeks; a bad one still names
// its line and field.
func TestConfigFileAndEnvTakeDays(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.yaml")
	os.WriteFile(p, []byte("auth:\n  rotation_overlap: 1w\nresponses:\n  retention: \"2d12h\"\n  sweep_interval: 10m\n"), 0o600)
	cfg, err := Load(p, []string{"XROUTE_AUTH_CACHE_TTL=1d"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.RotationOverlap != 7*24*time.Hour || cfg.Responses.Retention != 60*time.Hour ||
		cfg.Responses.SweepInterval != 10*time.Minute || cfg.Auth.CacheTTL != 24*time.Hour {
		t.Fatalf("got overlap %v retention %v sweep %v cache_ttl %v", cfg.Auth.RotationOverlap, cfg.Responses.Retention, cfg.Responses.SweepInterval, cfg.Auth.CacheTTL)
	}
	// flow style, two on one line, one quoted, comments
	os.WriteFile(p, []byte("router: {breaker_cooldown: 1d, first_byte_timeout: '2w'} # days\nusage:\n  flush_interval: 1s # Go's\n"), 0o600)
	cfg, err = Load(p, nil)
	if err != nil || cfg.Router.BreakerCooldown != 24*time.Hour || cfg.Router.FirstByteTimeout != 14*24*time.Hour || cfg.Usage.FlushInterval != time.Second {
		t.Fatalf("flow style: %v %v %v %v", err, cfg.Router.BreakerCooldown, cfg.Router.FirstByteTimeout, cfg.Usage.FlushInterval)
	}
	os.WriteFile(p, []byte("auth:\n  rotation_overlap: 1w\n\nresponses:\n  retention: 2x\n"), 0o600)
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "line 5 (responses.retention)") {
		t.Fatalf("bad duration must name line and field: %v", err)
	}
	if _, err := Load("", []string{"XROUTE_AUTH_CACHE_TTL=1x"}); err == nil || !strings.Contains(err.Error(), "XROUTE_AUTH_CACHE_TTL") {
		t.Fatalf("bad env duration: %v", err)
	}
}
