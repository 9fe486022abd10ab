package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
)

// TestDemoModelsArePriced: every model `serve --demo` offers has a price
// (or is marked free): a model without one is refused, so the demo would
// not answer.
func TestDemoModelsArePriced(t *testing.T) {
	cfg := config.Default()
	servers, err := startDemoMocks(&cfg)
	for _, s := range servers {
		defer s.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Models) == 0 {
		t.Fatal("the demo has no models")
	}
	for _, m := range cfg.Models {
		for _, d := range m.Deployments {
			if !d.Priced() && !d.Free {
				t.Errorf("demo model %s: deployment %s/%s has no price", m.Name, d.Provider, d.Model)
			}
		}
	}
	if !hasModel(&cfg, "text-embedding-3-small") {
		t.Error("the demo serves no embedding model with an OpenAI name")
	}
}

// demoRun is one `serve --demo` in the background.
type demoRun struct {
	out  string            // everything printed up to "Stop with Ctrl-C."
	env  map[string]string // its export lines
	stop func()            // Ctrl-C, and wait for serve to return
}

func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--demo", "--addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	d := &demoRun{env: map[string]string{}}
	var b strings.Builder
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		b.WriteString(line + "\n")
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
			d.env[k] = v
		}
		if strings.Contains(line, "Stop with Ctrl-C.") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	d.out = b.String()
	stopped := false
	d.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v on interrupt", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	}
	t.Cleanup(d.stop)
	if d.env["OPENAI_API_KEY"] == "" {
		d.stop()
		t.Fatalf("the demo printed no key:\n%s", d.out)
	}
	return d
}

