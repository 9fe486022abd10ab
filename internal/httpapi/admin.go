package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// KeyAdmin is what the admin API needs of the key service.
type KeyAdmin interface {
	Create(ctx context.Context, p keys.CreateParams) (string, keys.Key, error)
	Get(ctx context.Context, id string) (keys.Key, error)
	List(ctx context.Context, f keys.KeyFilter) ([]keys.Key, error)
	Rotate(ctx context.Context, id, actor string, overlap time.Duration) (string, keys.Key, error)
	Revoke(ctx context.Context, id, actor string) error
	Suspend(ctx context.Context, id, actor, reason string) error
	Resume(ctx context.Context, id, actor string) error
	SetRole(ctx context.Context, id, role, actor string) (keys.Key, error)
	SetCachePolicy(ctx context.Context, id string, p keys.CachePolicy, actor string) (keys.Key, error)
	CreateAccount(ctx context.Context, name, actor string, meta map[string]string) (keys.Account, error)
	Account(ctx context.Context, id string) (keys.Account, error)
	Accounts(ctx context.Context, after string, limit int) ([]keys.Account, error)
}

// KeyObject is a key's public view: never the key, only its hint. Key is
// set only in the answer that creates or rotates it.
type KeyObject struct {
	Object           string            `json:"object"`
	ID               string            `json:"id"`
	Key              string            `json:"key,omitempty"`
	Name             string            `json:"name"`
	Kind             string            `json:"kind"`
	Role             string            `json:"role,omitempty"` // an admin key's role
	AccountID        string            `json:"account_id"`
	Hint             string            `json:"hint"`
	Status           string            `json:"status"`
	AllowedModels    []string          `json:"allowed_models"`
	AllowedEndpoints []string          `json:"allowed_endpoints"`
	AllowedCIDRs     []string          `json:"allowed_cidrs"`
	RPM              int               `json:"rpm"`
	TPM              int               `json:"tpm"`
	MaxConcurrent    int               `json:"max_concurrent"`
	Metadata         map[string]string `json:"metadata"`
	Cache            KeyCache          `json:"cache"` // its response cache policy (metadata cache, cache_ttl, cache_max_entry_bytes)
	CreatedAt        time.Time         `json:"created_at"`
	ExpiresAt        *time.Time        `json:"expires_at"`
	RevokedAt        *time.Time        `json:"revoked_at"`
	SuspendedAt      *time.Time        `json:"suspended_at"`
	SuspendReason    string            `json:"suspend_reason,omitempty"`
	RotatedFrom      string            `json:"rotated_from,omitempty"`
}

// NewKeyObject renders k for the admin API and the CLI.
func NewKeyObject(k keys.Key, now time.Time) KeyObject {
	return KeyObject{Object: "key", ID: k.ID, Name: k.Name, Kind: k.Kind, Role: k.Role, AccountID: k.AccountID, Hint: k.Hint, Status: k.Status(now),
		AllowedModels: nonNil(k.AllowedModels), AllowedEndpoints: nonNil(k.AllowedEndpoints), AllowedCIDRs: nonNil(k.CIDRStrings()),
		RPM: k.RPM, TPM: k.TPM, MaxConcurrent: k.MaxConcurrent, Metadata: nonNilMap(k.Metadata), Cache: newKeyCache(k.CachePolicy()), CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, SuspendedAt: k.SuspendedAt, SuspendReason: k.SuspendReason, RotatedFrom: k.RotatedFrom}
}

