package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/auditsink"
	"github.com/xroute/xroute/keys"
)

// exportSeqs parses `xroute audit export` output into its seqs.
func exportSeqs(t *testing.T, out string) []int64 {
	t.Helper()
	var seqs []int64
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var line auditsink.Line
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Kind == "" || line.MAC == "" {
			t.Fatalf("line %q: %v", l, err)
		}
		seqs = append(seqs, line.Seq)
	}
	return seqs
}

// TestAuditExportLocal: on the database, --since SEQ prints the rows
// after SEQ, oldest first, one JSON line each; a format other than
// jsonl is a usage error.
func TestAuditExportLocal(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, name := range []string{"a", "b", "c"} {
		if _, err := runOut(t, "keys", "create", "--name", name, "--quiet"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		since string
		want  []int64
	}{
		{"0", []int64{1, 2, 3}},
		{"1", []int64{2, 3}},
		{"3", nil},
	}
	for _, tc := range tests {
		t.Run("since "+tc.since, func(t *testing.T) {
			out, err := runOut(t, "audit", "export", "--since", tc.since, "--format", "jsonl")
			if err != nil {
				t.Fatal(err)
			}
			if got := exportSeqs(t, out); len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
				t.Fatalf("seqs %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := runOut(t, "audit", "export", "--format", "csv"); err == nil || !isUsage(err) {
		t.Fatalf("--format csv: %v, want a usage error", err)
	}
}

// TestAuditExportRemote: through the admin API the export is the same,
// byte for byte, as on the database.
func TestAuditExportRemote(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.Path = filepath.Join(dir, "x.db")
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	a, err := app.Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	defer func() { srv.Close(); a.Close() }()
	admin, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "ops", Kind: keys.KindAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), args, &out, io.Discard)
		return out.String(), err
	}
	local, err := cli("audit", "export", "--config", writeDBConfig(t, cfg), "--since", "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XROUTE_URL", srv.URL)
	t.Setenv("XROUTE_ADMIN_KEY", admin)
	remote, err := cli("audit", "export", "--since", "1")
	if err != nil {
		t.Fatal(err)
	}
	if remote != local || len(exportSeqs(t, remote)) < 2 {
		t.Fatalf("remote export\n%s\nlocal export\n%s", remote, local)
	}
	// Bad input to the endpoint: 400 in the admin API's error shape.
	for _, q := range []string{"since=abc", "since=-1", "limit=0", "limit=10001"} {
		req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/audit/export?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct {
				Param string `json:"param"`
			} `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if want, _, _ := strings.Cut(q, "="); resp.StatusCode != http.StatusBadRequest || e.Error.Param != want {
			t.Errorf("%s: %d param %q, want 400 naming %s", q, resp.StatusCode, e.Error.Param, want)
		}
	}
	if _, err := cli("audit", "export", "--since", "-1"); err == nil || !isUsage(err) {
		t.Fatalf("--since -1: %v, want a usage error", err)
	}
}

// writeDBConfig writes a config file naming cfg's database and vault.
func writeDBConfig(t *testing.T, cfg config.Config) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.yaml")
	body := "database:\n  path: " + cfg.Database.Path + "\nauth:\n  pepper_file: " + cfg.Auth.PepperFile + "\nvault:\n  master_key_file: " + cfg.Vault.MasterKeyFile + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
