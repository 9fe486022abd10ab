package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/internal/auditsink"
	"github.com/xroute/xroute/keys/auditlog"
)

// HeaderNextSince names the since of the next page of an audit export:
// the last seq of this one (the request's since when it is empty).
const HeaderNextSince = "X-Xroute-Next-Since"

// AuditScanner reads the audit log in seq order (*store.DB is one).
type AuditScanner interface {
	ScanAudit(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Row, error)
}

// AuditExportRoute is GET /admin/v1/audit/export?since=SEQ&limit=N: the
// audit rows after seq SEQ (0: from the first), oldest first, as JSON
// lines in the audit sinks' format, at most N (1000 by default, at most
// 10000) per page; `xroute audit export` pages through it.
func AuditExportRoute(st AuditScanner) MountFunc {
	return func(g *gin.RouterGroup) {
		g.GET("/audit/export", func(c *gin.Context) {
			since, limit := int64(0), 1000
			if v := c.Query("since"); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					writeError(c, invalidParam("since", "since must be a sequence number (0 or more)."))
					return
				}
				since = n
			}
			if v := c.Query("limit"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 10000 {
					writeError(c, invalidParam("limit", "limit must be an integer from 1 to 10000."))
					return
				}
				limit = n
			}
			rows, err := st.ScanAudit(c.Request.Context(), since, limit)
			if err != nil {
				adminError(c, err)
				return
			}
			next := since
			if len(rows) > 0 {
				next = rows[len(rows)-1].Seq
			}
			c.Header(HeaderNextSince, strconv.FormatInt(next, 10))
			c.Data(http.StatusOK, "application/x-ndjson", auditsink.AppendJSONL(nil, rows))
		})
	}
}
