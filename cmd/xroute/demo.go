package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
)

// The demo's mock providers. Their names are what a #mock:only=
// directive addresses, and what the dashboard's deployments show.
const (
	demoPrimary = "mock-primary"
	demoBackup  = "mock-backup"
	// demoClaude is an Anthropic Messages mock serving demoClaudeModel,
	// with the prompt cache of the real API (breakpoints, TTLs, the
	// model's 1024-token minimum): a session's second turn reads what the
	// first wrote, and the request log and usage report show the saving.
	demoClaude      = "mock-claude"
	demoClaudeModel = "claude-sonnet-4-6"
	// demoRetryAfter is the Retry-After of the mocks' 429s: long enough to
	// watch the cooldown in the dashboard, short enough to wait out.
	demoRetryAfter = 20 * time.Second
)

// demoDataDir is where `serve --demo` keeps its database and secrets when
// --data does not say: a per-user data directory, so that a demo started
// from anywhere finds its keys again and litters no working directory
// ($XDG_DATA_HOME/xroute/demo, else ~/.local/share/xroute/demo; the
// platform's configuration directory on macOS and Windows).
func demoDataDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "xroute", "demo"), nil
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("demo data directory: %w (pass --data DIR)", err)
		}
		return filepath.Join(d, "xroute", "demo"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("demo data directory: %w (pass --data DIR)", err)
	}
	return filepath.Join(home, ".local", "share", "xroute", "demo"), nil
}

// startDemoMocks runs the mock providers in-process and points the config
// at them: a primary and a backup serving the same models, so failover
// can be seen with "#mock:status=503;only=mock-primary" (the primary
// fails, the backup answers: x-xroute-attempts: 2), and an Anthropic mock
// serving demoClaudeModel (prompt caching).
func startDemoMocks(cfg *config.Config) ([]*http.Server, error) {
	specs := []mock.Config{
		{Name: demoPrimary, Latency: 40 * time.Millisecond, TokensPerSec: 30, APIKey: "sk-mock-primary", Seed: 1, RetryAfter: demoRetryAfter},
		{Name: demoBackup, Latency: 80 * time.Millisecond, TokensPerSec: 20, APIKey: "sk-mock-backup", Seed: 2, RetryAfter: demoRetryAfter},
	}
	var servers []*http.Server
	for _, mc := range specs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return nil, fmt.Errorf("demo mock: %w", err)
		}
		srv := &http.Server{Handler: mock.New(mc), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		servers = append(servers, srv)
		cfg.Providers = append(cfg.Providers, config.Provider{
			Name: mc.Name, Type: "openai", BaseURL: "http://" + ln.Addr().String() + "/v1", APIKey: mc.APIKey,
			// The mock serves the Responses API and legacy completions as
			// OpenAI does: they are passed through natively.
			NativeFormats: []string{"responses", "completions"},
		})
	}
	// OpenAI's list prices, so the demo meters real-looking costs; the
	// embedding model has OpenAI's name, so SDK code runs unchanged.
	for _, m := range []struct{ name, in, out string }{
		{"gpt-4o-mini", "0.15", "0.60"}, {"gpt-4o", "2.50", "10.00"}, {"gpt-4.1-nano", "0.10", "0.40"},
		{"text-embedding-3-small", "0.02", "0"},
	} {
		if hasModel(cfg, m.name) {
			continue
		}
		cfg.Models = append(cfg.Models, config.Model{Name: m.name, OwnedBy: "xroute-demo", Deployments: []config.Deployment{
			{Provider: demoPrimary, Model: m.name, InputPrice: m.in, OutputPrice: m.out},
			{Provider: demoBackup, Model: m.name, InputPrice: m.in, OutputPrice: m.out},
		}, Cache: &config.ModelCache{Enabled: true}}) // the second identical request is a hit
	}
	srv, err := startDemoClaude(cfg)
	if err != nil {
		return servers, err
	}
	servers = append(servers, srv)
	if err := cfg.Validate(); err != nil {
		return servers, err
	}
	return servers, nil
}

