package router

import "github.com/xroute/xroute/config"

// latency puts the fastest deployment first: the lowest moving average of
// time to first token for streams, of time per output token otherwise.
// Deployments within about 3% of each other tie; one without numbers (new,
// or unused for a while) is tried first, once, to learn them.
type latency struct{}

func newLatency(config.Routing) Strategy { return latency{} }

func (latency) Order(q *Query, ds []*Deployment) {
	rank(ds, func(d *Deployment, _ int) float64 { return band(latencyOf(q, d)) })
}
