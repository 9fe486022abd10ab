package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestCLIAdminRoles: `keys create --admin --role` makes a key of that
// role, `keys list` shows the role, the server refuses what a role may not
// do (the CLI prints its role_forbidden), and a bad --role is a usage
// error before any request.
func TestCLIAdminRoles(t *testing.T) {
	url, owner := adminServer(t)
	t.Setenv("XROUTE_URL", url)
	t.Setenv("XROUTE_ADMIN_KEY", owner)
	cli := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), args, &out, io.Discard)
		return out.String(), err
	}

	billing, err := cli("keys", "create", "--name", "books", "--admin", "--role", "billing", "--quiet")
	billing = strings.TrimSpace(billing)
	if err != nil || !strings.HasPrefix(billing, "xra-") {
		t.Fatalf("keys create --admin --role billing: %q %v", billing, err)
	}
	list, err := cli("keys", "list")
	if err != nil || !strings.Contains(list, "ROLE") {
		t.Fatalf("keys list: %s %v", list, err)
	}
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "books") && !strings.Contains(line, " billing ") {
			t.Errorf("the billing key's row shows no role: %q", line)
		}
		if strings.Contains(line, " ops ") && !strings.Contains(line, " owner ") {
			t.Errorf("the first admin key's row is not owner: %q", line)
		}
	}

	for _, bad := range [][]string{
		{"keys", "create", "--name", "x", "--role", "viewer"},          // no --admin
		{"keys", "create", "--name", "x", "--admin", "--role", "root"}, // no such role
	} {
		if _, err := cli(bad...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}

	var booksID string
	for _, f := range strings.Fields(list) {
		if strings.HasPrefix(f, "key_") && strings.Contains(list, f+"  books") {
			booksID = f
		}
	}
	if out, err := cli("keys", "role", booksID, "--role", "viewer"); err != nil || !strings.Contains(out, "is now viewer") {
		t.Fatalf("keys role %s --role viewer: %q %v", booksID, out, err)
	}
	if _, err := cli("keys", "role", booksID); !errors.Is(err, errUsage) {
		t.Errorf("keys role without --role: %v, want a usage error", err)
	}
	if out, err := cli("keys", "role", booksID, "--role", "billing"); err != nil || !strings.Contains(out, "is now billing") {
		t.Fatalf("keys role back to billing: %q %v", out, err)
	}

	t.Setenv("XROUTE_ADMIN_KEY", billing)
	if _, err := cli("keys", "create", "--name", "app"); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("billing creates a key: %v, want the role refusal", err)
	}
	if _, err := cli("accounts", "list"); err != nil {
		t.Errorf("billing lists accounts: %v", err)
	}
}