// startDemoClaude runs the Anthropic mock and adds demoClaudeModel on it,
// at Anthropic's list prices (cache reads a tenth of input, 5-minute
// cache writes 1.25x).
func startDemoClaude(cfg *config.Config) (*http.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo mock: %w", err)
	}
	const key = "sk-ant-mock-claude"
	srv := &http.Server{Handler: anthropicmock.New(anthropicmock.Config{Config: mock.Config{
		Name: demoClaude, Latency: 40 * time.Millisecond, TokensPerSec: 30, APIKey: key, Seed: 3, RetryAfter: demoRetryAfter,
	}}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	cfg.Providers = append(cfg.Providers, config.Provider{Name: demoClaude, Type: "anthropic", BaseURL: "http://" + ln.Addr().String(), APIKey: key})
	if !hasModel(cfg, demoClaudeModel) {
		cfg.Models = append(cfg.Models, config.Model{Name: demoClaudeModel, OwnedBy: "xroute-demo", Deployments: []config.Deployment{
			{Provider: demoClaude, Model: demoClaudeModel, InputPrice: "3.00", CachedInputPrice: "0.30", CacheWriteInputPrice: "3.75", OutputPrice: "15.00"},
		}})
	}
	return srv, nil
}

func hasModel(cfg *config.Config, name string) bool {
	for _, m := range cfg.Models {
		if m.Name == name {
			return true
		}
	}
	return false
}

// demoKeys are the demo's caller and admin keys, kept (mode 0600) in its
// data directory so that a restart prints the same ones: a newcomer's
// exported variables keep working, and no pile of active demo keys grows.
type demoKeys struct {
	CallerID string `json:"caller_id"`
	Caller   string `json:"caller"`
	AdminID  string `json:"admin_id"`
	Admin    string `json:"admin"`
}

const demoKeysFile = "demo-keys.json"

// ensureDemoKeys returns the demo's keys: the stored ones while they are
// still active, else new ones, in which case every other key the demo
// minted (named demo or demo-admin) is revoked. The demo account gets its
// 10 USD once per database.
func ensureDemoKeys(ctx context.Context, gw *app.App, dir string) (demoKeys, error) {
	path := filepath.Join(dir, demoKeysFile)
	var dk demoKeys
	if b, err := os.ReadFile(path); err == nil {
		if json.Unmarshal(b, &dk) != nil {
			dk = demoKeys{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return demoKeys{}, fmt.Errorf("demo keys: %w", err)
	}
	alive := func(plain, id string) bool {
		if plain == "" {
			return false
		}
		k, err := gw.Keys.Verify(ctx, plain)
		return err == nil && k.ID == id
	}
	changed := false
	if !alive(dk.Caller, dk.CallerID) {
		plain, k, err := gw.Keys.Create(ctx, keys.CreateParams{Name: "demo", Actor: "demo"})
		if err != nil {
			return demoKeys{}, fmt.Errorf("demo key: %w", err)
		}
		dk.Caller, dk.CallerID, changed = plain, k.ID, true
	}
	if !alive(dk.Admin, dk.AdminID) {
		plain, k, err := gw.Keys.Create(ctx, keys.CreateParams{Name: "demo-admin", Kind: keys.KindAdmin, Actor: "demo"})
		if err != nil {
			return demoKeys{}, fmt.Errorf("demo admin key: %w", err)
		}
		dk.Admin, dk.AdminID, changed = plain, k.ID, true
	}
	if changed {
		b, _ := json.Marshal(dk)
		if err := writeFileAtomic(path, b, 0o600); err != nil {
			return demoKeys{}, fmt.Errorf("demo keys: %w", err)
		}
		if err := revokeOtherDemoKeys(ctx, gw.Keys, dk); err != nil {
			return demoKeys{}, err
		}
	}
	if _, _, err := gw.Ledger.TopUp(ctx, keys.DefaultAccountID, 10*billing.NanoPerUSD, "demo-initial-credits", "demo"); err != nil {
		return demoKeys{}, fmt.Errorf("demo credits: %w", err)
	}
	return dk, nil
}

// revokeOtherDemoKeys revokes the demo keys the current ones replace.
func revokeOtherDemoKeys(ctx context.Context, ks *keys.Service, dk demoKeys) error {
	for after := ""; ; {
		page, err := ks.List(ctx, keys.KeyFilter{After: after, Limit: 200})
		if err != nil {
			return fmt.Errorf("demo keys: %w", err)
		}
		for _, k := range page {
			if (k.Name == "demo" || k.Name == "demo-admin") && k.ID != dk.CallerID && k.ID != dk.AdminID && k.RevokedAt == nil {
				if err := ks.Revoke(ctx, k.ID, "demo"); err != nil {
					return fmt.Errorf("demo keys: %w", err)
				}
			}
		}
		if len(page) < 200 {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so that a crash leaves the old file or the new one, never half of one.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// printDemo prints what a newcomer pastes into a shell; README.md's demo
// transcript shows these lines (TestREADMEDemoTranscriptMatches).
func printDemo(w io.Writer, e endpoints, dk demoKeys, dataDir string) {
	base, key := e.Base, dk.Caller
	fmt.Fprintf(w, "xroute demo is running with mock providers (%s, %s, %s); its data is in %s.\n", demoPrimary, demoBackup, demoClaude, dataDir)
	fmt.Fprintf(w, "Paste these lines into your shell:\n\n")
	fmt.Fprintf(w, "export OPENAI_BASE_URL=%s\n", e.OpenAI)
	fmt.Fprintf(w, "export OPENAI_API_KEY=%s\n", key)
	fmt.Fprintf(w, "export XROUTE_URL=%s\n", base)
	fmt.Fprintf(w, "export XROUTE_ADMIN_KEY=%s\n", dk.Admin)
	fmt.Fprintf(w, "\nThen try (works as printed):\n\n")
	fmt.Fprintf(w, "curl -sS %s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'\n\n", base, key)
	fmt.Fprintf(w, "Failover: the primary fails this one request (503), the backup answers it (x-xroute-attempts: 2):\n\n")
	fmt.Fprintf(w, "curl -sS -i %s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello! #mock:status=503;only=%s\"}]}'\n\n", base, key, demoPrimary)
	fmt.Fprintf(w, "A 429 from the primary (Retry-After: %d) cools down that deployment only; the dashboard shows it:\n\n", int(demoRetryAfter.Seconds()))
	fmt.Fprintf(w, "curl -sS -i %s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello! #mock:status=429;only=%s\"}]}'\n\n", base, key, demoPrimary)
	fmt.Fprintf(w, "Embeddings (text-embedding-3-small), the Responses API and the /openai/v1 base URL work too:\n\n")
	fmt.Fprintf(w, "curl -sS %s/v1/embeddings -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"text-embedding-3-small\",\"input\":\"Hello!\"}'\n", base, key)
	fmt.Fprintf(w, "curl -sS %s/openai/v1/responses -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"input\":\"Hello!\"}'\n\n", base, key)
	fmt.Fprintf(w, "Claude Code and the Anthropic SDKs: ANTHROPIC_BASE_URL=%s ANTHROPIC_AUTH_TOKEN=%s claude --model gpt-4o-mini\n\n", e.Anthropic, key)
	fmt.Fprintf(w, "Streaming: add \"stream\":true to the body and -N to curl. The demo account has 10 USD of credits:\n")
	fmt.Fprintf(w, "curl -sS %s/v1/credits -H 'Authorization: Bearer %s'\n\n", base, key)
	fmt.Fprintf(w, "Operators: the dashboard is at %s (sign in with XROUTE_ADMIN_KEY); the CLI uses XROUTE_URL and XROUTE_ADMIN_KEY:\n\n", e.UI)
	fmt.Fprintf(w, "xroute keys list\n")
	fmt.Fprintf(w, "curl -sS %s/admin/v1/deployments -H 'Authorization: Bearer %s'\n\n", base, dk.Admin)
	fmt.Fprintf(w, "A restart with the same data directory prints these same keys. Stop with Ctrl-C.\n")
}
