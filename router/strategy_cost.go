package router

import "github.com/xroute/xroute/config"

// cost puts the cheapest deployment for the request first: catalog prices
// for the estimated prompt and the completion budget. Deployments without
// a price come last. Equal prices share traffic by weight.
type cost struct{}

func newCost(config.Routing) Strategy { return cost{} }

func (cost) Order(q *Query, ds []*Deployment) {
	rank(ds, func(d *Deployment, _ int) float64 { return costOf(q, d) })
}

func (cost) pricesCache() {}
