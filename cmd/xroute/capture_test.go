package main

import (
	"strings"
	"testing"
)

// TestAccountsCapture: `xroute accounts capture` shows an account's body
// capture and turns it on and off through the admin API, with durations
// in days and weeks; without a server it says where the setting lives.
func TestAccountsCapture(t *testing.T) {
	t.Setenv("XROUTE_URL", "")
	t.Setenv("XROUTE_ADMIN_KEY", "")
	if r := runCLI(t, "accounts", "capture", "acct_default"); r.code != 1 || !strings.Contains(r.stderr, "XROUTE_URL") {
		t.Fatalf("without a server: exit %d, %q", r.code, r.stderr)
	}
	url, admin := adminServer(t)
	t.Setenv("XROUTE_URL", url)
	t.Setenv("XROUTE_ADMIN_KEY", admin)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"acct_default"}, 0, "capture off for acct_default: retention 1w, max 65536 bytes per body"},
		{[]string{"acct_default", "--on", "--retention", "2d"}, 0, "capture on for acct_default: retention 2d, max 65536 bytes per body"},
		{[]string{"acct_default", "--max-bytes", "1024"}, 0, "capture on for acct_default: retention 2d, max 1024 bytes per body"},
		{[]string{"acct_default", "--off"}, 0, "capture off for acct_default: retention 2d, max 1024 bytes per body"},
		{[]string{"acct_default", "--on", "--off"}, 2, "--on and --off"},
		{[]string{"acct_default", "--retention", "soon"}, 2, "invalid duration"},
		{[]string{"acct_nope", "--on"}, 1, "acct_nope"},
	} {
		r := runCLI(t, append([]string{"accounts", "capture"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("capture %v: exit %d (want %d)\nstdout %q\nstderr %q\nwant %q", tc.args, r.code, tc.code, r.stdout, r.stderr, tc.want)
		}
	}
}
