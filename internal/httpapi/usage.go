package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/keys"
)

// UsageReporter answers usage reports (billing.Reporter): it fills the
// range defaults, validates (a *billing.QueryError is the caller's
// mistake) and aggregates.
type UsageReporter interface {
	Report(ctx context.Context, q books.ReportQuery) (billing.Report, error)
}

// UsageRoutes returns the usage report routes: admin mounts
// GET /usage/report on the authenticated admin group (any account, JSON or
// CSV); caller mounts GET /usage on the authenticated /v1 group (the
// caller's own account only, JSON).
//
// Query parameters: group_by (comma-separated: account, key, model,
// provider, day, hour), from and to (RFC 3339 or YYYY-MM-DD, UTC; [from,
// to), default the last 30 days, at most 366 days), the filters account_id
// (admin only), key_id, model, provider, and format (json or csv, admin
// only). The admin JSON report pages when asked (limit, after: the
// previous page's next_after): rows then come largest cost first, so a
// table of thousands of keys reads a page at a time.
func UsageRoutes(rep UsageReporter) (admin, caller MountFunc) {
	admin = func(g *gin.RouterGroup) {
		g.GET("/usage/report", func(c *gin.Context) {
			q, format, e := reportQuery(c)
			if e != nil {
				writeError(c, e)
				return
			}
			q.AccountID = c.Query("account_id")
			pg, e := reportPaging(c, format)
			if e != nil {
				writeError(c, e)
				return
			}
			serveReport(c, rep, q, format, pg)
		})
	}
	caller = func(g *gin.RouterGroup) {
		g.GET("/usage", func(c *gin.Context) {
			var k *keys.Key
			if info := infoOf(c); info != nil {
				k = info.key
			}
			if k == nil {
				writeError(c, unauthorized("missing_api_key", "You didn't provide an API key."))
				return
			}
			if !k.AllowsEndpoint(keys.EndpointUsage) {
				writeError(c, newError(http.StatusForbidden, "permission_error", "endpoint_not_allowed", "This API key may not call "+keys.EndpointUsage+"."))
				return
			}
			// A key reads its own account and nothing else: another
			// account is answered as if it did not exist.
			if a := c.Query("account_id"); a != "" && a != k.AccountID {
				writeError(c, newError(http.StatusNotFound, "invalid_request_error", "not_found", "No such account: "+a).withParam("account_id"))
				return
			}
			q, format, e := reportQuery(c)
			if e != nil {
				writeError(c, e)
				return
			}
			if format != "json" {
				writeError(c, invalidParam("format", "format must be json here; operators get CSV from the admin API."))
				return
			}
			// With the account forced, a key_id of another account's key
			// matches nothing: an empty report, revealing nothing.
			q.AccountID = k.AccountID
			serveReport(c, rep, q, format, nil)
		})
	}
	return admin, caller
}

func invalidParam(param, msg string) *apiError {
	return newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", msg).withParam(param)
}

// reportQuery reads the parameters both routes share.
func reportQuery(c *gin.Context) (books.ReportQuery, string, *apiError) {
	var q books.ReportQuery
	groupBy, err := billing.ParseGroupBy(strings.Join(c.QueryArray("group_by"), ","))
	if err != nil {
		return q, "", queryError(err)
	}
	q.GroupBy = groupBy
	if q.From, err = billing.ParseTime("from", c.Query("from")); err != nil {
		return q, "", queryError(err)
	}
	if q.To, err = billing.ParseTime("to", c.Query("to")); err != nil {
		return q, "", queryError(err)
	}
	q.KeyID, q.Model, q.Provider = c.Query("key_id"), c.Query("model"), c.Query("provider")
	format := strings.ToLower(c.DefaultQuery("format", "json"))
	if format != "json" && format != "csv" {
		return q, "", invalidParam("format", "format must be json or csv.")
	}
	return q, format, nil
}

