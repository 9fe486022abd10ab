package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/keys"
)

// cliResult is one command line's outcome, as a shell sees it.
type cliResult struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return cliResult{stdout: out.String(), stderr: errOut.String(), code: exitCode(err)}
}

// adminServer is a real gateway with an admin key, behind httptest.
func adminServer(t *testing.T) (url, adminKey string) {
	t.Helper()
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
	t.Cleanup(func() { srv.Close(); a.Close() })
	admin, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "ops", Kind: keys.KindAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, admin
}

// createKey makes a key in the working directory's database and returns its id.
func createKey(t *testing.T, args ...string) (id string, expires *time.Time) {
	t.Helper()
	r := runCLI(t, append([]string{"keys", "create", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("keys create: %d %s", r.code, r.stderr)
	}
	var k struct {
		ID        string     `json:"id"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.ID == "" {
		t.Fatalf("keys create --json: %q %v", r.stdout, err)
	}
	return k.ID, k.ExpiresAt
}

// near says t is d from now, to within an hour (the test's own run time
// is far below that; days are what is checked).
func near(t *testing.T, what string, at *time.Time, d time.Duration) {
	t.Helper()
	if at == nil {
		t.Fatalf("%s: no time", what)
	}
	if diff := time.Until(*at) - d; diff > time.Hour || diff < -time.Hour {
		t.Fatalf("%s: %v is not %v from now", what, *at, d)
	}
}

func adminPost(t *testing.T, base, key, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/admin/v1"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// allCommands walks the tree: every command and subcommand a user can call.
func allCommands(c *cobra.Command) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if sub.Hidden {
			continue
		}
		path := strings.Fields(sub.CommandPath())[1:]
		out = append(out, path)
		out = append(out, allCommands(sub)...)
	}
	return out
}

// TestCLI is the list, one row per item.
func TestCLI(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("XROUTE_URL", "")
	t.Setenv("XROUTE_ADMIN_KEY", "")

	for _, tc := range []struct {
		name string
		test func(t *testing.T)
	}{
		{"flags after arguments", func(t *testing.T) {
			id, _ := createKey(t, "--name", "order")
			r := runCLI(t, "keys", "rotate", id, "--overlap", "1h", "--quiet")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "xr-") {
				t.Fatalf("keys rotate ID --overlap 1h: %+v", r)
			}
			// and before, as ever
			id, _ = createKey(t, "--name", "order2")
			r = runCLI(t, "keys", "--config", "", "rotate", "--overlap", "2h", id)
			if r.code != 0 || !strings.Contains(r.stderr, "keeps working for 2h") {
				t.Fatalf("keys rotate --overlap 2h ID: %+v", r)
			}
		}},
		{"--help on every command", func(t *testing.T) {
			paths := allCommands(newRoot(&bytes.Buffer{}, &bytes.Buffer{}))
			if len(paths) < 30 {
				t.Fatalf("the walk found only %d commands", len(paths))
			}
			paths = append(paths, []string{})
			for _, p := range paths {
				for _, h := range []string{"--help", "-h"} {
					r := runCLI(t, append(p, h)...)
					want := strings.Join(append([]string{"xroute"}, p...), " ")
					if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, want) || r.stderr != "" {
						t.Errorf("%s %s: exit %d, stdout %q, stderr %q", want, h, r.code, r.stdout, r.stderr)
					}
				}
			}
			// a command with no subcommand shows its help, as `help keys` does
			if r := runCLI(t, "keys"); r.code != 0 || !strings.Contains(r.stdout, "rotate") {
				t.Errorf("xroute keys: %+v", r)
			}
			if r := runCLI(t, "help", "keys", "rotate"); r.code != 0 || !strings.Contains(r.stdout, "--overlap") {
				t.Errorf("xroute help keys rotate: %+v", r)
			}
		}},
		{"--version and version", func(t *testing.T) {
			for _, args := range [][]string{{"--version"}, {"version"}} {
				r := runCLI(t, args...)
				if r.code != 0 || !strings.Contains(r.stdout, "xroute ") || !strings.Contains(r.stdout, "commit ") || !strings.Contains(r.stdout, runtime.Version()) {
					t.Errorf("%v: %+v", args, r)
				}
			}
			r := runCLI(t, "version", "--json")
			var v versionInfo
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version == "" || v.Commit == "" || v.GoVersion != runtime.Version() {
				t.Errorf("version --json: %q %v", r.stdout, err)
			}
		}},
		{"misspelt command: did you mean, exit 2", func(t *testing.T) {
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"kyes", "list"}, "keys"},
				{[]string{"keys", "rotat", "key_1", "--overlap", "1h"}, "rotate"},
				{[]string{"budget", "list"}, "budgets"},
				{[]string{"credits", "balanse"}, "balance"},
			} {
				r := runCLI(t, c.args...)
				if r.code != 2 || !strings.Contains(r.stderr, "unknown command") || !strings.Contains(r.stderr, "Did you mean this?\n\t"+c.want) || !strings.Contains(r.stderr, "Usage: ") {
					t.Errorf("%v: %+v", c.args, r)
				}
			}
			if r := runCLI(t, "completion", "bahs"); r.code != 2 || !strings.Contains(r.stderr, "Did you mean this?\n\tbash") {
				t.Errorf("completion bahs: %+v", r)
			}
			if r := runCLI(t, "mock", "antropic"); r.code != 2 || !strings.Contains(r.stderr, "Did you mean this?\n\tanthropic") {
				t.Errorf("mock antropic: %+v", r)
			}
		}},
		{"misspelt flag: did you mean, exit 2", func(t *testing.T) {
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"keys", "rotate", "key_1", "--overlapp", "1h"}, "--overlap"},
				{[]string{"keys", "create", "--nmae", "x"}, "--name"},
				{[]string{"usage", "report", "--group", "model"}, "--group-by"},
			} {
				r := runCLI(t, c.args...)
				if r.code != 2 || !strings.Contains(r.stderr, "unknown flag") || !strings.Contains(r.stderr, "Did you mean this?\n\t"+c.want) || !strings.Contains(r.stderr, "Usage: xroute ") {
					t.Errorf("%v: %+v", c.args, r)
				}
			}
			// bad values and missing arguments are usage errors too
			for _, args := range [][]string{
				{"keys", "rotate", "key_1", "--overlap", "soon"},
				{"keys", "rotate"},
				{"keys", "create"},
				{"keys", "list", "--json", "--csv"},
				{"keys", "list", "extra"},
			} {
				if r := runCLI(t, args...); r.code != 2 || !strings.Contains(r.stderr, "Usage: ") {
					t.Errorf("%v: %+v", args, r)
				}
			}
		}},
		{"exit statuses of the process", func(t *testing.T) {
			// the test binary is xroute in a subprocess (TestMain)
			for _, c := range []struct {
				args string
				code int
			}{{"version", 0}, {"kyes list", 2}, {"keys rotate key_1 --overlap soon", 2}, {"keys show key_nope", 1}} {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "XROUTE_TEST_SUBPROCESS_ARGS="+c.args)
				var errOut bytes.Buffer
				cmd.Stderr = &errOut
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				if code != c.code || strings.Count(errOut.String(), "xroute: ") != min(c.code, 1) {
					t.Errorf("xroute %s: exit %d (%v), stderr %q; want %d", c.args, code, err, errOut.String(), c.code)
				}
			}
		}},
		{"an error is printed once", func(t *testing.T) {
			for _, args := range [][]string{
				{"keys", "rotate", "key_1", "--overlapp", "1h"},
				{"kyes"},
				{"keys", "show", "key_doesnotexist"},
			} {
				r := runCLI(t, args...)
				if n := strings.Count(r.stderr, "xroute: "); n != 1 || r.stdout != "" || r.code == 0 {
					t.Errorf("%v: %d messages: %+v", args, n, r)
				}
			}
		}},
		{"server error: exit 1 with message and request id", func(t *testing.T) {
			base, admin := adminServer(t)
			t.Setenv("XROUTE_URL", base)
			t.Setenv("XROUTE_ADMIN_KEY", admin)
			r := runCLI(t, "keys", "show", "key_doesnotexist")
			if r.code != 1 || !strings.Contains(r.stderr, "server answered 404") || !strings.Contains(r.stderr, "request id ") || strings.Count(r.stderr, "xroute: ") != 1 {
				t.Fatalf("%+v", r)
			}
			t.Setenv("XROUTE_ADMIN_KEY", "xra-wrong")
			if r := runCLI(t, "keys", "list"); r.code != 1 || !strings.Contains(r.stderr, "401") || strings.Contains(r.stderr, "xra-wrong") {
				t.Fatalf("wrong admin key: %+v", r)
			}
		}},
		{"days and weeks: CLI, local", func(t *testing.T) {
			id, exp := createKey(t, "--name", "month", "--expires", "30d")
			near(t, "--expires 30d", exp, 30*24*time.Hour)
			r := runCLI(t, "keys", "rotate", id, "--overlap", "1w")
			if r.code != 0 || !strings.Contains(r.stderr, "keeps working for 1w") {
				t.Fatalf("--overlap 1w: %+v", r)
			}
			var old struct {
				ExpiresAt *time.Time `json:"expires_at"`
			}
			json.Unmarshal([]byte(runCLI(t, "keys", "show", id).stdout), &old)
			near(t, "old key after --overlap 1w", old.ExpiresAt, 7*24*time.Hour)
		}},
		{"days and weeks: CLI through the admin API", func(t *testing.T) {
			base, admin := adminServer(t)
			t.Setenv("XROUTE_URL", base)
			t.Setenv("XROUTE_ADMIN_KEY", admin)
			id, exp := createKey(t, "--name", "month", "--expires", "30d")
			near(t, "remote --expires 30d", exp, 30*24*time.Hour)
			if r := runCLI(t, "keys", "rotate", id, "--overlap", "1w"); r.code != 0 || !strings.Contains(r.stderr, "keeps working for 1w") {
				t.Fatalf("remote --overlap 1w: %+v", r)
			}
			var old struct {
				ExpiresAt *time.Time `json:"expires_at"`
			}
			json.Unmarshal([]byte(runCLI(t, "keys", "show", id).stdout), &old)
			near(t, "old key after remote --overlap 1w", old.ExpiresAt, 7*24*time.Hour)
		}},
		{"days and weeks: config file and environment", func(t *testing.T) {
			os.WriteFile("days.yaml", []byte("auth:\n  rotation_overlap: 1w\n  cache_ttl: 1d\nresponses:\n  retention: 2w\n"), 0o600)
			cfg, err := config.Load("days.yaml", []string{"XROUTE_ANOMALY_WARMUP=2d"})
			if err != nil || cfg.Auth.RotationOverlap != 7*24*time.Hour || cfg.Auth.CacheTTL != 24*time.Hour ||
				cfg.Responses.Retention != 14*24*time.Hour || cfg.Anomaly.Warmup != 48*time.Hour {
				t.Fatalf("config: %v %+v", err, cfg.Auth)
			}
			// the CLI reads that file
			if _, exp := createKey(t, "--config", "days.yaml", "--name", "cfg", "--expires", "1w"); exp == nil {
				t.Fatal("no expiry")
			}
		}},
		{"days and weeks: admin API", func(t *testing.T) {
			base, admin := adminServer(t)
			for _, c := range []struct {
				expiresIn string
				want      time.Duration
			}{{"30d", 30 * 24 * time.Hour}, {"720h", 30 * 24 * time.Hour}, {"1w2d", 9 * 24 * time.Hour}} {
				code, k := adminPost(t, base, admin, "/keys", fmt.Sprintf(`{"name":"api","expires_in":%q}`, c.expiresIn))
				exp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(k["expires_at"]))
				if code != http.StatusCreated {
					t.Fatalf("expires_in %s: %d %v", c.expiresIn, code, k)
				}
				near(t, "expires_in "+c.expiresIn, &exp, c.want)
			}
			code, k := adminPost(t, base, admin, "/keys", `{"name":"api"}`)
			if code != http.StatusCreated {
				t.Fatal(code, k)
			}
			id := fmt.Sprint(k["id"])
			if code, _ := adminPost(t, base, admin, "/keys/"+id+"/rotate", `{"overlap":"1w"}`); code != http.StatusCreated {
				t.Fatalf("overlap 1w: %d", code)
			}
			code, e := adminPost(t, base, admin, "/keys/"+id+"/rotate", `{"overlap":"1x"}`)
			if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(e), "overlap") {
				t.Fatalf("overlap 1x: %d %v", code, e)
			}
		}},
		{"--json and --csv on every listing", func(t *testing.T) {
			acct := strings.TrimSpace(runCLI(t, "accounts", "create", "acme").stdout)
			id, _ := createKey(t, "--name", "listed", "--account", acct)
			for _, args := range [][]string{
				{"credits", "topup", "--account", acct, "--amount", "1.00", "--idempotency-key", "k1"},
				{"budgets", "set", "--key", id, "--period", "daily", "--limit", "5.00"},
			} {
				if r := runCLI(t, args...); r.code != 0 {
					t.Fatalf("%v: %+v", args, r)
				}
			}
			os.WriteFile("pk.yaml", []byte("providers:\n  - {name: up, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"), 0o600)
			logs := logsServer(t, []logRow{{RequestID: "req_1", CreatedAt: time.Now().UTC(), Model: "m", Status: 200, CostUSD: "0.01"}})
			for _, c := range []struct {
				args   []string
				header string
				remote string // a server to use
			}{
				{[]string{"keys", "list"}, "ID", ""},
				{[]string{"accounts", "list"}, "ID", ""},
				{[]string{"provider-keys", "list", "--config", "pk.yaml"}, "ID", ""},
				{[]string{"issuers", "list"}, "ID", ""},
				{[]string{"audit", "list"}, "SEQ", ""},
				{[]string{"credits", "ledger", "--account", acct}, "ID", ""},
				{[]string{"budgets", "list"}, "SCOPE", ""},
				{[]string{"usage", "report"}, "", ""},
				{[]string{"logs"}, "TIME", logs},
			} {
				t.Run(c.args[0], func(t *testing.T) {
					if c.remote != "" {
						t.Setenv("XROUTE_URL", c.remote)
						t.Setenv("XROUTE_ADMIN_KEY", "xra-test")
					}
					r := runCLI(t, append(c.args, "--json")...)
					var v any
					if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil || v == nil {
						t.Errorf("--json: %v %+v", err, r)
					}
					r = runCLI(t, append(c.args, "--csv")...)
					recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
					if r.code != 0 || err != nil || len(recs) < 1 || (c.header != "" && recs[0][0] != c.header) {
						t.Errorf("--csv: %v %+v", err, r)
					}
					if r := runCLI(t, append(c.args, "--json", "--csv")...); r.code != 2 {
						t.Errorf("--json --csv: %+v", r)
					}
				})
			}
		}},
		{"completion scripts", func(t *testing.T) {
			for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
				r := runCLI(t, "completion", sh)
				if r.code != 0 || !strings.Contains(r.stdout, "xroute") || len(r.stdout) < 1000 {
					t.Errorf("completion %s: exit %d, %d bytes", sh, r.code, len(r.stdout))
				}
			}
			// what the scripts call: subcommands complete, with their flags,
			// key ids, and flag values
			id, _ := createKey(t, "--name", "completed")
			if r := runCLI(t, "__complete", "keys", "rotate", ""); !strings.Contains(r.stdout, id+"\tcompleted (active)") {
				t.Errorf("__complete keys rotate: %q", r.stdout)
			}
			if r := runCLI(t, "__complete", "budgets", "set", "--period", ""); !strings.Contains(r.stdout, "monthly") {
				t.Errorf("__complete budgets set --period: %q", r.stdout)
			}
			empty := t.TempDir()
			t.Chdir(empty)
			if r := runCLI(t, "__complete", "keys", "show", ""); strings.Contains(r.stdout, "key_") {
				t.Errorf("no database, no ids: %q", r.stdout)
			}
			if ents, _ := os.ReadDir(empty); len(ents) != 0 {
				t.Errorf("completion created %v", ents)
			}
			r := runCLI(t, "__complete", "keys", "ro")
			if !strings.Contains(r.stdout, "rotate") {
				t.Errorf("__complete keys ro: %q", r.stdout)
			}
			r = runCLI(t, "__complete", "keys", "rotate", "key_1", "--ov")
			if !strings.Contains(r.stdout, "--overlap") {
				t.Errorf("__complete keys rotate key_1 --ov: %q", r.stdout)
			}
		}},
	} {
		t.Run(tc.name, tc.test)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  versionInfo
	}{
		{name: "go run: nothing recorded", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want: versionInfo{Version: "devel", Commit: "unknown"}},
		{name: "go build in a checkout", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "abc", "vcs.time", "2026-12-07T10:00:00Z", "vcs.modified", "true")},
			want: versionInfo{Version: "devel", Commit: "abc-dirty", Date: "2026-12-07T10:00:00Z"}},
		{name: "go install module@v1.2.0", bi: &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}},
			want: versionInfo{Version: "v1.2.0", Commit: "unknown"}},
		{name: "-ldflags -X wins", version: "v2.0.0", commit: "def", date: "d", bi: &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: vcs("vcs.revision", "abc", "vcs.modified", "true")},
			want: versionInfo{Version: "v2.0.0", Commit: "def", Date: "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versionFrom(tc.version, tc.commit, tc.date, tc.bi, true)
			tc.want.GoVersion, tc.want.Platform = runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
