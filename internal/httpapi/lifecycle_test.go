package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/xroute/xroute/keys"
)

// TestHoleBudgetOnUnknownScopeIsARow: POST /admin/v1/budgets on a key or an
// account that does not exist answered 200 and stored a row limiting
// nothing. It is a 404 naming the id, and nothing is listed.
func TestHoleBudgetOnUnknownScopeIsARow(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	for _, body := range []string{
		`{"scope":"key","scope_id":"key_doesnotexist","period":"daily","limit_usd":"1.00"}`,
		`{"scope":"account","scope_id":"acct_doesnotexist","period":"monthly","limit_usd":"1.00"}`,
	} {
		st, b, _ := call(t, "POST", g.srv.URL+"/admin/v1/budgets", admin, body)
		e, _ := b["error"].(map[string]any)
		if st != http.StatusNotFound || errCode(b) != "not_found" || e["param"] != "scope_id" || !strings.Contains(e["message"].(string), "doesnotexist") {
			t.Fatalf("%s: %d %v", body, st, b)
		}
	}
	if st, list, _ := call(t, "GET", g.srv.URL+"/admin/v1/budgets", admin, ""); st != 200 || len(list["data"].([]any)) != 0 {
		t.Fatalf("budgets listed: %d %v", st, list)
	}
	_, k, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "budgeted"})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"scope":"key","scope_id":"` + k.ID + `","period":"daily","limit_usd":"1.00"}`,
		`{"scope":"account","scope_id":"` + keys.DefaultAccountID + `","period":"monthly","limit_usd":"1.00"}`,
	} {
		if st, b, _ := call(t, "POST", g.srv.URL+"/admin/v1/budgets", admin, body); st != http.StatusOK {
			t.Fatalf("%s: %d %v", body, st, b)
		}
	}
}

// TestRotationStatesThroughTheAdminAPI: the rotate route answers with the
// new key's true state (suspended after rotating a suspended key), and 409
// key_not_rotatable for a revoked key or one already rotated.
func TestRotationStatesThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	ctx := context.Background()
	base := g.srv.URL + "/admin/v1/keys/"
	_, suspended, _ := g.app.Keys.Create(ctx, keys.CreateParams{Name: "suspended"})
	if err := g.app.Keys.Suspend(ctx, suspended.ID, "test", "leaked"); err != nil {
		t.Fatal(err)
	}
	st, nk, _ := call(t, "POST", base+suspended.ID+"/rotate", admin, `{"overlap":"1h"}`)
	if st != http.StatusCreated || nk["status"] != "suspended" || nk["suspend_reason"] != "leaked" || nk["key"] == "" {
		t.Fatalf("rotating a suspended key: %d %v", st, nk)
	}
	if st, b, _ := call(t, "GET", g.base+"/models", nk["key"].(string), ""); st != http.StatusUnauthorized || errCode(b) != "api_key_suspended" {
		t.Fatalf("the new key of a suspended one: %d %v", st, b)
	}
	if st, b, _ := call(t, "POST", base+suspended.ID+"/rotate", admin, `{}`); st != http.StatusConflict || errCode(b) != "key_not_rotatable" {
		t.Fatalf("rotating a key already rotated: %d %v", st, b)
	}
	_, revoked, _ := g.app.Keys.Create(ctx, keys.CreateParams{Name: "revoked"})
	if err := g.app.Keys.Revoke(ctx, revoked.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if st, b, _ := call(t, "POST", base+revoked.ID+"/rotate", admin, `{}`); st != http.StatusConflict || errCode(b) != "key_not_rotatable" {
		t.Fatalf("rotating a revoked key: %d %v", st, b)
	}
	if st, b, _ := call(t, "POST", base+"key_nope/rotate", admin, `{}`); st != http.StatusNotFound {
		t.Fatalf("rotating an unknown key: %d %v", st, b)
	}
}
