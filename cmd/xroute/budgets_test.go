package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
)

// TestHoleBudgetForUnknownKey: a budget on a key or an account that does
// not exist was stored. The CLI refuses it, on the database and through
// the admin API (404), and stores nothing; a real key's budget is set,
// listed and deleted.
func TestHoleBudgetForUnknownKey(t *testing.T) {
	cli := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), args, &out, io.Discard)
		return out.String(), err
	}
	check := func(t *testing.T, keyID string) {
		for _, args := range [][]string{
			{"budgets", "set", "--key", "key_doesnotexist", "--period", "daily", "--limit", "5.00"},
			{"budgets", "set", "--account", "acct_doesnotexist", "--period", "monthly", "--limit", "5.00"},
		} {
			if out, err := cli(args...); err == nil || !strings.Contains(err.Error(), "doesnotexist") {
				t.Fatalf("%v: %q %v", args, out, err)
			}
		}
		if out, err := cli("budgets", "list"); err != nil || strings.Contains(out, "doesnotexist") {
			t.Fatalf("list: %q %v", out, err)
		}
		if out, err := cli("budgets", "set", "--key", keyID, "--period", "daily", "--limit", "5.00", "--alerts", "50,90"); err != nil || !strings.Contains(out, keyID) || !strings.Contains(out, "5.00") || !strings.Contains(out, "50,90") {
			t.Fatalf("set on a real key: %q %v", out, err)
		}
		if out, err := cli("budgets", "list", "--key", keyID); err != nil || !strings.Contains(out, keyID) {
			t.Fatalf("list: %q %v", out, err)
		}
		if out, err := cli("budgets", "delete", "--key", keyID, "--period", "daily"); err != nil || !strings.Contains(out, "deleted") {
			t.Fatalf("delete: %q %v", out, err)
		}
	}
	t.Run("database", func(t *testing.T) {
		t.Chdir(t.TempDir())
		out, err := cli("keys", "create", "--name", "app", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(out), &k); err != nil || k.ID == "" {
			t.Fatalf("keys create --json: %q %v", out, err)
		}
		check(t, k.ID)
	})
	t.Run("admin API", func(t *testing.T) {
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
		_, k, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "app"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("XROUTE_URL", srv.URL)
		t.Setenv("XROUTE_ADMIN_KEY", admin)
		check(t, k.ID)
	})
}
