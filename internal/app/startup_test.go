package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys/vault"
)

// TestPreflightWritesNothing: Preflight finds what would stop Build
// half-way, and never creates a file or directory doing so.
func TestPreflightWritesNothing(t *testing.T) {
	root := t.TempDir()
	aFile := filepath.Join(root, "file")
	os.WriteFile(aFile, []byte("x"), 0o600)
	badKeyFile := filepath.Join(root, "bad.master")
	os.WriteFile(badKeyFile, []byte("not a key\n"), 0o600)
	tests := []struct {
		name   string
		mutate func(*config.Config)
		want   string // "" = passes
	}{
		{"fresh data directory", func(*config.Config) {}, ""},
		{"data directory under a file", func(c *config.Config) { *c = InDataDir(config.Default(), filepath.Join(aFile, "d")) }, "is a file, not a directory"},
		{"bad master key", func(c *config.Config) { c.Vault.MasterKey = "short" }, "XROUTE_VAULT_MASTER_KEY is not a master key"},
		{"bad master key file", func(c *config.Config) { c.Vault.MasterKeyFile = badKeyFile }, "does not hold a master key"},
		{"postgres: no database file", func(c *config.Config) {
			c.Database.URL = "postgres://x@127.0.0.1/x"
			c.Database.Path = filepath.Join(aFile, "db") // never opened
			c.Usage.SpoolDir = filepath.Join(root, "spool")
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			cfg := InDataDir(config.Default(), dir)
			tt.mutate(&cfg)
			err := Preflight(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			var se *StartupError
			if err != nil && !errors.As(err, &se) {
				t.Fatalf("%T is not a StartupError", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("Preflight created the data directory")
			}
		})
	}
}

func TestInDataDirMovesRelativePathsOnly(t *testing.T) {
	cfg := config.Default()
	cfg.Vault.MasterKeyFile = "/etc/xroute/master"
	got := InDataDir(cfg, "/data")
	if got.Database.Path != "/data/xroute.db" || got.Auth.PepperFile != "/data/xroute.pepper" || got.Vault.MasterKeyFile != "/etc/xroute/master" || got.Usage.SpoolDir != "" {
		t.Fatalf("%+v %+v %+v %+v", got.Database, got.Auth.PepperFile, got.Vault, got.Usage.SpoolDir)
	}
	if SpoolDir(got) != "/data/xroute.db.spool" {
		t.Fatalf("spool %s", SpoolDir(got))
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"wrong master key", fmt.Errorf("vault: %w", vault.ErrWrongMasterKey), "does not open this database's vault: set XROUTE_VAULT_MASTER_KEY"},
		{"read-only", &os.PathError{Op: "open", Path: "/ro/xroute.db", Err: os.ErrPermission}, "cannot write /ro/xroute.db (permission denied): choose a writable data directory"},
		{"other errors pass", errors.New("boom"), "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Explain(tc.err).Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
