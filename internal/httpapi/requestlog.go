package httpapi

// The request log on the admin API: GET /admin/v1/requests (newest
// first, filtered, keyset-paginated), GET /admin/v1/requests/{request_id}
// (one request, with its capture when it has one), and each account's
// capture setting (GET and PUT /admin/v1/accounts/{id}/capture). The
// dashboard and `xroute logs` read these answers; their shape is a
// contract.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
)

// RequestLogStore is what the request log needs of the store.
type RequestLogStore interface {
	RequestLog(ctx context.Context, f store.RequestLogFilter, cursor string, limit int) ([]store.RequestLogRow, string, error)
	RequestLogEntry(ctx context.Context, requestID string) (store.RequestLogRow, error)
	RequestCaptureOf(ctx context.Context, requestID string) (books.RequestCapture, error)
	CaptureSetting(ctx context.Context, accountID string) (books.CaptureSetting, error)
	PutCaptureSetting(ctx context.Context, c books.CaptureSetting) error
	CaptureSettingsSource
}

// AuditWriter records an event in the audit log.
type AuditWriter interface {
	Record(ctx context.Context, e auditlog.Event) error
}

// auditCaptureChanged is the audit kind of a capture setting change.
const auditCaptureChanged = "capture.changed"

// Capture setting defaults and bounds.
const (
	defaultCaptureRetention = 7 * 24 * time.Hour
	maxCaptureRetention     = 365 * 24 * time.Hour
	defaultCaptureBytes     = 64 << 10
	maxCaptureBytes         = 1 << 20
)

func (s *adminAPI) routeRequestLog(g *gin.RouterGroup) {
	if s.cfg.RequestLog == nil {
		return
	}
	g.GET("/requests", s.adminListRequests)
	g.GET("/requests/:request_id", s.adminGetRequest)
	g.GET("/accounts/:id/capture", s.adminGetCapture)
	g.PUT("/accounts/:id/capture", s.adminPutCapture)
}