// AccountObject is an account's public view.
type AccountObject struct {
	Object    string            `json:"object"`
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Status    string            `json:"status"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
}

func newAccountObject(a keys.Account) AccountObject {
	status := a.Status
	if status == "" {
		status = keys.AccountActive // never an empty status in an answer
	}
	return AccountObject{Object: "account", ID: a.ID, Name: a.Name, Status: status, Metadata: nonNilMap(a.Metadata), CreatedAt: a.CreatedAt}
}

// listPage is every list answer: OpenAI's list shape plus a cursor.
type listPage struct {
	Object    string `json:"object"`
	Data      any    `json:"data"`
	HasMore   bool   `json:"has_more"`
	NextAfter string `json:"next_after,omitempty"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// adminAPI is the admin plane, /admin/v1 (admin keys only): accounts,
// keys and roles, the audit log, provider keys and the vault, cache
// models, credits and budgets, the request log and captures, browser
// origins, and the app's further admin routes.
type adminAPI struct {
	*base
	own *AdminConfig // the admin plane's own part of the config
}

func newAdminAPI(b *base) *adminAPI { return &adminAPI{base: b, own: &b.cfg.Admin} }

// Mount mounts /admin/v1 on the root group (nothing without
// Config.Admin.Keys).
func (s *adminAPI) Mount(root *gin.RouterGroup) {
	if s.own.Keys == nil {
		return
	}
	g := root.Group("/admin/v1", noStore, s.authenticate, s.requireAdmin, s.authorize)
	// Every admin sub-API is mounted the same way: built in or given in
	// Config.AdminRoutes. A new one is a Mounter plus one line here (or
	// in the app's AdminRoutes when it needs a part the server lacks).
	subAPIs := []Mounter{
		MountFunc(s.routeAdminKeys),  // accounts, keys, roles
		MountFunc(s.routeAdminOps),   // audit log, provider keys, vault
		MountFunc(s.routeCache),      // cache models, purge
		MountFunc(s.routeCredits),    // credits, budgets
		MountFunc(s.routeRequestLog), // request log, captures
		MountFunc(s.routeCORSAdmin),  // browser origins
	}
	for _, m := range append(subAPIs, s.own.Routes...) {
		m.Mount(g)
	}
}

// Mounter is one sub-API: it mounts its routes on the group it is given
// (/admin/v1 for the admin API, /v1 for a caller's routes, the root for
// the dashboard).
type Mounter interface {
	Mount(g *gin.RouterGroup)
}

// MountFunc is a Mounter that is a function.
type MountFunc func(g *gin.RouterGroup)

// Mount calls f.
func (f MountFunc) Mount(g *gin.RouterGroup) { f(g) }

// routeAdminKeys mounts the admin API's own description, accounts and
// keys.
func (s *adminAPI) routeAdminKeys(g *gin.RouterGroup) {
	g.GET("/openapi.json", s.adminOpenAPI)
	g.GET("/me", s.adminMe)
	g.GET("/accounts", s.adminListAccounts)
	g.POST("/accounts", s.adminCreateAccount)
	g.GET("/accounts/:id", s.adminGetAccount)
	g.GET("/keys", s.adminListKeys)
	g.POST("/keys", s.adminCreateKey)
	g.GET("/keys/:id", s.adminGetKey)
	g.PATCH("/keys/:id", s.adminUpdateKey)
	g.POST("/keys/:id/rotate", s.adminRotateKey)
	g.POST("/keys/:id/revoke", s.adminKeyAction)
	g.POST("/keys/:id/suspend", s.adminKeyAction)
	g.POST("/keys/:id/resume", s.adminKeyAction)
	g.POST("/keys/:id/role", s.adminSetRole) // owner only: not in the role table
}

// noStore keeps every admin answer (keys as they are created, balances,
// the audit log) out of browser and proxy caches, refusals included.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// adminNoStore is noStore for the answers under /admin that no admin
// route gives (unknown path, method not served).
func adminNoStore(c *gin.Context) {
	if strings.HasPrefix(c.Request.URL.Path, "/admin/") {
		c.Header("Cache-Control", "no-store")
	}
}

func (s *adminAPI) requireAdmin(c *gin.Context) {
	if infoOf(c).key.Kind != keys.KindAdmin {
		writeError(c, newError(http.StatusForbidden, "permission_error", "admin_key_required", "This key cannot use the admin API; use an admin key (xra-…)."))
		return
	}
	c.Next()
}

// actor names who did an admin action, for the audit log.
func actor(c *gin.Context) string { return "admin:" + infoOf(c).key.ID }

// pageArgs reads ?after=&limit= (limit 1..1000, default 100).
func pageArgs(c *gin.Context) (string, int, *apiError) {
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, newError(http.StatusBadRequest, "invalid_request_error", "invalid_limit", "limit must be an integer from 1 to 1000.").withParam("limit")
		}
		limit = n
	}
	return c.Query("after"), limit, nil
}

// cursorArg reads the cursor of the newest-first lists (audit log,
// ledger): before, or after — the previous page's next_after, from which
// the list continues toward older rows. It names the parameter it read.
func cursorArg(c *gin.Context) (string, string) {
	if v := c.Query("before"); v != "" {
		return v, "before"
	}
	return c.Query("after"), "after"
}

