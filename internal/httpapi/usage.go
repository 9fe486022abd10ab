package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
)

// UsageReporter answers usage reports (billing.Reporter): it fills the
// range defaults, validates (a *billing.QueryError is the caller's
// mistake) and aggregates.
type UsageReporter interface {
	Report(ctx context.Context, q store.ReportQuery) (billing.Report, error)
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
// only).
func UsageRoutes(rep UsageReporter) (admin func(*gin.RouterGroup), caller func(*gin.RouterGroup)) {
	admin = func(g *gin.RouterGroup) {
		g.GET("/usage/report", func(c *gin.Context) {
			q, format, e := reportQuery(c)
			if e != nil {
				writeError(c, e)
				return
			}
			q.AccountID = c.Query("account_id")
			serveReport(c, rep, q, format)
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
			serveReport(c, rep, q, format)
		})
	}
	return admin, caller
}

func invalidParam(param, msg string) *apiError {
	return newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", msg).withParam(param)
}

// reportQuery reads the parameters both routes share.
func reportQuery(c *gin.Context) (store.ReportQuery, string, *apiError) {
	var q store.ReportQuery
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

func serveReport(c *gin.Context, rep UsageReporter, q store.ReportQuery, format string) {
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
