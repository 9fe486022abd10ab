package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const issuerYAML = `issuer: https://token.actions.githubusercontent.com
audiences: [xroute]
max_token_lifetime: 1h
rules:
  - name: ci
    claims: {repository_owner: octo-org, ref: refs/heads/main}
    account: acct_default
    key: {models: [gpt-4o-mini], endpoints: [chat.completions], ttl: 15m}
`

// issuersSession runs add, list, show, update (whole and --merge) and rm
// on the backend the environment names, and returns the added id.
func issuersSession(t *testing.T) string {
	t.Helper()
	os.WriteFile("gha.yaml", []byte(issuerYAML), 0o600)
	os.WriteFile("bad.yaml", []byte(strings.Replace(issuerYAML, "audiences: [xroute]", "audiences: []", 1)), 0o600)
	os.WriteFile("patch.json", []byte(`{"audiences":["xroute","ci"],"clock_skew":null}`), 0o600)

	if r := runCLI(t, "issuers", "add", "-f", "bad.yaml"); r.code == 0 || !strings.Contains(r.stderr, "audiences") {
		t.Fatalf("add an invalid issuer: %+v", r)
	}
	r := runCLI(t, "issuers", "add", "-f", "gha.yaml")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "added iss_") {
		t.Fatalf("add: %+v", r)
	}
	id := strings.Fields(r.stdout)[1]
	if r := runCLI(t, "issuers", "add", "-f", "gha.yaml"); r.code == 0 {
		t.Fatalf("add the same iss twice: %+v", r)
	}
	r = runCLI(t, "issuers", "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil || len(list) != 1 || list[0]["id"] != id || list[0]["source"] != "api" {
		t.Fatalf("list --json: %v %+v", err, r)
	}
	if r := runCLI(t, "issuers", "list"); r.code != 0 || !strings.Contains(r.stdout, "ci→acct_default") {
		t.Fatalf("list: %+v", r)
	}
	for _, ref := range []string{id, "https://token.actions.githubusercontent.com"} {
		r := runCLI(t, "issuers", "show", ref)
		var o map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &o); r.code != 0 || err != nil || o["id"] != id || o["max_token_lifetime"] != "1h" {
			t.Fatalf("show %s: %v %+v", ref, err, r)
		}
	}
	if r := runCLI(t, "issuers", "update", id, "--merge", "-f", "patch.json"); r.code != 0 || !strings.HasPrefix(r.stdout, "updated "+id) {
		t.Fatalf("update --merge: %+v", r)
	}
	if r := runCLI(t, "issuers", "show", id); !strings.Contains(r.stdout, `"ci"`) {
		t.Fatalf("after the merge: %+v", r)
	}
	if r := runCLI(t, "issuers", "update", id, "-f", "gha.yaml"); r.code != 0 {
		t.Fatalf("update: %+v", r)
	}
	if r := runCLI(t, "issuers", "rm", id); r.code != 0 || !strings.HasPrefix(r.stdout, "removed "+id) {
		t.Fatalf("rm: %+v", r)
	}
	if r := runCLI(t, "issuers", "rm", id); r.code == 0 {
		t.Fatalf("rm twice: %+v", r)
	}
	return id
}

// TestIssuersCLILocal: on the database of --config, audited as the CLI.
func TestIssuersCLILocal(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("XROUTE_URL", "")
	t.Setenv("XROUTE_ADMIN_KEY", "")
	id := issuersSession(t)
	r := runCLI(t, "audit", "list", "--json")
	var rows []map[string]any
	json.Unmarshal([]byte(r.stdout), &rows)
	kinds := map[string]int{}
	for _, row := range rows {
		if row["subject"] == id && row["actor"] == "cli" {
			kinds[row["kind"].(string)]++
		}
	}
	if kinds["issuer.created"] != 1 || kinds["issuer.updated"] != 2 || kinds["issuer.deleted"] != 1 {
		t.Fatalf("audit rows of %s: %v (%s)", id, kinds, r.stdout)
	}
}

// TestIssuersCLIRemote: the same commands through the admin API.
func TestIssuersCLIRemote(t *testing.T) {
	t.Chdir(t.TempDir())
	base, admin := adminServer(t)
	t.Setenv("XROUTE_URL", base)
	t.Setenv("XROUTE_ADMIN_KEY", admin)
	issuersSession(t)
}
