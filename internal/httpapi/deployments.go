package httpapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/router"
)

// deploymentObject is one deployment in GET /admin/v1/deployments.
// Durations are milliseconds; 0 means no sample yet.
type deploymentObject struct {
	Object        string   `json:"object"`
	ID            string   `json:"id"`
	Provider      string   `json:"provider"`
	Model         string   `json:"model"`
	PublicModels  []string `json:"public_models"`
	Breaker       string   `json:"breaker"`
	LatencyMs     float64  `json:"latency_ms"`
	LatencyP95Ms  float64  `json:"latency_p95_ms"`
	PerTokenMs    float64  `json:"latency_per_token_ms"`
	TTFTMs        float64  `json:"ttft_ms"`
	TTFTP95Ms     float64  `json:"ttft_p95_ms"`
	ErrorRate     float64  `json:"error_rate"`
	InFlight      int64    `json:"in_flight"`
	Requests      uint64   `json:"requests"`
	Failures      uint64   `json:"failures"`
	CooldownUntil *string  `json:"cooldown_until"`
	PoolSize      int      `json:"pool_size"`
	Weight        int      `json:"weight"`
	Priority      *int     `json:"priority"`
	Tags          []string `json:"tags"`
	InputPrice    *int64   `json:"input_price_micro_usd_per_mtok"`
	OutputPrice   *int64   `json:"output_price_micro_usd_per_mtok"`
	UsesConfigKey bool     `json:"uses_config_key"`
}

// DeploymentsRoute mounts GET /deployments on the admin group: every
// deployment's breaker state, moving latency and time to first token,
// error rate, requests in flight, cooldown and key pool size. It shows no
// key, only how many there are.
//
// The list is ordered by id and paginated (limit, after: the last id of
// the previous page); filters: provider, model (a public model the
// deployment serves, or its upstream model) and breaker (closed, open,
// half-open).
func DeploymentsRoute(r *router.Router) MountFunc {
	return func(g *gin.RouterGroup) {
		g.GET("/deployments", func(c *gin.Context) {
			after, limit, e := pageArgs(c)
			if e != nil {
				writeError(c, e)
				return
			}
			provider, model, breaker := c.Query("provider"), c.Query("model"), c.Query("breaker")
			page := listPage{Object: "list"}
			data := make([]deploymentObject, 0)
			for _, d := range r.Deployments() {
				if (after != "" && d.Name <= after) || (provider != "" && d.Provider != provider) ||
					(breaker != "" && d.Breaker != breaker) || (model != "" && d.Model != model && !slices.Contains(d.Models, model)) {
					continue
				}
				if len(data) == limit {
					page.HasMore, page.NextAfter = true, data[len(data)-1].ID
					break
				}
				data = append(data, toDeploymentObject(d))
			}
			page.Data = data
			c.JSON(http.StatusOK, page)
		})
	}
}

func toDeploymentObject(d router.DeploymentStatus) deploymentObject {
	ms := func(v time.Duration) float64 { return float64(v.Microseconds()) / 1000 }
	o := deploymentObject{
		Object: "deployment", ID: d.Name, Provider: d.Provider, Model: d.Model,
		PublicModels: d.Models, Breaker: d.Breaker,
		LatencyMs: ms(d.Latency), LatencyP95Ms: ms(d.LatencyP95), PerTokenMs: ms(d.PerToken),
		TTFTMs: ms(d.TTFT), TTFTP95Ms: ms(d.TTFTP95),
		ErrorRate: d.ErrorRate, InFlight: d.InFlight, Requests: d.Requests, Failures: d.Failures,
		PoolSize: d.PoolSize, Weight: d.Weight, Priority: d.Priority, Tags: d.Tags,
		UsesConfigKey: d.PoolSize == 0,
	}
	if o.PublicModels == nil {
		o.PublicModels = []string{}
	}
	if o.Tags == nil {
		o.Tags = []string{}
	}
	if !d.CooldownUntil.IsZero() {
		s := d.CooldownUntil.UTC().Format(time.RFC3339Nano)
		o.CooldownUntil = &s
	}
	if d.HasPrice {
		o.InputPrice, o.OutputPrice = &d.Input, &d.Output
	}
	return o
}