func queryError(err error) *apiError {
	var qe *billing.QueryError
	if errors.As(err, &qe) {
		return invalidParam(qe.Param, qe.Msg)
	}
	return invalidParam("", err.Error())
}

// reportPage is a paged report: the report's rows of one page, with the
// cursor every admin list answers with.
type reportPage struct {
	billing.Report
	HasMore   bool   `json:"has_more"`
	NextAfter string `json:"next_after,omitempty"`
}

// paging is a report page request: rows [offset, offset+limit) of the
// report ordered by cost.
type paging struct{ offset, limit int }

// reportPaging reads limit and after; nil when neither is given (the
// whole report, as before).
func reportPaging(c *gin.Context, format string) (*paging, *apiError) {
	lv, av := c.Query("limit"), c.Query("after")
	if lv == "" && av == "" {
		return nil, nil
	}
	if format != "json" {
		return nil, invalidParam("limit", "limit and after page the JSON report; a CSV holds every row.")
	}
	pg := &paging{limit: 100}
	if lv != "" {
		n, err := strconv.Atoi(lv)
		if err != nil || n < 1 || n > 1000 {
			return nil, newError(http.StatusBadRequest, "invalid_request_error", "invalid_limit", "limit must be an integer from 1 to 1000.").withParam("limit")
		}
		pg.limit = n
	}
	if av != "" {
		n, err := strconv.Atoi(av)
		if err != nil || n < 1 {
			return nil, invalidParam("after", "after must be the next_after of the previous page.")
		}
		pg.offset = n
	}
	return pg, nil
}

// page orders the rows by cost, then requests, then their group (a stable
// order, so that pages neither skip nor repeat rows while the data stays
// the same) and keeps one page.
func (pg *paging) page(r billing.Report) reportPage {
	rows := slices.Clone(r.Data)
	slices.SortStableFunc(rows, func(a, b billing.Row) int {
		if a.CostNano != b.CostNano {
			return cmp.Compare(b.CostNano, a.CostNano)
		}
		if a.Requests != b.Requests {
			return cmp.Compare(b.Requests, a.Requests)
		}
		return cmp.Or(strings.Compare(a.AccountID, b.AccountID), strings.Compare(a.KeyID, b.KeyID),
			strings.Compare(a.Model, b.Model), strings.Compare(a.Provider, b.Provider), bucketOrder(a, b))
	})
	out := reportPage{Report: r}
	start := min(pg.offset, len(rows))
	end := min(start+pg.limit, len(rows))
	out.Data = rows[start:end]
	if end < len(rows) {
		out.HasMore, out.NextAfter = true, strconv.Itoa(end)
	}
	return out
}

func bucketOrder(a, b billing.Row) int {
	if a.BucketStart == nil || b.BucketStart == nil {
		return 0
	}
	return a.BucketStart.Compare(*b.BucketStart)
}

func serveReport(c *gin.Context, rep UsageReporter, q books.ReportQuery, format string, pg *paging) {
	r, err := rep.Report(c.Request.Context(), q)
	var qe *billing.QueryError
	switch {
	case errors.As(err, &qe):
		writeError(c, invalidParam(qe.Param, qe.Msg))
		return
	case err != nil:
		writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The usage report failed."))
		if info := infoOf(c); info != nil {
			info.errMsg = err.Error()
		}
		return
	}
	if pg != nil {
		c.JSON(http.StatusOK, pg.page(r))
		return
	}
	if format != "csv" {
		c.JSON(http.StatusOK, r)
		return
	}
	var buf bytes.Buffer
	if err := billing.WriteCSV(&buf, r); err != nil {
		writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The usage report failed."))
		return
	}
	const stamp = "20060102T150405Z"
	c.Header("Content-Disposition", `attachment; filename="xroute-usage-`+r.From.UTC().Format(stamp)+"-"+r.To.UTC().Format(stamp)+`.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}
