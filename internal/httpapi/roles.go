package httpapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/keys"
)

// Who may call which admin route (issue 19: least privilege for
// operators). Every /admin/v1 route passes authorize, which looks the
// route up here by method and path as gin registered it; a route missing
// from the table is owner-only, so a route added without a thought to
// roles is safe by default (roles_test.go calls every registered route
// with every role and fails on a route this table and the test disagree
// about). The owner passes every route and is never listed.
//
// Reading is open to every role, except where an answer would carry key
// material (see seesKeyHints) and the trusted issuers (not billing's
// business). Writing: operator keys, accounts, provider keys, capture
// settings and trusted issuers; billing credits, budgets and multipliers.
// Only the owner rotates the vault and creates, rotates, revokes,
// suspends or resumes admin keys (checked in the key handlers, where the
// key's kind is known).
var (
	readers   = []string{keys.RoleOperator, keys.RoleBilling, keys.RoleViewer}
	operators = []string{keys.RoleOperator}
	billers   = []string{keys.RoleBilling}
	// Trusted issuers decide who gets keys, not what is spent: the
	// billing role neither reads nor writes them.
	issuerReaders = []string{keys.RoleOperator, keys.RoleViewer}
	adminRoles    = map[string][]string{
		"GET /admin/v1/openapi.json":         readers,
		"GET /admin/v1/me":                   readers,
		"GET /admin/v1/accounts":             readers,
		"GET /admin/v1/accounts/:id":         readers,
		"GET /admin/v1/keys":                 readers,
		"GET /admin/v1/keys/:id":             readers,
		"GET /admin/v1/audit":                readers,
		"GET /admin/v1/audit/verify":         readers,
		"GET /admin/v1/audit/head":           readers,
		"GET /admin/v1/provider-keys":        readers,
		"GET /admin/v1/accounts/:id/credits": readers,
		"GET /admin/v1/accounts/:id/ledger":  readers,
		"GET /admin/v1/credits/verify":       readers,
		"GET /admin/v1/budgets":              readers,
		"GET /admin/v1/deployments":          readers,
		"GET /admin/v1/usage/report":         readers,
		"GET /admin/v1/requests":             readers,
		"GET /admin/v1/requests/:request_id": readers,
		"GET /admin/v1/accounts/:id/capture": readers,
		"GET /admin/v1/accounts/:id/cors":    readers,
		"GET /admin/v1/cache/models":         readers,
		"GET /admin/v1/cache/models/:model":  readers,
		// The export is the raw audit rows, hints in the details included:
		// for the roles that see key hints.
		"GET /admin/v1/audit/export":               operators,
		"POST /admin/v1/accounts":                  operators,
		"POST /admin/v1/keys":                      operators,
		"POST /admin/v1/keys/:id/rotate":           operators,
		"PATCH /admin/v1/keys/:id":                 operators,
		"POST /admin/v1/keys/:id/revoke":           operators,
		"POST /admin/v1/keys/:id/suspend":          operators,
		"POST /admin/v1/keys/:id/resume":           operators,
		"POST /admin/v1/provider-keys":             operators,
		"POST /admin/v1/provider-keys/:id/disable": operators,
		"POST /admin/v1/provider-keys/:id/enable":  operators,
		"DELETE /admin/v1/provider-keys/:id":       operators,
		"PUT /admin/v1/accounts/:id/capture":       operators,
		"PUT /admin/v1/accounts/:id/cors":          operators,
		"POST /admin/v1/cache/purge":               operators,
		"PUT /admin/v1/cache/models/:model":        operators,
		"DELETE /admin/v1/cache/models/:model":     operators,
		"POST /admin/v1/accounts/:id/credits":      billers,
		"POST /admin/v1/accounts/:id/multiplier":   billers,
		"POST /admin/v1/budgets":                   billers,
		"DELETE /admin/v1/budgets":                 billers,
		"GET /admin/v1/issuers":                    issuerReaders,
		"GET /admin/v1/issuers/:id":                issuerReaders,
		"POST /admin/v1/issuers":                   operators,
		"PUT /admin/v1/issuers/:id":                operators,
		"PATCH /admin/v1/issuers/:id":              operators,
		"DELETE /admin/v1/issuers/:id":             operators,
	}
)

