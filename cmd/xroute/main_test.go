package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoPrintsWorkingEnvAndCurl runs what the README tells a new user to
// run, follows the printed instructions, then stops it like Ctrl-C does.
func TestDemoPrintsWorkingEnvAndCurl(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()

	env := map[string]string{}
	var curl string
	sc := bufio.NewScanner(pr)
	for sc.Scan() && curl == "" {
		line := sc.Text()
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
			env[k] = v
		}
		if strings.HasPrefix(line, "curl ") {
			curl = line
		}
	}
	go io.Copy(io.Discard, pr)
	base, key := env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"]
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/v1") || !strings.HasPrefix(key, "xr-") {
		t.Fatalf("demo printed env %v", env)
	}
	if !strings.Contains(curl, base+"/chat/completions") || !strings.Contains(curl, "Bearer "+key) {
		t.Fatalf("curl line does not use the printed base and key: %s", curl)
	}
	// The body the curl line sends, exactly as printed.
	_, after, _ := strings.Cut(curl, "-d '")
	body := strings.TrimSuffix(after, "'")
	req, _ := http.NewRequest("POST", base+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Object != "chat.completion" || out.Choices[0].Message.Content == "" {
		t.Fatalf("curl as printed: %d %+v %v", resp.StatusCode, out, err)
	}

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v on interrupt", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("XDG_DATA_HOME"), "xroute", "demo", "xroute.db")); err != nil {
		t.Fatalf("embedded database not created in the per-user data directory: %v", err)
	}
}

func TestKeysCreateQuietAndList(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"keys", "create", "--name", "ci", "--models", "gpt-4o*", "--quiet"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out.String())
	if !strings.HasPrefix(key, "xr-") || strings.Contains(key, "\n") {
		t.Fatalf("--quiet must print only the key, got %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"keys", "list"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), key) || !strings.Contains(out.String(), key[:7]+"…") || !strings.Contains(out.String(), "gpt-4o*") {
		t.Fatalf("list must show the hint, never the key:\n%s", out.String())
	}
}

func TestBadConfigFailsAtStartNamingTheField(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.yaml")
	os.WriteFile(p, []byte("server:\n  max_body_bytes: lots\n"), 0o600)
	err := run(context.Background(), []string{"serve", "--config", p}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "server.max_body_bytes") {
		t.Fatalf("want an error naming server.max_body_bytes, got %v", err)
	}
}

// TestAuditVerifyCatchesTampering: someone with database access drops the
// append-only trigger and edits a row; `xroute audit verify` names it.
func TestAuditVerifyCatchesTampering(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if err := run(ctx, []string{"keys", "create", "--name", name, "--quiet"}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := run(ctx, []string{"audit", "verify"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "intact: 3 rows") {
		t.Fatalf("untouched log: %v %q", err, out.String())
	}
	db, err := sql.Open("sqlite", "file:xroute.db")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER IF EXISTS audit_log_no_update`,
		`UPDATE audit_log SET details = '{"name":"innocent"}' WHERE seq = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	out.Reset()
	err = run(ctx, []string{"audit", "verify"}, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "BROKEN at seq 2") {
		t.Fatalf("tampered log: %v %q", err, out.String())
	}
}

func TestProviderKeysAndVaultRotateCLI(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg := "providers:\n  - {name: up, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
	os.WriteFile("x.yaml", []byte(cfg), 0o600)
	ctx := context.Background()
	r, w, _ := os.Pipe()
	io.WriteString(w, "sk-live-0123456789abcdefghij\n")
	w.Close()
	old := os.Stdin
	os.Stdin = r
	var out strings.Builder
	err := run(ctx, []string{"provider-keys", "add", "--config", "x.yaml", "--provider", "up", "--name", "main"}, &out, io.Discard)
	os.Stdin = old
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"provider-keys", "list", "--config", "x.yaml"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "0123456789") || !strings.Contains(out.String(), "main") {
		t.Fatalf("list must mask the key:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"vault", "rotate", "--config", "x.yaml"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "term 2") {
		t.Fatalf("vault rotate: %v %q", err, out.String())
	}
	// A wrong master key fails at start, clearly.
	os.WriteFile("xroute.master", []byte(strings.Repeat("A", 43)+"=\n"), 0o600)
	err = run(ctx, []string{"provider-keys", "list", "--config", "x.yaml"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "master key") {
		t.Fatalf("wrong master key: %v", err)
	}
}
