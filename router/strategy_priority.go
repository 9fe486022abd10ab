package router

import "github.com/xroute/xroute/config"

// priority keeps config order: a deployment's priority (lowest first) is
// its position in the model's list unless routing.deployments sets one;
// deployments of equal priority share traffic by weight.
type priority struct{}

func newPriority(config.Routing) Strategy { return priority{} }

func (priority) Order(_ *Query, ds []*Deployment) {
	rank(ds, func(d *Deployment, i int) float64 {
		if d.priority != nil {
			return float64(*d.priority)
		}
		return float64(i)
	})
}