// bindJSON decodes an admin request body strictly.
func (s *base) bindJSON(c *gin.Context, v any) bool {
	body, bad := s.readBody(c)
	if bad != nil {
		writeError(c, bad)
		return false
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_json", "Invalid request body: "+err.Error()))
		return false
	}
	return true
}

// adminError maps service errors to answers.
func adminError(c *gin.Context, err error) {
	var ve *keys.ValidationError
	switch {
	case errors.As(err, &ve):
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", ve.Error()).withParam(ve.Field))
	case errors.Is(err, keys.ErrNotRotatable):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "key_not_rotatable", err.Error()))
	case errors.Is(err, store.ErrNotFound):
		writeError(c, newError(http.StatusNotFound, "invalid_request_error", "not_found", "No such object: "+c.Param("id")))
	case errors.Is(err, store.ErrConflict):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "conflict", "It already exists."))
	default:
		writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The admin operation failed."))
		infoOf(c).errMsg = err.Error()
	}
}

func (s *adminAPI) adminListAccounts(c *gin.Context) {
	after, limit, e := pageArgs(c)
	if e != nil {
		writeError(c, e)
		return
	}
	// Filters: status, and name (a case-insensitive substring). The store
	// pages by id; filtered pages read on until they are full.
	name, status := strings.ToLower(c.Query("name")), c.Query("status")
	var list []keys.Account
	for cur := after; len(list) <= limit; {
		batch, err := s.own.Keys.Accounts(c.Request.Context(), cur, limit+1)
		if err != nil {
			adminError(c, err)
			return
		}
		for _, a := range batch {
			if (status == "" || a.Status == status) && strings.Contains(strings.ToLower(a.Name), name) {
				list = append(list, a)
			}
		}
		if len(batch) <= limit {
			break
		}
		cur = batch[len(batch)-1].ID
	}
	page := listPage{Object: "list"}
	if len(list) > limit {
		list, page.HasMore = list[:limit], true
	}
	data := make([]AccountObject, len(list))
	for i, a := range list {
		data[i] = newAccountObject(a)
	}
	if page.HasMore {
		page.NextAfter = list[len(list)-1].ID
	}
	page.Data = data
	c.JSON(http.StatusOK, page)
}

