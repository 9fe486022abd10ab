package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
)

// EnvClaudeBin names the Claude Code CLI binary (npm
// @anthropic-ai/claude-code) the Claude Code test runs; .ci/claude-test
// installs it and sets this. Without it the test skips.
const EnvClaudeBin = "XROUTE_CLAUDE_BIN"

// TestClaudeCodeCLI runs the real Claude Code CLI (`claude -p`) through
// xroute (ANTHROPIC_BASE_URL, a throwaway HOME): it must get an answer and
// complete a Read-tool round trip on an Anthropic deployment (native) and
// on an OpenAI deployment (translated), each under a model name Claude Code
// knows (it then sends thinking with a budget) and one it does not (it
// then sends adaptive thinking and a role "system" message, which must be
// folded into system). The mock upstream is told, by a directive in the
// prompt, to call Read on a file; Claude Code reads it and sends the
// result back through xroute.
func TestClaudeCodeCLI(t *testing.T) {
	bin := os.Getenv(EnvClaudeBin)
	if bin == "" {
		t.Skip("set " + EnvClaudeBin + " to the claude binary (.ci/claude-test does)")
	}
	g := newRespGateway(t,
		config.Model{Name: "claude-sonnet-4-5", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5"}}},
		config.Model{Name: "claude-haiku-4-5", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small"}}},
		config.Model{Name: "team-claude", Deployments: []config.Deployment{{Provider: "claude", Model: "claude-sonnet-4-5"}}},
		config.Model{Name: "team-coder", Deployments: []config.Deployment{{Provider: "primary", Model: "mock-small"}}},
	)
	for _, tc := range []struct {
		name, model, provider, path string
		upstream                    *recorder
		bearer                      bool
	}{
		{"native/known-name", "claude-sonnet-4-5", "claude", "/v1/messages", g.claude, false},
		{"native/custom-name", "team-claude", "claude", "/v1/messages", g.claude, true},
		{"translated/known-name", "claude-haiku-4-5", "primary", "/v1/chat/completions", g.primary, true},
		{"translated/custom-name", "team-coder", "primary", "/v1/chat/completions", g.primary, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home, work := t.TempDir(), t.TempDir()
			secret := "the file says: xroute-claude-" + strings.ReplaceAll(tc.name, "/", "-")
			file := filepath.Join(work, "hello.txt")
			if err := os.WriteFile(file, []byte(secret+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			prompt := "Read hello.txt and tell me what it says. #mock:call=Read #mock:arg.file_path=" + file
			cmd := exec.CommandContext(ctx, bin, "-p", prompt, "--output-format", "json", "--model", tc.model, "--allowedTools", "Read", "--max-turns", "4")
			cmd.Dir = work
			env := []string{"HOME=" + home, "ANTHROPIC_BASE_URL=" + g.srv.URL, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
				"DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}
			if tc.bearer {
				env = append(env, "ANTHROPIC_AUTH_TOKEN="+g.key) // Authorization: Bearer
			} else {
				env = append(env, "ANTHROPIC_API_KEY="+g.key) // x-api-key
			}
			cmd.Env = env
			cmd.Stdin = strings.NewReader("")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var res struct {
				IsError  bool   `json:"is_error"`
				Result   string `json:"result"`
				NumTurns int    `json:"num_turns"`
				Subtype  string `json:"subtype"`
			}
			if jerr := json.Unmarshal(bytes.TrimSpace(out), &res); jerr != nil || err != nil || res.IsError || res.Result == "" || res.NumTurns < 2 {
				t.Fatalf("claude -p: %v (%v)\nstdout:\n%s\nstderr:\n%s", err, jerr, out, stderr.String())
			}
			// The file's content went upstream as the Read tool's result.
			if body := tc.upstream.last(t, tc.path); !bytes.Contains(body, []byte(secret)) {
				t.Fatalf("the upstream never got the Read result:\n%.2000s", body)
			}
			n := 0
			for _, r := range g.usage() {
				if r.Model == tc.model && r.Provider == tc.provider && r.Status == 200 {
					n++
				}
			}
			if n < 2 {
				t.Fatalf("%d metered calls to %s, want at least 2 (the Read call and the answer)", n, tc.model)
			}
			t.Logf("claude code: Read round trip through xroute to %s as %q, %d turns, %d metered calls", tc.provider, tc.model, res.NumTurns, n)
		})
	}
}
