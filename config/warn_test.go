package config

import (
	"strings"
	"testing"
)

// TestUnknownSettingsWarn: a key of the file or an XROUTE_* variable that
// matches no setting starts anyway, with a warning naming the closest
// known one; known names and the test suites' variables warn nothing.
func TestUnknownSettingsWarn(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		want       []string // each warning's Name → Suggestion, in order
	}{
		{"known everything", "server:\n  addr: 127.0.0.1:1\nproviders: [{name: p, type: openai, headers: {X-Any: v}}]\n",
			[]string{"XROUTE_SERVER_ADDR=127.0.0.1:2", "XROUTE_CONFIG=x", "XROUTE_URL=http://x", "XROUTE_ADMIN_KEY=k", "XROUTE_TEST_POSTGRES_URL=p", "OTHER=1"}, nil},
		{"typo in a section", "server:\n  adr: x\n", nil, []string{"server.adr → server.addr"}},
		{"key in the wrong section", "addr: x\n", nil, []string{"addr → server.addr"}},
		{"typo in a list element", "providers:\n  - name: p\n    type: openai\n    base_ur: http://x\n", nil, []string{"providers[0].base_ur → providers[0].base_url"}},
		{"nothing close", "zzzzzzzz: 1\n", nil, []string{"zzzzzzzz → "}},
		{"short name of the master key", "", []string{"XROUTE_MASTER_KEY=abc"}, []string{"XROUTE_MASTER_KEY → XROUTE_VAULT_MASTER_KEY"}},
		{"env typo", "", []string{"XROUTE_SERVER_ADR=x", "XROUTE_LOG_LEVLE=debug"}, []string{"XROUTE_LOG_LEVLE → XROUTE_LOG_LEVEL", "XROUTE_SERVER_ADR → XROUTE_SERVER_ADDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warns, err := LoadWithWarnings(writeFile(t, tt.yaml), tt.env)
			if err != nil {
				t.Fatalf("an unknown setting must not stop the start: %v", err)
			}
			var got []string
			for _, w := range warns {
				got = append(got, w.Name+" → "+w.Suggestion)
				if w.Suggestion != "" && !strings.Contains(w.String(), "did you mean "+w.Suggestion) {
					t.Errorf("warning text %q does not name %s", w, w.Suggestion)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.name == "typo in a section" && cfg.Server.Addr != Default().Server.Addr {
				t.Errorf("an unknown key changed server.addr to %q", cfg.Server.Addr)
			}
		})
	}
}

// TestWarningNamesTheLine: a warning from the file says where.
func TestWarningNamesTheLine(t *testing.T) {
	p := writeFile(t, "log:\n  level: info\n  formt: console\n")
	_, warns, err := LoadWithWarnings(p, nil)
	if err != nil || len(warns) != 1 {
		t.Fatalf("warnings %v, err %v", warns, err)
	}
	if s := warns[0].String(); !strings.Contains(s, p+" line 3: unknown key log.formt: did you mean log.format?") {
		t.Fatalf("warning %q", s)
	}
}

// TestEveryKnownVariableIsQuiet: every variable `xroute config env` lists
// is known (no warning for a name the docs give).
func TestEveryKnownVariableIsQuiet(t *testing.T) {
	var env []string
	for _, kv := range append(EnvNames(), OtherEnv...) {
		env = append(env, kv[0]+"=")
	}
	if w := envWarnings(env); len(w) != 0 {
		t.Fatalf("known variables warned: %v", w)
	}
}
