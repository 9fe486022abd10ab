package httpapi

import (
	"net/http"
	"testing"
)

func TestAgentSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want string
	}{
		{"Claude Code", map[string]string{"x-claude-code-session-id": "cc-1"}, "cc-1"},
		{"Codex CLI", map[string]string{"session-id": "codex-1"}, "codex-1"},
		{"older Codex CLI", map[string]string{"session_id": "codex-0"}, "codex-0"},
		{"Claude Code's wins", map[string]string{"session-id": "codex-1", "X-Claude-Code-Session-Id": "cc-1"}, "cc-1"},
		{"none", map[string]string{"x-request-id": "r"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.hdr {
				h.Set(k, v)
			}
			if got := agentSession(h); got != tc.want {
				t.Fatalf("agentSession = %q, want %q", got, tc.want)
			}
		})
	}
}
