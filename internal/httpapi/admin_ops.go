package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// AuditLog reads and verifies the audit log, and signs its head.
type AuditLog interface {
	List(ctx context.Context, f auditlog.Filter) ([]auditlog.Event, error)
	Check(ctx context.Context, anchor *auditlog.Head) (auditlog.ChainReport, error)
	Head(ctx context.Context) (auditlog.Head, error)
}

// ProviderKeyAdmin manages provider keys and the vault.
type ProviderKeyAdmin interface {
	AddProviderKey(ctx context.Context, actor, provider, name, secret string, weight int) (keys.ProviderKey, error)
	ListProviderKeys(ctx context.Context, provider string) ([]keys.ProviderKey, error)
	SetProviderKeyEnabled(ctx context.Context, actor, id string, enabled bool, reason string) error
	DeleteProviderKey(ctx context.Context, actor, id string) error
	RotateVault(ctx context.Context, actor string, progress func(done, total int)) (uint32, error)
}

func (s *adminAPI) routeAdminOps(g *gin.RouterGroup) {
	if s.own.AuditLog != nil {
		g.GET("/audit", s.adminListAudit)
		g.GET("/audit/verify", s.adminVerifyAudit)
		g.GET("/audit/head", s.adminAuditHead)
	}
	if s.own.ProviderKeys != nil {
		g.GET("/provider-keys", s.adminListProviderKeys)
		g.POST("/provider-keys", s.adminAddProviderKey)
		g.POST("/provider-keys/:id/disable", s.adminProviderKeyState)
		g.POST("/provider-keys/:id/enable", s.adminProviderKeyState)
		g.DELETE("/provider-keys/:id", s.adminDeleteProviderKey)
		g.POST("/vault/rotate", s.adminRotateVault)
	}
}

type auditObject struct {
	Object    string         `json:"object"`
	Seq       int64          `json:"seq"`
	At        time.Time      `json:"at"`
	Kind      string         `json:"kind"`
	Actor     string         `json:"actor"`
	AccountID string         `json:"account_id"`
	Subject   string         `json:"subject"`
	IP        string         `json:"ip"`
	Details   map[string]any `json:"details"`
	Hash      string         `json:"hash"`
	KeyTerm   uint32         `json:"key_term"`
}

func (s *adminAPI) adminListAudit(c *gin.Context) {
	f := auditlog.Filter{Kind: c.Query("kind"), Subject: c.Query("subject"), AccountID: c.Query("account_id"), Limit: 100}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_limit", "limit must be an integer from 1 to 1000.").withParam("limit"))
			return
		}
		f.Limit = n
	}
	// after is the previous page's next_after: the list runs newest
	// first, so it continues before that sequence number.
	if v, param := cursorArg(c); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", param+" must be a sequence number.").withParam(param))
			return
		}
		f.BeforeSeq = n
	}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", "since must be an RFC 3339 time.").withParam("since"))
			return
		}
		f.Since = t
	}
	// from and to are the date range every dashboard list takes; from is
	// since under the name the other lists use.
	from, to, e := timeRange(c)
	if e != nil {
		writeError(c, e)
		return
	}
	if from.After(f.Since) {
		f.Since = from
	}
	f.Until = to
	list, err := s.own.AuditLog.List(c.Request.Context(), auditlog.Filter{Kind: f.Kind, Subject: f.Subject, AccountID: f.AccountID, Since: f.Since, Until: f.Until, BeforeSeq: f.BeforeSeq, Limit: f.Limit + 1})
	if err != nil {
		adminError(c, err)
		return
	}
	page := listPage{Object: "list"}
	if len(list) > f.Limit {
		list, page.HasMore = list[:f.Limit], true
	}
	data := make([]auditObject, len(list))
	hints := seesKeyHints(c)
	for i, e := range list {
		if !hints {
			e.Details = scrubHints(e.Details)
		}
		data[i] = auditObject{Object: "audit_event", Seq: e.Seq, At: e.At, Kind: e.Kind, Actor: e.Actor, AccountID: e.AccountID, Subject: e.Subject, IP: e.IP, Details: e.Details, Hash: e.Hash, KeyTerm: e.KeyTerm}
		if data[i].Details == nil {
			data[i].Details = map[string]any{}
		}
	}
	if page.HasMore {
		page.NextAfter = strconv.FormatInt(list[len(list)-1].Seq, 10)
	}
	page.Data = data
	c.JSON(http.StatusOK, page)
}

