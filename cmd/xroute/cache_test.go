package main

import (
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
