package keys

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

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

// SetRole changes an admin key's role, effective on its next request on
// every replica (the cached key is dropped and the drop announced).
// Setting the role it has changes nothing and writes no audit row; the
// audit's key.role_changed names the old and the new role.
func (s *Service) SetRole(ctx context.Context, id, role, actor string) (Key, error) {
	if !ValidRole(role) {
		return Key{}, &ValidationError{"role", fmt.Sprintf("unknown role %q (known: %s)", role, strings.Join(Roles, ", "))}
	}
	row, err := s.store.KeyByID(ctx, id)
	if err != nil {
		return Key{}, fmt.Errorf("keys: set role of %s: %w", id, err)
	}
	if row.Kind != KindAdmin {
		return Key{}, &ValidationError{"role", "only an admin key has a role"}
	}
	changed, err := s.store.SetKeyRole(ctx, id, role)
	if err != nil {
		return Key{}, fmt.Errorf("keys: %w", err)
	}
	from := row.Role
	row.Role = role
	s.transitioned(ctx, changed, row, LifecycleEvent{Kind: "key.role_changed", Actor: actor, AccountID: row.AccountID, Subject: id,
		Details: map[string]any{"from": from, "to": role}})
	return fromRow(row)
}
