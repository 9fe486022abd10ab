package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The demo caches its models: the second identical request is a hit, and
// `xroute cache purge` (through the admin API) makes the next one a miss.
func TestDemoCacheHitAndCLIPurge(t *testing.T) {
	d := startDemo(t, "--data", t.TempDir())
	body := chatBody("What is a response cache? " + t.Name())
	want := []string{"miss", "hit"}
	for i, w := range want {
		st, h, b := d.post(t, "/v1/chat/completions", body)
		if st != 200 || h.Get("x-xroute-cache") != w {
			t.Fatalf("request %d: %d x-xroute-cache=%q, want %q: %s", i+1, st, h.Get("x-xroute-cache"), w, b)
		}
	}
	// The Responses API (the demo's mock serves it natively) and the
	// Messages API too.
	for _, r := range []struct{ path, body string }{
		{"/v1/responses", `{"model":"gpt-4o-mini","store":false,"input":"What is a response cache? ` + t.Name() + `"}`},
		{"/v1/messages", `{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"What is a response cache? ` + t.Name() + `"}]}`},
	} {
		for i, w := range want {
			st, h, b := d.post(t, r.path, r.body)
			if st != 200 || h.Get("x-xroute-cache") != w {
				t.Fatalf("%s request %d: %d x-xroute-cache=%q, want %q: %s", r.path, i+1, st, h.Get("x-xroute-cache"), w, b)
			}
		}
	}
	t.Setenv("XROUTE_URL", d.env["XROUTE_URL"])
	t.Setenv("XROUTE_ADMIN_KEY", d.env["XROUTE_ADMIN_KEY"])
	if r := runCLI(t, "cache", "purge", "--model", "gpt-4o-mini"); r.code != 0 || !strings.Contains(r.stdout, "purged cached answers of model gpt-4o-mini") {
		t.Fatalf("purge: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if st, h, _ := d.post(t, "/v1/chat/completions", body); st != 200 || h.Get("x-xroute-cache") != "miss" {
		t.Fatalf("after the purge: %d %q", st, h.Get("x-xroute-cache"))
	}
	if r := runCLI(t, "cache", "purge"); r.code != 2 {
		t.Fatalf("purge of nothing named: exit %d, want 2 (%q)", r.code, r.stderr)
	}
	if r := runCLI(t, "cache", "purge", "--all", "--model", "x"); r.code != 2 {
		t.Fatalf("--all with --model: exit %d, want 2", r.code)
	}
}

// A key's cache policy from the command line, on both backends: set at
// creation, changed by `keys update`, only the flags given.
func TestKeysCachePolicyFlags(t *testing.T) {
	for _, backend := range []string{"offline", "remote"} {
		t.Run(backend, func(t *testing.T) {
			t.Chdir(t.TempDir())
			t.Setenv("XROUTE_URL", "")
			t.Setenv("XROUTE_ADMIN_KEY", "")
			if backend == "remote" {
				u, admin := adminServer(t)
				t.Setenv("XROUTE_URL", u)
				t.Setenv("XROUTE_ADMIN_KEY", admin)
			}
			id, _ := createKey(t, "--name", "evals", "--cache", "off", "--cache-ttl", "5m")
			show := func() map[string]any {
				t.Helper()
				r := runCLI(t, "keys", "show", id)
				var k struct {
					Metadata map[string]any `json:"metadata"`
				}
				if r.code != 0 || json.Unmarshal([]byte(r.stdout), &k) != nil {
					t.Fatalf("keys show: %d %q %q", r.code, r.stdout, r.stderr)
				}
				return k.Metadata
			}
			if m := show(); m["cache"] != "off" || m["cache_ttl"] != "5m0s" {
				t.Fatalf("created key's metadata %v", m)
			}
			r := runCLI(t, "keys", "update", id, "--cache", "on", "--cache-max-entry-bytes", "4096")
			if r.code != 0 || !strings.Contains(r.stdout, "cache on") || !strings.Contains(r.stdout, "ttl at most 5m0s") {
				t.Fatalf("keys update: %d %q %q", r.code, r.stdout, r.stderr)
			}
			if m := show(); m["cache"] != nil || m["cache_ttl"] != "5m0s" || m["cache_max_entry_bytes"] != "4096" {
				t.Fatalf("updated key's metadata %v", m)
			}
			for _, bad := range [][]string{{"keys", "update", id}, {"keys", "update", id, "--cache", "maybe"}, {"keys", "update", id, "--cache-ttl", "-1m"}} {
				if r := runCLI(t, bad...); r.code != 2 {
					t.Fatalf("%v: exit %d, want 2 (%q)", bad, r.code, r.stderr)
				}
			}
		})
	}
}