// post sends a JSON body with the demo key and returns status, headers
// and body.
func (d *demoRun) post(t *testing.T, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", d.env["XROUTE_URL"]+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.env["OPENAI_API_KEY"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// deployments reads the admin API's deployments, the dashboard's data.
func (d *demoRun) deployments(t *testing.T) map[string]map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", d.env["XROUTE_URL"]+"/admin/v1/deployments", nil)
	req.Header.Set("Authorization", "Bearer "+d.env["XROUTE_ADMIN_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("deployments: %d %v", resp.StatusCode, err)
	}
	out := map[string]map[string]any{}
	for _, dep := range body.Data {
		if dep["model"] == "gpt-4o-mini" {
			out[dep["provider"].(string)] = dep
		}
	}
	return out
}

func chatBody(content string) string {
	b, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": content}}})
	return string(b)
}

// TestDemoRestartReusesKeys: two starts in one data directory print the
// same keys and mint none; a demo key revoked in between is replaced
// (and only then a new one is minted).
func TestDemoRestartReusesKeys(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := filepath.Join(t.TempDir(), "demo")
	countKeys := func() (active, all int) {
		db, err := sql.Open("sqlite", filepath.Join(dir, "xroute.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE revoked_at IS NULL) FROM api_keys`).Scan(&all, &active)
		return active, all
	}
	first := startDemo(t, "--data", dir)
	first.stop()
	_, all1 := countKeys()
	second := startDemo(t, "--data", dir)
	second.stop()
	for _, k := range []string{"OPENAI_API_KEY", "XROUTE_ADMIN_KEY"} {
		if first.env[k] != second.env[k] {
			t.Errorf("%s changed across a restart: %s → %s", k, first.env[k], second.env[k])
		}
	}
	if _, all2 := countKeys(); all2 != all1 {
		t.Fatalf("a restart minted keys: %d → %d", all1, all2)
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("the demo wrote into the working directory: %v", entries)
	}
	if fi, err := os.Stat(filepath.Join(dir, demoKeysFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("demo keys file: %v %v", fi, err)
	}

	// Revoke the caller key (through the CLI on the database): the next
	// start mints a new one and keeps the admin key.
	if err := run(context.Background(), []string{"keys", "revoke", callerID(t, dir)}, io.Discard, io.Discard); err != nil {
		t.Fatalf("keys revoke: %v", err)
	}
	third := startDemo(t, "--data", dir)
	third.stop()
	if third.env["OPENAI_API_KEY"] == first.env["OPENAI_API_KEY"] {
		t.Fatal("a revoked demo key was printed again")
	}
	if third.env["XROUTE_ADMIN_KEY"] != first.env["XROUTE_ADMIN_KEY"] {
		t.Fatal("the active admin key was replaced")
	}
	if active, _ := countKeys(); active != 2 {
		t.Fatalf("%d active keys after the replacement, want 2 (the demo's caller and admin)", active)
	}
}

func callerID(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, demoKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	var dk demoKeys
	json.Unmarshal(b, &dk)
	// The CLI works on the demo's database through a config naming it.
	cfg := filepath.Join(t.TempDir(), "x.yaml")
	os.WriteFile(cfg, []byte("database: {path: "+filepath.Join(dir, "xroute.db")+"}\nauth: {pepper_file: "+filepath.Join(dir, "xroute.pepper")+"}\nvault: {master_key_file: "+filepath.Join(dir, "xroute.master")+"}\nusage: {spool_dir: "+filepath.Join(dir, "xroute.db.spool")+"}\n"), 0o600)
	t.Setenv("XROUTE_CONFIG", cfg)
	return dk.CallerID
}

// TestDemoDefaultsToAPerUserDataDir: without --data the demo writes into
// $XDG_DATA_HOME/xroute/demo, never into the working directory.
func TestDemoDefaultsToAPerUserDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	d := startDemo(t)
	d.stop()
	if _, err := os.Stat(filepath.Join(xdg, "xroute", "demo", "xroute.db")); err != nil {
		t.Fatalf("no database in the per-user data directory: %v", err)
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("the demo wrote into the working directory: %v", entries)
	}
}

// TestDemoShowsFailoverAndCooldown: what the demo's banner tells a
// newcomer to try does what it says.
func TestDemoShowsFailoverAndCooldown(t *testing.T) {
	d := startDemo(t, "--data", t.TempDir())

	t.Run("failover lands on the backup", func(t *testing.T) {
		st, h, b := d.post(t, "/v1/chat/completions", chatBody("Hello! #mock:status=503;only=mock-primary"))
		if st != 200 || h.Get("x-xroute-attempts") != "2" || h.Get("x-xroute-provider") != demoBackup {
			t.Fatalf("%d attempts=%s provider=%s: %s", st, h.Get("x-xroute-attempts"), h.Get("x-xroute-provider"), b)
		}
		deps := d.deployments(t)
		if deps[demoPrimary]["failures"].(float64) < 1 || deps[demoPrimary]["breaker"] == nil {
			t.Fatalf("the dashboard's data does not show the primary's failure: %v", deps[demoPrimary])
		}
	})
	t.Run("a 429 cools down that deployment only", func(t *testing.T) {
		st, h, b := d.post(t, "/v1/chat/completions", chatBody("Hello! #mock:status=429;only=mock-primary"))
		if st != 200 || h.Get("x-xroute-provider") != demoBackup {
			t.Fatalf("%d provider=%s: %s", st, h.Get("x-xroute-provider"), b)
		}
		deps := d.deployments(t)
		if deps[demoPrimary]["cooldown_until"] == nil || deps[demoBackup]["cooldown_until"] != nil {
			t.Fatalf("cooldowns: primary %v, backup %v", deps[demoPrimary]["cooldown_until"], deps[demoBackup]["cooldown_until"])
		}
		// While the primary cools down, plain requests go to the backup at
		// the first attempt: the primary is skipped, not retried.
		st, h, b = d.post(t, "/v1/chat/completions", chatBody("Hello!"))
		if st != 200 || h.Get("x-xroute-provider") != demoBackup || h.Get("x-xroute-attempts") != "1" {
			t.Fatalf("during the cooldown: %d provider=%s attempts=%s: %s", st, h.Get("x-xroute-provider"), h.Get("x-xroute-attempts"), b)
		}
	})
	t.Run("embeddings", func(t *testing.T) {
		st, _, b := d.post(t, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"Hello!"}`)
		if st != 200 || !bytes.Contains(b, []byte(`"embedding"`)) {
			t.Fatalf("%d %s", st, b)
		}
	})
	t.Run("JSON mode and json_schema", func(t *testing.T) {
		for _, tc := range []struct{ name, format string }{
			{"json_object", `{"type":"json_object"}`},
			{"json_schema", `{"type":"json_schema","json_schema":{"name":"city","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"},"size":{"type":"string","enum":["small","big"]},"tags":{"type":"array","items":{"type":"string"}}},"required":["name","size","tags"],"additionalProperties":false}}}`},
		} {
			st, _, b := d.post(t, "/v1/chat/completions", `{"model":"gpt-4.1-nano","response_format":`+tc.format+`,"messages":[{"role":"user","content":"A city as JSON."}]}`)
			var out struct {
				Choices []struct {
					Message struct{ Content string } `json:"message"`
				} `json:"choices"`
			}
			if st != 200 || json.Unmarshal(b, &out) != nil || len(out.Choices) == 0 {
				t.Fatalf("%s: %d %s", tc.name, st, b)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(out.Choices[0].Message.Content), &v); err != nil {
				t.Fatalf("%s: the answer is not a JSON object: %q", tc.name, out.Choices[0].Message.Content)
			}
			if tc.name == "json_schema" {
				if _, ok := v["name"].(string); !ok || (v["size"] != "small" && v["size"] != "big") {
					t.Fatalf("json_schema answer does not fit the schema: %v", v)
				}
				if _, ok := v["tags"].([]any); !ok {
					t.Fatalf("json_schema answer does not fit the schema: %v", v)
				}
			}
		}
	})
	t.Run("Responses API text.format json_schema", func(t *testing.T) {
		st, _, b := d.post(t, "/v1/responses", `{"model":"gpt-4o-mini","input":"A city as JSON.","text":{"format":{"type":"json_schema","name":"city","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"},"population":{"type":"integer"}},"required":["name","population"],"additionalProperties":false}}}}`)
		var out struct {
			Output []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
		}
		if st != 200 || json.Unmarshal(b, &out) != nil || len(out.Output) == 0 || len(out.Output[len(out.Output)-1].Content) == 0 {
			t.Fatalf("%d %s", st, b)
		}
		var v map[string]any
		text := out.Output[len(out.Output)-1].Content[0].Text
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatalf("not JSON: %q", text)
		}
		if _, ok := v["name"].(string); !ok {
			t.Fatalf("does not fit the schema: %v", v)
		}
		if n, ok := v["population"].(float64); !ok || n != float64(int64(n)) {
			t.Fatalf("does not fit the schema: %v", v)
		}
	})
	t.Run("a 429 from every deployment carries Retry-After", func(t *testing.T) {
		// Last: it cools down both embedding deployments.
		st, h, b := d.post(t, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"x #mock:status=429"}`)
		if st != 429 || h.Get("Retry-After") == "" {
			t.Fatalf("%d Retry-After=%q: %s", st, h.Get("Retry-After"), b)
		}
	})
}

// TestREADMEDemoTranscriptMatches: the lines README.md says the demo
// prints are the lines it prints (keys and ports aside).
func TestREADMEDemoTranscriptMatches(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "The demo prints what to paste into your shell")
	if !ok {
		t.Fatal("README has no demo transcript")
	}
	_, block, _ := strings.Cut(after, "```\n")
	block, _, _ = strings.Cut(block, "```")
	d := startDemo(t, "--data", t.TempDir())
	d.stop()
	shape := regexp.MustCompile(`127\.0\.0\.1:\d+|xra?-[A-Za-z0-9…]+|/[^ ]*xroute/demo`)
	printed := map[string]bool{}
	for _, l := range strings.Split(d.out, "\n") {
		printed[shape.ReplaceAllString(l, "X")] = true
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		if l == "" || l == "…" {
			continue
		}
		n++
		if !printed[shape.ReplaceAllString(l, "X")] {
			t.Errorf("README shows a line the demo does not print:\n%s", l)
		}
	}
	if n < 4 {
		t.Fatalf("README's demo block is too short (%d lines)", n)
	}
}
