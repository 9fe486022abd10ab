package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCLIThroughTheAdminAPI: with XROUTE_URL and XROUTE_ADMIN_KEY set, the
// CLI manages a running server through its admin API, and a revocation
// refuses the very next request.
func TestCLIThroughTheAdminAPI(t *testing.T) {
	url, admin := adminServer(t)
	t.Setenv("XROUTE_URL", url)
	t.Setenv("XROUTE_ADMIN_KEY", admin)

	cli := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), args, &out, io.Discard)
		return out.String(), err
	}
	acct, err := cli("accounts", "create", "acme")
	if err != nil || !strings.HasPrefix(acct, "acct_") {
		t.Fatalf("accounts create: %q %v", acct, err)
	}
	key, err := cli("keys", "create", "--name", "app", "--account", strings.TrimSpace(acct), "--quiet")
	key = strings.TrimSpace(key)
	if err != nil || !strings.HasPrefix(key, "xr-") {
		t.Fatalf("keys create: %q %v", key, err)
	}
	list, err := cli("keys", "list", "--account", strings.TrimSpace(acct))
	if err != nil || !strings.Contains(list, "app") || strings.Contains(list, key) {
		t.Fatalf("keys list (hint only):\n%s %v", list, err)
	}
	models := func() int {
		req, _ := http.NewRequest("GET", url+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if models() != 200 {
		t.Fatal("new key refused")
	}
	fields := strings.Fields(list)
	id := ""
	for _, f := range fields {
		if strings.HasPrefix(f, "key_") {
			id = f
		}
	}
	if out, err := cli("keys", "revoke", id); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q %v", out, err)
	}
	if models() != 401 {
		t.Fatal("a key revoked through the CLI must be refused on the next request")
	}
	if out, err := cli("credits", "topup", "--account", strings.TrimSpace(acct), "--amount", "5.00", "--idempotency-key", "k"); err != nil || !strings.Contains(out, "5.00") {
		t.Fatalf("topup: %q %v", out, err)
	}
	if out, err := cli("audit", "verify"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %q %v", out, err)
	}
	head, err := cli("audit", "head")
	if err != nil || !strings.Contains(head, `"signature"`) {
		t.Fatalf("audit head: %q %v", head, err)
	}
	if out, err := cli("audit", "verify", "--head", strings.TrimSpace(head)); err != nil || !strings.Contains(out, "anchored head") {
		t.Fatalf("audit verify --head: %q %v", out, err)
	}
	if out, err := cli("credits", "verify"); err != nil || !strings.Contains(out, "every balance") {
		t.Fatalf("credits verify: %q %v", out, err)
	}
	if out, err := cli("usage", "report", "--csv"); err != nil || !strings.Contains(out, "requests") {
		t.Fatalf("usage report --csv: %q %v", out, err)
	}
	if out, err := cli("vault", "rotate"); err != nil || !strings.Contains(out, "term 2") {
		t.Fatalf("vault rotate: %q %v", out, err)
	}
	if out, err := cli("provider-keys", "list"); err != nil || !strings.Contains(out, "PROVIDER") {
		t.Fatalf("provider-keys list: %q %v", out, err)
	}
	if _, err := cli("provider-keys", "disable", "pk_nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("provider-keys disable unknown: %v", err)
	}
	// Helpful errors: a caller key is not an admin key.
	t.Setenv("XROUTE_ADMIN_KEY", key)
	if _, err := cli("keys", "list"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked key as admin key: %v", err)
	}
}

func TestCompletionCommand(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"completion", "bash"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "xroute") {
		t.Fatalf("completion: %v", err)
	}
}
