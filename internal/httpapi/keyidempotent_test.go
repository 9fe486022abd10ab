package httpapi_test

import (
	"reflect"
	"testing"
)

// TestKeyTransitionsAreIdempotent: repeating revoke, suspend or resume
// (a retried CLI call, two operators) answers what the first call
// answered and writes no second audit row.
func TestKeyTransitionsAreIdempotent(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{})
	admin := g.adminKey(t)
	base := g.srv.URL + "/admin/v1"
	auditRows := func(kind, id string) int {
		t.Helper()
		st, body, _ := call(t, "GET", base+"/audit?kind="+kind+"&subject="+id, admin, "")
		if st != 200 {
			t.Fatalf("audit list: %d %v", st, body)
		}
		rows, _ := body["data"].([]any)
		return len(rows)
	}
	for _, tc := range []struct {
		name, action, body, kind, status string
		setup                            []string // actions before the repeated one
	}{
		{"revoke a revoked key", "revoke", "", "key.revoked", "revoked", nil},
		{"suspend a suspended key", "suspend", `{"reason":"first"}`, "key.suspended", "suspended", nil},
		{"resume an active key", "resume", "", "key.resumed", "active", []string{"suspend", "resume"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, created, _ := call(t, "POST", base+"/keys", admin, `{"name":"idem"}`)
			if st != 201 {
				t.Fatalf("create: %d %v", st, created)
			}
			id := created["id"].(string)
			for _, a := range tc.setup {
				if st, b, _ := call(t, "POST", base+"/keys/"+id+"/"+a, admin, `{}`); st != 200 {
					t.Fatalf("%s: %d %v", a, st, b)
				}
			}
			before := auditRows(tc.kind, id)
			st1, first, _ := call(t, "POST", base+"/keys/"+id+"/"+tc.action, admin, tc.body)
			if st1 != 200 || first["status"] != tc.status {
				t.Fatalf("first %s: %d %v", tc.action, st1, first)
			}
			afterFirst := auditRows(tc.kind, id)
			body2 := tc.body
			if tc.action == "suspend" {
				body2 = `{"reason":"second"}` // the first reason stays
			}
			st2, second, _ := call(t, "POST", base+"/keys/"+id+"/"+tc.action, admin, body2)
			if st2 != st1 || !reflect.DeepEqual(first, second) {
				t.Fatalf("repeated %s answered differently:\nfirst  %d %v\nsecond %d %v", tc.action, st1, first, st2, second)
			}
			if got := auditRows(tc.kind, id); got != afterFirst {
				t.Fatalf("repeated %s wrote %d more %s audit rows", tc.action, got-afterFirst, tc.kind)
			}
			if tc.setup == nil && afterFirst != before+1 {
				t.Fatalf("the first %s wrote %d audit rows, want 1", tc.action, afterFirst-before)
			}
		})
	}
}
