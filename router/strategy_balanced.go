package router

import (
	"math"

	"github.com/xroute/xroute/config"
)

// balanced scores each deployment by its cost and its latency relative to
// the best of the model (1 is the best), weighted by routing.cost_weight.
// A deployment without latency numbers counts as the fastest.
type balanced struct{ costWeight float64 }

func newBalanced(rt config.Routing) Strategy { return balanced{costWeight: rt.CostWeight} }

func (b balanced) Order(q *Query, ds []*Deployment) {
	var stack [32]float64
	lats := stack[:0]
	if len(ds) > len(stack) {
		lats = make([]float64, 0, len(ds))
	}
	minCost, minLat := math.Inf(1), math.Inf(1)
	for _, d := range ds {
		minCost = min(minCost, costOf(q, d))
		l := latencyOf(q, d)
		if l > 0 {
			minLat = min(minLat, l)
		}
		lats = append(lats, l)
	}
	rank(ds, func(d *Deployment, i int) float64 {
		l := 1.0
		if lats[i] > 0 && !math.IsInf(minLat, 1) {
			l = lats[i] / minLat
		}
		score := (1 - b.costWeight) * l
		if b.costWeight > 0 && !math.IsInf(minCost, 1) {
			score += b.costWeight * (costOf(q, d) + 1) / (minCost + 1) // +1 pico-USD: free deployments
		}
		return band(score)
	})
}

func (balanced) pricesCache() {}
