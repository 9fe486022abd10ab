package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvCodexBin names the Codex CLI binary (npm @openai/codex) the Codex
// tests run; .ci/codex-test installs it and sets this. Without it the
// tests skip (the README's test command needs no npm).
const EnvCodexBin = "XROUTE_CODEX_BIN"

// TestCodexCLI runs the real Codex CLI (`codex exec`) through xroute with
// a custom provider (wire_api "responses"): it must get an answer and
// complete a shell tool round trip, natively on an OpenAI deployment and
// translated on an Anthropic one. The mock upstream is told (by a
// directive in the prompt) to call Codex's shell tool on a file; Codex
// runs it and sends the output back, and xroute must carry it to the
// upstream and the answer back.
func TestCodexCLI(t *testing.T) {
	bin := os.Getenv(EnvCodexBin)
	if bin == "" {
		t.Skip("set " + EnvCodexBin + " to the codex binary (.ci/codex-test does)")
	}
	g := newRespGateway(t)
	for _, tc := range []struct {
		name, model, provider string
		upstream              *recorder
		path                  string
	}{
		{"native-openai", "gpt-4o-mini", "primary", g.primary, "/v1/responses"},
		{"translated-anthropic", "claude-test", "claude", g.claude, "/v1/messages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home, work := t.TempDir(), t.TempDir()
			const secret = "the file says: xroute-codex-round-trip"
			if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte(secret+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := `model = "` + tc.model + `"
model_provider = "xroute"
[model_providers.xroute]
name = "xroute"
base_url = "` + g.base + `"
env_key = "XROUTE_TEST_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
`
			if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			prompt := "Show me hello.txt. #mock:call=exec_command #mock:arg.cmd=cat%20hello.txt"
			cmd := exec.CommandContext(ctx, bin, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "-C", work, prompt)
			cmd.Env = append(os.Environ(), "CODEX_HOME="+home, "XROUTE_TEST_KEY="+g.key, "HOME="+home, "NO_COLOR=1")
			cmd.Stdin = strings.NewReader("")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("codex exec: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
			}
			// Codex's JSONL events: the command ran with the file's content as
			// its output, and an agent message closed the turn.
			var ranCmd, answered bool
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var ev struct {
					Type string `json:"type"`
					Item struct {
						Type   string `json:"type"`
						Cmd    string `json:"command"`
						Output string `json:"aggregated_output"`
						Text   string `json:"text"`
					} `json:"item"`
				}
				if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type != "item.completed" {
					continue
				}
				switch ev.Item.Type {
				case "command_execution":
					ranCmd = ranCmd || (strings.Contains(ev.Item.Cmd, "cat hello.txt") && strings.Contains(ev.Item.Output, secret))
				case "agent_message":
					answered = answered || ev.Item.Text != ""
				}
			}
			if !ranCmd || !answered {
				t.Fatalf("no shell round trip (ran %v, answered %v):\n%s\nstderr:\n%s", ranCmd, answered, out, stderr.String())
			}
			// The tool's output went upstream through xroute.
			if body := tc.upstream.last(t, tc.path); !bytes.Contains(body, []byte(secret)) {
				t.Fatalf("the upstream never got the tool output:\n%s", body)
			}
			// Both model calls were metered to the caller's key.
			n := 0
			for _, r := range g.usage() {
				if r.Model == tc.model && r.Provider == tc.provider && r.Status == 200 && r.CompletionTokens > 0 {
					n++
				}
			}
			if n < 2 {
				t.Fatalf("%d metered calls to %s, want 2 (the tool call and the answer)", n, tc.model)
			}
			t.Logf("codex: shell round trip through xroute to %s (%s), %d metered calls", tc.provider, tc.model, n)
		})
	}
}