// requestObject is one row of the request log.
type requestObject struct {
	RequestID    string  `json:"request_id"`
	Seq          int64   `json:"seq"`        // order of recording: since_seq follows from it
	CreatedAt    string  `json:"created_at"` // RFC 3339, nanoseconds
	AccountID    string  `json:"account_id"`
	AccountName  string  `json:"account_name"`
	KeyID        string  `json:"key_id"`
	KeyName      string  `json:"key_name"`
	Model        string  `json:"model"`
	Provider     string  `json:"provider"`
	Deployment   string  `json:"deployment"`
	Endpoint     string  `json:"endpoint"`
	Stream       bool    `json:"stream"`
	Attempts     int     `json:"attempts"`
	Status       int     `json:"status"`
	ErrorCode    string  `json:"error_code"`
	LatencyMS    float64 `json:"latency_ms"`
	TTFTMS       float64 `json:"ttft_ms"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	// CachedTokens and CacheWriteTokens are the input tokens read from and
	// written to the provider's prompt cache (part of input_tokens).
	CachedTokens     int    `json:"cached_tokens"`
	CacheWriteTokens int    `json:"cache_write_tokens"`
	CostUSD          string `json:"cost_usd"` // exact, from nano-USD
	// PromptCacheSavedUSD is what the prompt cache saved against the
	// uncached price (negative: its writes cost more than it saved).
	PromptCacheSavedUSD string   `json:"prompt_cache_saved_usd"`
	Estimated           bool     `json:"estimated"`
	TraceID             string   `json:"trace_id"`
	CacheHit            bool     `json:"cache_hit"` // answered from the response cache
	Captured            bool     `json:"captured"`
	Capture             *capture `json:"capture,omitempty"`
}

// capture is a request's captured bodies, as text (a cut body is no
// longer JSON).
type capture struct {
	RequestBody  string `json:"request_body"`
	ResponseBody string `json:"response_body"`
	Truncated    bool   `json:"truncated"`
}

func newRequestObject(r store.RequestLogRow) requestObject {
	return requestObject{
		RequestID: r.RequestID, Seq: r.Seq, CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339Nano),
		AccountID: r.AccountID, AccountName: r.AccountName, KeyID: r.KeyID, KeyName: r.KeyName,
		Model: r.Model, Provider: r.Provider, Deployment: r.Deployment, Endpoint: r.Endpoint,
		Stream: r.Stream, Attempts: r.Attempts, Status: r.Status, ErrorCode: r.ErrorCode,
		LatencyMS: float64(r.Latency.Microseconds()) / 1000, TTFTMS: float64(r.TTFT.Microseconds()) / 1000,
		InputTokens: r.PromptTokens, OutputTokens: r.CompletionTokens, CachedTokens: r.CachedTokens, CacheWriteTokens: r.CacheWriteTokens,
		CostUSD: billing.Nano(r.CostNano).String(), PromptCacheSavedUSD: billing.Nano(r.PromptCacheSavedNano).String(),
		Estimated: r.Estimated, TraceID: r.TraceID, CacheHit: r.CacheHit, Captured: r.Captured,
	}
}

// requestFilter reads the list's filters; a bad one answers 400 naming it.
func requestFilter(c *gin.Context) (store.RequestLogFilter, *apiError) {
	f := store.RequestLogFilter{
		AccountID: c.Query("account"), KeyID: c.Query("key"), Model: c.Query("model"),
		Provider: c.Query("provider"), RequestID: c.Query("request_id"),
	}
	if v := c.Query("since_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return f, invalidParam("since_seq", "since_seq must be the seq of a row already read (a whole number, 0 for the start).")
		}
		f.Tail, f.AfterSeq = true, n
	}
	if v := c.Query("status"); v != "" {
		lo, hi, ok := parseStatusFilter(v)
		if !ok {
			return f, invalidParam("status", `status must be a status code (429), a class ("4xx", "5xx"), "error" (400 and above) or "ok" (below 400).`)
		}
		f.StatusMin, f.StatusMax = lo, hi
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, invalidParam(p.name, p.name+" must be an RFC 3339 time, such as 2026-12-01T10:00:00Z.")
			}
			*p.t = t
		}
	}
	return f, nil
}

// parseStatusFilter reads a status filter into an inclusive range: an
// exact code, a class ("5xx"), "error" (400 and above) or "ok" (below
// 400).
func parseStatusFilter(v string) (lo, hi int, ok bool) {
	switch v = strings.ToLower(v); {
	case v == "error":
		return 400, 599, true
	case v == "ok":
		return 1, 399, true
	case len(v) == 3 && v[1:] == "xx" && '1' <= v[0] && v[0] <= '5':
		n := int(v[0]-'0') * 100
		return n, n + 99, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 || n > 599 {
		return 0, 0, false
	}
	return n, n, true
}

// adminListRequests is GET /admin/v1/requests.
func (s *adminAPI) adminListRequests(c *gin.Context) {
	_, limit, e := pageArgs(c)
	if e != nil {
		writeError(c, e)
		return
	}
	f, e := requestFilter(c)
	if e != nil {
		writeError(c, e)
		return
	}
	cursor, param := cursorArg(c)
	rows, next, err := s.cfg.RequestLog.RequestLog(c.Request.Context(), f, cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		writeError(c, invalidParam(param, param+" must be the next_after of an earlier page."))
		return
	}
	if err != nil {
		adminError(c, err)
		return
	}
	data := make([]requestObject, len(rows))
	for i, r := range rows {
		data[i] = newRequestObject(r)
	}
	page := listPage{Object: "list", Data: data, HasMore: next != "", NextAfter: next}
	if f.Tail {
		page.NextAfter = "" // oldest first: the next page is since_seq of the last row
	}
	c.JSON(http.StatusOK, page)
}

// adminGetRequest is GET /admin/v1/requests/{request_id}: the row, and
// its capture when one is kept.
func (s *adminAPI) adminGetRequest(c *gin.Context) {
	id := c.Param("request_id")
	ctx := c.Request.Context()
	row, err := s.cfg.RequestLog.RequestLogEntry(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(c, newError(http.StatusNotFound, "invalid_request_error", "not_found", "No such request: "+id))
		return
	}
	if err != nil {
		adminError(c, err)
		return
	}
	obj := newRequestObject(row)
	if row.Captured {
		cp, err := s.cfg.RequestLog.RequestCaptureOf(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			obj.Captured = false // expired in between
		case err != nil:
			adminError(c, err)
			return
		default:
			obj.Capture = &capture{RequestBody: cp.Request, ResponseBody: cp.Response, Truncated: cp.Truncated}
		}
	}
	c.JSON(http.StatusOK, obj)
}

// captureObject is an account's capture setting.
type captureObject struct {
	Object    string     `json:"object"`
	AccountID string     `json:"account_id"`
	Enabled   bool       `json:"enabled"`
	Retention string     `json:"retention"`
	MaxBytes  int        `json:"max_bytes"`
	UpdatedAt *time.Time `json:"updated_at"` // null: never set
}

func newCaptureObject(cs books.CaptureSetting) captureObject {
	o := captureObject{Object: "capture_setting", AccountID: cs.AccountID, Enabled: cs.Enabled, Retention: config.FormatDuration(cs.Retention), MaxBytes: cs.MaxBytes}
	if !cs.UpdatedAt.IsZero() {
		t := cs.UpdatedAt
		o.UpdatedAt = &t
	}
	return o
}

// captureSetting reads an account's setting, the defaults (off) when it
// has none; ErrNotFound when the account does not exist.
func (s *adminAPI) captureSetting(ctx context.Context, accountID string) (books.CaptureSetting, error) {
	if _, err := s.own.Keys.Account(ctx, accountID); err != nil {
		return books.CaptureSetting{}, err
	}
	cs, err := s.cfg.RequestLog.CaptureSetting(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return books.CaptureSetting{AccountID: accountID, Retention: defaultCaptureRetention, MaxBytes: defaultCaptureBytes}, nil
	}
	return cs, err
}

func (s *adminAPI) adminGetCapture(c *gin.Context) {
	cs, err := s.captureSetting(c.Request.Context(), c.Param("id"))
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, newCaptureObject(cs))
}

// adminPutCapture sets an account's capture: enabled is required;
// retention and max_bytes keep their current values (or the defaults)
// when left out. The change is audited, and takes effect on this replica
// at once, on the others within captureTTL.
func (s *adminAPI) adminPutCapture(c *gin.Context) {
	var req struct {
		Enabled   *bool   `json:"enabled"`
		Retention *string `json:"retention"`
		MaxBytes  *int    `json:"max_bytes"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if req.Enabled == nil {
		writeError(c, invalidParam("enabled", "enabled is required (true or false)."))
		return
	}
	ctx := c.Request.Context()
	cs, err := s.captureSetting(ctx, c.Param("id"))
	if err != nil {
		adminError(c, err)
		return
	}
	cs.Enabled = *req.Enabled
	if req.Retention != nil {
		d, err := config.ParseDuration(*req.Retention)
		if err != nil || d <= 0 || d > maxCaptureRetention {
			writeError(c, invalidParam("retention", `retention must be a duration from 1s to 365d, such as "7d", "2w" or "36h".`))
			return
		}
		cs.Retention = d
	}
	if req.MaxBytes != nil {
		if *req.MaxBytes < 1 || *req.MaxBytes > maxCaptureBytes {
			writeError(c, invalidParam("max_bytes", "max_bytes must be from 1 to "+strconv.Itoa(maxCaptureBytes)+"."))
			return
		}
		cs.MaxBytes = *req.MaxBytes
	}
	cs.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	if err := s.cfg.RequestLog.PutCaptureSetting(ctx, cs); err != nil {
		adminError(c, err)
		return
	}
	if s.captureOn != nil {
		s.captureOn.invalidate()
	}
	if s.own.AuditWriter != nil {
		ev := auditlog.Event{Kind: auditCaptureChanged, Actor: actor(c), AccountID: cs.AccountID, Subject: cs.AccountID, IP: infoOf(c).clientIP,
			Details: map[string]any{"enabled": cs.Enabled, "retention": config.FormatDuration(cs.Retention), "max_bytes": cs.MaxBytes}}
		if err := s.own.AuditWriter.Record(ctx, ev); err != nil {
			// The setting is in force; the audit log must say so, so the
			// operator hears that it does not.
			adminError(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, newCaptureObject(cs))
}