// allowedRoles is who may call the route (method, gin's full path): the
// owner, and the roles the table lists for it.
func allowedRoles(method, fullPath string) []string {
	return append([]string{keys.RoleOwner}, adminRoles[method+" "+fullPath]...)
}

// roleOf is the role of the request's admin key. A key without one
// (made by a binary that predates roles and not yet migrated) is an owner,
// as migration 0012 makes every such key.
func roleOf(c *gin.Context) string {
	if r := infoOf(c).key.Role; r != "" {
		return r
	}
	return keys.RoleOwner
}

// authorize refuses an admin route the key's role may not call. It runs
// after requireAdmin, on the route gin matched (an unknown path never
// reaches it: that is a 404 for every role).
func (s *adminAPI) authorize(c *gin.Context) {
	allowed := allowedRoles(c.Request.Method, c.FullPath())
	role := roleOf(c)
	for _, r := range allowed {
		if r == role {
			c.Next()
			return
		}
	}
	writeError(c, roleForbidden(role, allowed))
}

// roleForbidden is the 403 of a role that may not do something; it names
// the roles that may.
func roleForbidden(role string, allowed []string) *apiError {
	return newError(http.StatusForbidden, "permission_error", "role_forbidden",
		"This admin key's role ("+role+") may not do this; it needs the role "+strings.Join(allowed, " or ")+".")
}

// requireOwnerFor refuses, with role_forbidden, an action on an admin key
// (creating, rotating, revoking, suspending or resuming one) by any role
// but the owner: an operator who could mint or rotate an admin key could
// give itself any role.
func requireOwnerFor(c *gin.Context, kind string) bool {
	if kind != keys.KindAdmin || roleOf(c) == keys.RoleOwner {
		return true
	}
	writeError(c, roleForbidden(roleOf(c), []string{keys.RoleOwner}))
	return false
}

// seesKeyHints reports whether the caller's role sees the hints of keys
// and provider keys. The issue forbids "key or provider-key material" to
// the viewer; a hint is a few characters of a key, so it counts, and the
// billing role, which manages no key, does not see them either.
func seesKeyHints(c *gin.Context) bool {
	r := roleOf(c)
	return r == keys.RoleOwner || r == keys.RoleOperator
}

// meObject is GET /admin/v1/me: the calling admin key and its role, so
// that the dashboard and the CLI show only what the role may use.
type meObject struct {
	Object string `json:"object"`
	KeyID  string `json:"key_id"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

func (s *adminAPI) adminMe(c *gin.Context) {
	k := infoOf(c).key
	c.JSON(http.StatusOK, meObject{Object: "admin_key", KeyID: k.ID, Name: k.Name, Role: roleOf(c)})
}

// scrubHints blanks the hints in audit event details for a role that does
// not see them (key.created and provider_key.* events carry one).
func scrubHints(details map[string]any) map[string]any {
	if _, ok := details["hint"]; !ok {
		return details
	}
	out := make(map[string]any, len(details))
	for k, v := range details {
		if k != "hint" {
			out[k] = v
		}
	}
	return out
}

// adminSetRole is POST /admin/v1/keys/{id}/role {"role":"billing"}:
// owner only (the route is left out of the role table on purpose). An
// owner cannot change its own key's role, so that the last owner cannot
// demote itself by mistake; another owner key can.
func (s *adminAPI) adminSetRole(c *gin.Context) {
	var req struct {
		Role string `json:"role"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if c.Param("id") == infoOf(c).key.ID {
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "own_role", "An admin key cannot change its own role; use another owner key."))
		return
	}
	k, err := s.own.Keys.SetRole(c.Request.Context(), c.Param("id"), req.Role, actor(c))
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, NewKeyObject(k, s.now()))
}