func (s *adminAPI) adminCreateAccount(c *gin.Context) {
	var req struct {
		Name     string            `json:"name"`
		Metadata map[string]string `json:"metadata"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	a, err := s.own.Keys.CreateAccount(c.Request.Context(), req.Name, actor(c), req.Metadata)
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusCreated, newAccountObject(a))
}

func (s *adminAPI) adminGetAccount(c *gin.Context) {
	a, err := s.own.Keys.Account(c.Request.Context(), c.Param("id"))
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, newAccountObject(a))
}

func (s *adminAPI) adminListKeys(c *gin.Context) {
	after, limit, e := pageArgs(c)
	if e != nil {
		writeError(c, e)
		return
	}
	list, err := s.own.Keys.List(c.Request.Context(), keys.KeyFilter{AccountID: c.Query("account_id"), Kind: c.Query("kind"), After: after, Limit: limit + 1})
	if err != nil {
		adminError(c, err)
		return
	}
	page := listPage{Object: "list"}
	if len(list) > limit {
		list, page.HasMore = list[:limit], true
	}
	now := s.now()
	data := make([]KeyObject, len(list))
	hints := seesKeyHints(c)
	for i, k := range list {
		data[i] = NewKeyObject(k, now)
		if !hints {
			data[i].Hint = ""
		}
	}
	if page.HasMore {
		page.NextAfter = list[len(list)-1].ID
	}
	page.Data = data
	c.JSON(http.StatusOK, page)
}

// createKeyRequest is the admin API's key creation body.
type createKeyRequest struct {
	Name             string            `json:"name"`
	AccountID        string            `json:"account_id"`
	Kind             string            `json:"kind"`
	Role             string            `json:"role"` // admin keys only (default owner)
	AllowedModels    []string          `json:"allowed_models"`
	AllowedEndpoints []string          `json:"allowed_endpoints"`
	AllowedCIDRs     []string          `json:"allowed_cidrs"`
	RPM              int               `json:"rpm"`
	TPM              int               `json:"tpm"`
	MaxConcurrent    int               `json:"max_concurrent"`
	Metadata         map[string]string `json:"metadata"`
	ExpiresAt        *time.Time        `json:"expires_at"`
	ExpiresIn        string            `json:"expires_in"` // a duration, e.g. "720h", "30d" (config.ParseDuration)
	Cache            *keyCacheUpdate   `json:"cache"`      // the response cache policy, kept in its metadata
}

func (s *adminAPI) adminCreateKey(c *gin.Context) {
	var req createKeyRequest
	if !s.bindJSON(c, &req) {
		return
	}
	// Only the owner mints admin keys (of any role): a role is a grant.
	if !requireOwnerFor(c, req.Kind) {
		return
	}
	p := keys.CreateParams{AccountID: req.AccountID, Kind: req.Kind, Role: req.Role, Name: req.Name, AllowedModels: req.AllowedModels,
		AllowedEndpoints: req.AllowedEndpoints, AllowedCIDRs: req.AllowedCIDRs, RPM: req.RPM, TPM: req.TPM,
		MaxConcurrent: req.MaxConcurrent, Metadata: req.Metadata, ExpiresAt: req.ExpiresAt, Actor: actor(c)}
	if req.Cache != nil {
		var cur keys.Key
		cur.Metadata = req.Metadata
		pol, e := req.Cache.apply(cur.CachePolicy())
		if e != nil {
			writeError(c, e)
			return
		}
		p.Metadata = pol.Metadata(req.Metadata)
	}
	if req.ExpiresIn != "" {
		d, err := config.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", "expires_in must be a positive duration such as 720h or 30d.").withParam("expires_in"))
			return
		}
		t := s.now().Add(d).UTC()
		p.ExpiresAt = &t
	}
	plain, k, err := s.own.Keys.Create(c.Request.Context(), p)
	if err != nil {
		adminError(c, err)
		return
	}
	obj := NewKeyObject(k, s.now())
	obj.Key = plain
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, obj)
}

func (s *adminAPI) adminGetKey(c *gin.Context) {
	k, err := s.own.Keys.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		adminError(c, err)
		return
	}
	obj := NewKeyObject(k, s.now())
	if !seesKeyHints(c) {
		obj.Hint = ""
	}
	c.JSON(http.StatusOK, obj)
}

// ownerForAdminKey refuses an action on an admin key to every role but
// the owner (a rotated admin key is a new admin key of the same role).
// The key is read first; a missing one is a 404 as before.
func (s *adminAPI) ownerForAdminKey(c *gin.Context) bool {
	if roleOf(c) == keys.RoleOwner {
		return true
	}
	k, err := s.own.Keys.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		adminError(c, err)
		return false
	}
	return requireOwnerFor(c, k.Kind)
}

func (s *adminAPI) adminRotateKey(c *gin.Context) {
	var req struct {
		Overlap *string `json:"overlap"` // a duration (24h, 1w); default from config
	}
	if !s.bindJSON(c, &req) || !s.ownerForAdminKey(c) {
		return
	}
	overlap := s.own.RotationOverlap
	if req.Overlap != nil {
		d, err := config.ParseDuration(*req.Overlap)
		if err != nil || d < 0 {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", "overlap must be a duration such as 24h or 1w, or 0s.").withParam("overlap"))
			return
		}
		overlap = d
	}
	plain, k, err := s.own.Keys.Rotate(c.Request.Context(), c.Param("id"), actor(c), overlap)
	if err != nil {
		adminError(c, err)
		return
	}
	obj := NewKeyObject(k, s.now())
	obj.Key = plain
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, obj)
}

// adminKeyAction is revoke, suspend and resume: the last path element.
func (s *adminAPI) adminKeyAction(c *gin.Context) {
	id := c.Param("id")
	ctx := c.Request.Context()
	if !s.ownerForAdminKey(c) {
		return
	}
	var err error
	switch action := lastSegment(c.FullPath()); action {
	case "revoke":
		err = s.own.Keys.Revoke(ctx, id, actor(c))
	case "resume":
		err = s.own.Keys.Resume(ctx, id, actor(c))
	case "suspend":
		var req struct {
			Reason string `json:"reason"`
		}
		if !s.bindJSON(c, &req) {
			return
		}
		if req.Reason == "" {
			req.Reason = "suspended by an operator"
		}
		err = s.own.Keys.Suspend(ctx, id, actor(c), req.Reason)
	}
	if err != nil {
		adminError(c, err)
		return
	}
	s.adminGetKey(c)
}

func lastSegment(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
