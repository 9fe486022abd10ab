package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
)

// TestStartupFailuresAreOneLineAndWriteNothing: each way a start can fail
// that an operator can fix is one line saying what to do, and a start
// that fails before it could serve leaves no file behind.
func TestStartupFailuresAreOneLineAndWriteNothing(t *testing.T) {
	t.Chdir(t.TempDir())
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	aFile := filepath.Join(t.TempDir(), "file")
	os.WriteFile(aFile, []byte("x"), 0o600)

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"port in use", []string{"--addr", held.Addr().String()}, nil,
			[]string{held.Addr().String() + " (server.addr) is in use", "stop the other process or pass --addr 127.0.0.1:0"}},
		{"metrics port in use", nil, map[string]string{"XROUTE_SERVER_METRICS_ADDR": held.Addr().String()},
			[]string{held.Addr().String() + " (server.metrics_addr) is in use", "XROUTE_SERVER_METRICS_ADDR"}},
		{"pprof port in use", nil, map[string]string{"XROUTE_SERVER_PPROF_ADDR": held.Addr().String()},
			[]string{held.Addr().String() + " (server.pprof_addr) is in use"}},
		{"data directory under a regular file", []string{"--data", filepath.Join(aFile, "data")}, nil,
			[]string{"cannot write", aFile + " is a file, not a directory", "--data DIR"}},
		{"missing config", []string{"--config", "nope.yaml"}, nil,
			[]string{"cannot read the config file nope.yaml", "check the path and its permissions"}},
		{"config is a directory", []string{"--config", os.TempDir()}, nil,
			[]string{"cannot read the config file", "is a directory"}},
		{"master key of the wrong length", nil, map[string]string{"XROUTE_VAULT_MASTER_KEY": "c2hvcnQ="},
			[]string{"XROUTE_VAULT_MASTER_KEY is not a master key", "decodes to 5 bytes", "base64 or hex"}},
		{"master key not base64 or hex", nil, map[string]string{"XROUTE_VAULT_MASTER_KEY": "not a key!"},
			[]string{"XROUTE_VAULT_MASTER_KEY is not a master key", "base64 or hex"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, tt.args...)
			err := run(context.Background(), args, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("the start succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("more than one line: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed start wrote %s", data)
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("a failed start wrote into the working directory: %v", entries)
			}
		})
	}

	t.Run("read-only data directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes through mode 0500; the path-under-a-file case covers the same check")
		}
		ro := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(ro, 0o500)
		err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", ro}, io.Discard, io.Discard)
		var se *app.StartupError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "cannot write") {
			t.Fatalf("want a start-up error naming the directory, got %v", err)
		}
	})

	t.Run("wrong master key for an existing vault", func(t *testing.T) {
		data := t.TempDir()
		// A first start creates the vault under a generated key.
		d := startDemo(t, "--data", data)
		d.stop()
		t.Setenv("XROUTE_VAULT_MASTER_KEY", strings.Repeat("ab", 32))
		err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", data}, io.Discard, io.Discard)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "the master key does not open this database's vault") ||
			!strings.Contains(err.Error(), "set XROUTE_VAULT_MASTER_KEY") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestBannerNamesEveryURL: the banner names the API's base URLs, the
// dashboard and the metrics (on their own listener when
// server.metrics_addr is set, off when metrics are).
func TestBannerNamesEveryURL(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	mln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer mln.Close()
	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		name    string
		metrics bool
		mln     net.Listener
		want    string
	}{
		{"metrics on the API's listener", true, nil, base + "/metrics"},
		{"metrics on their own listener", true, mln, "http://" + mln.Addr().String() + "/metrics"},
		{"metrics off", false, nil, "metrics        off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Server.Metrics = tc.metrics
			var b strings.Builder
			printBanner(&b, endpointsOf(ln, tc.mln, cfg), cfg)
			for _, w := range []string{base + "/v1", "Anthropic API  " + base, base + "/ui/", tc.want} {
				if !strings.Contains(b.String(), w) {
					t.Errorf("banner lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestUnknownSettingsWarnAtStart: serve logs the warning config returns.
func TestUnknownSettingsWarnAtStart(t *testing.T) {
	t.Setenv("XROUTE_MASTER_KEY", "x")
	held, _ := net.Listen("tcp", "127.0.0.1:0")
	defer held.Close()
	var logs strings.Builder
	// The held port stops the start right after the warnings.
	run(context.Background(), []string{"serve", "--addr", held.Addr().String(), "--data", t.TempDir()}, io.Discard, &logs)
	if !strings.Contains(logs.String(), "unknown environment variable XROUTE_MASTER_KEY: did you mean XROUTE_VAULT_MASTER_KEY?") {
		t.Fatalf("no warning in the start-up log:\n%s", logs.String())
	}
}