// adminVerifyAudit walks the chain; with head (a head from GET
// /audit/head, as JSON) it also checks that nothing was removed or
// rewritten since that head was taken.
func (s *adminAPI) adminVerifyAudit(c *gin.Context) {
	var anchor *auditlog.Head
	if v := c.Query("head"); v != "" {
		h, err := auditlog.ParseHead(v)
		if err != nil {
			writeError(c, invalidParam("head", "head must be a head as GET /admin/v1/audit/head answers it (JSON): "+err.Error()))
			return
		}
		anchor = &h
	}
	rep, err := s.own.AuditLog.Check(c.Request.Context(), anchor)
	var ce *auditlog.ChainError
	switch {
	case errors.As(err, &ce):
		c.JSON(http.StatusOK, gin.H{"object": "audit_verification", "ok": false, "rows": rep.Rows, "legacy_rows": rep.LegacyRows,
			"broken_at_seq": ce.Seq, "reason": ce.Reason})
	case errors.Is(err, auditlog.ErrAuditNotKeyed), errors.Is(err, auditlog.ErrHeadSignature):
		c.JSON(http.StatusOK, gin.H{"object": "audit_verification", "ok": false, "rows": rep.Rows, "legacy_rows": rep.LegacyRows, "reason": err.Error()})
	case err != nil:
		adminError(c, err)
	default:
		c.JSON(http.StatusOK, gin.H{"object": "audit_verification", "ok": true, "rows": rep.Rows, "legacy_rows": rep.LegacyRows,
			"keyed": rep.Keyed, "head_checked": rep.HeadChecked})
	}
}

// auditHeadObject is a signed head, to keep outside the database.
type auditHeadObject struct {
	Object string `json:"object"`
	auditlog.Head
}

// adminAuditHead signs the chain's newest row, after checking the chain:
// a broken chain gets no head (409).
func (s *adminAPI) adminAuditHead(c *gin.Context) {
	h, err := s.own.AuditLog.Head(c.Request.Context())
	var ce *auditlog.ChainError
	switch {
	case errors.As(err, &ce), errors.Is(err, auditlog.ErrAuditNotKeyed):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "audit_chain_broken", "The audit chain does not verify, so no head is signed: "+err.Error()))
	case err != nil:
		adminError(c, err)
	default:
		c.JSON(http.StatusOK, auditHeadObject{Object: "audit_head", Head: h})
	}
}

// providerKeyObject is a provider key's masked view.
type providerKeyObject struct {
	Object string `json:"object"`
	keys.ProviderKey
}

// adminListProviderKeys lists provider keys ordered by provider, then age.
// Filters: provider, status (active or disabled). The cursor (after) is
// the id of the last key of the previous page.
func (s *adminAPI) adminListProviderKeys(c *gin.Context) {
	after, limit, e := pageArgs(c)
	if e != nil {
		writeError(c, e)
		return
	}
	list, err := s.own.ProviderKeys.ListProviderKeys(c.Request.Context(), c.Query("provider"))
	if err != nil {
		adminError(c, err)
		return
	}
	if after != "" {
		i := slices.IndexFunc(list, func(k keys.ProviderKey) bool { return k.ID == after })
		if i < 0 {
			writeError(c, invalidParam("after", "after must be the id of a provider key in this listing (the next_after of the previous page)."))
			return
		}
		list = list[i+1:]
	}
	status, hints := c.Query("status"), seesKeyHints(c)
	page := listPage{Object: "list"}
	data := make([]providerKeyObject, 0, min(len(list), limit))
	for _, k := range list {
		if status != "" && k.Status != status {
			continue
		}
		if len(data) == limit {
			page.HasMore, page.NextAfter = true, data[len(data)-1].ID
			break
		}
		if !hints {
			k.Hint = ""
		}
		data = append(data, providerKeyObject{Object: "provider_key", ProviderKey: k})
	}
	page.Data = data
	c.JSON(http.StatusOK, page)
}

func (s *adminAPI) adminAddProviderKey(c *gin.Context) {
	var req struct {
		Provider string `json:"provider"`
		Name     string `json:"name"`
		Key      string `json:"key"`
		Weight   int    `json:"weight"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	pk, err := s.own.ProviderKeys.AddProviderKey(c.Request.Context(), actor(c), req.Provider, req.Name, req.Key, req.Weight)
	if err != nil {
		providerKeyError(c, err)
		return
	}
	c.JSON(http.StatusCreated, providerKeyObject{Object: "provider_key", ProviderKey: pk})
}

func (s *adminAPI) adminProviderKeyState(c *gin.Context) {
	enable := lastSegment(c.FullPath()) == "enable"
	var req struct {
		Reason string `json:"reason"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if !enable && req.Reason == "" {
		req.Reason = "disabled by an operator"
	}
	if err := s.own.ProviderKeys.SetProviderKeyEnabled(c.Request.Context(), actor(c), c.Param("id"), enable, req.Reason); err != nil {
		providerKeyError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "provider_key", "id": c.Param("id"), "status": map[bool]string{true: "active", false: "disabled"}[enable]})
}

func (s *adminAPI) adminDeleteProviderKey(c *gin.Context) {
	if err := s.own.ProviderKeys.DeleteProviderKey(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		providerKeyError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "provider_key", "id": c.Param("id"), "deleted": true})
}

func (s *adminAPI) adminRotateVault(c *gin.Context) {
	term, err := s.own.ProviderKeys.RotateVault(c.Request.Context(), actor(c), nil)
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "vault", "active_term": term})
}

func providerKeyError(c *gin.Context, err error) {
	if errors.Is(err, keys.ErrInvalidProviderKey) {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", err.Error()))
		return
	}
	adminError(c, err)
}
