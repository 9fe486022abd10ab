package keys

import "slices"

// Roles of admin keys (issue 19: least privilege for operators). A role
// names what an admin key may do; which admin route each role may call is
// decided by the HTTP layer (internal/httpapi/roles.go), which knows the
// routes. An admin key made before roles existed is an owner (migration
// 0012).
const (
	// RoleOwner may do everything, and is the only role that creates
	// admin keys, acts on them and rotates the vault.
	RoleOwner = "owner"
	// RoleOperator manages caller keys, accounts and provider keys.
	RoleOperator = "operator"
	// RoleBilling manages credits, budgets and multipliers, and reads
	// usage, ledgers and reports.
	RoleBilling = "billing"
	// RoleViewer reads, and never sees key or provider-key material
	// (not even hints).
	RoleViewer = "viewer"
)

// Roles lists every role, most powerful first (the order help texts show).
var Roles = []string{RoleOwner, RoleOperator, RoleBilling, RoleViewer}

// ValidRole reports whether r names a role.
func ValidRole(r string) bool { return slices.Contains(Roles, r) }

// createdDetails is the audit detail of key.created: the role is part of
// what was granted, so an admin key's creation names it.
func createdDetails(k Key) map[string]any {
	d := map[string]any{"name": k.Name, "kind": k.Kind, "hint": k.Hint}
	if k.Role != "" {
		d["role"] = k.Role
	}
	return d
}
