package router

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/xroute/xroute/config"
)

// Strategy orders the deployments of a model for one request, best first.
// The router then tries them in that order, skipping those whose breaker
// is open, that cool down after a 429, or that cannot serve the request.
//
// Each strategy is one file (strategy_<name>.go) plus one line in
// BuiltinStrategies (strategies.go).
type Strategy interface {
	// Order sorts ds in place. ds holds the model's deployments in config
	// order. Order must be safe for concurrent use and should not allocate.
	Order(q *Query, ds []*Deployment)
}

// Query is what a strategy knows of the request.
type Query struct {
	Stream bool
	// PromptTokens is the estimated prompt size; CompletionTokens the
	// completion budget (max tokens, else defaultCompletion).
	PromptTokens, CompletionTokens int
	// Now is the router's clock, in unix nanoseconds.
	Now int64
	// explored is set once a stale deployment was given a try: one per
	// request.
	explored bool
	// Warm is the deployment where the request's session has its prompt
	// cache (nil: none known), CacheTokens the prefix expected to be read
	// from it. costOf prices those tokens at the cached-input price on
	// Warm and at the cache-write price elsewhere.
	Warm        *Deployment
	CacheTokens int
}

// cacheAware is implemented by the strategies that price a session's
// warm cache (costOf with Query.Warm): the router does not move a pinned
// deployment first for them, their price decides.
type cacheAware interface{ pricesCache() }

// defaultCompletion is the completion estimate of a request without max
// tokens, used to weigh output against input prices.
const defaultCompletion = 256

// StrategyFactory builds a strategy from the routing settings.
type StrategyFactory func(config.Routing) Strategy

// Strategies is a registry of routing strategies by name. It is built
// explicitly (BuiltinStrategies lists xroute's) and handed to the router
// (WithStrategies); there is no global registry.
type Strategies map[string]StrategyFactory

// Names lists the strategies, sorted.
func (ss Strategies) Names() []string {
	out := make([]string, 0, len(ss))
	for n := range ss {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// build instantiates every strategy once.
func (ss Strategies) build(rt config.Routing) map[string]Strategy {
	out := make(map[string]Strategy, len(ss))
	for n, f := range ss {
		out[n] = f(rt)
	}
	return out
}

// unknownStrategy names the field, the name and the strategies known.
func unknownStrategy(field, name string, known map[string]Strategy) error {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Errorf("%s: unknown strategy %q (known: %s)", field, name, strings.Join(names, ", "))
}

// ranked is a deployment with its score and its random tie-breaker.
type ranked struct {
	d     *Deployment
	score float64
	tie   float64
}

// rank sorts ds by score (lower first). Equal scores are ties: they are
// put in a random order in which a deployment of weight w comes first w
// times as often as one of weight 1 (exponential keys divided by the
// weight). It does not allocate for up to 32 deployments.
func rank(ds []*Deployment, score func(d *Deployment, i int) float64) {
	var stack [32]ranked
	rs := stack[:0]
	if len(ds) > len(stack) {
		rs = make([]ranked, 0, len(ds))
	}
	for i, d := range ds {
		rs = append(rs, ranked{d: d, score: score(d, i)})
	}
	// Insertion sorts: few elements, no allocation, no interface calls.
	for i := 1; i < len(rs); i++ {
		x := rs[i]
		j := i
		for ; j > 0 && x.score < rs[j-1].score; j-- {
			rs[j] = rs[j-1]
		}
		rs[j] = x
	}
	// Shuffle each run of equal scores by weight.
	for lo := 0; lo < len(rs); {
		hi := lo + 1
		for hi < len(rs) && rs[hi].score == rs[lo].score {
			hi++
		}
		if hi-lo > 1 {
			run := rs[lo:hi]
			for i := range run {
				run[i].tie = rand.ExpFloat64() / float64(run[i].d.weight)
			}
			for i := 1; i < len(run); i++ {
				x := run[i]
				j := i
				for ; j > 0 && x.tie < run[j-1].tie; j-- {
					run[j] = run[j-1]
				}
				run[j] = x
			}
		}
		lo = hi
	}
	for i := range rs {
		ds[i] = rs[i].d
	}
}

// band rounds a positive measurement down to 5 significant bits, so that
// values within about 3% of each other tie and share the traffic.
func band(v float64) float64 {
	if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	return math.Float64frombits(math.Float64bits(v) &^ (1<<47 - 1))
}

// costOf is the estimated price of the request on d in pico-USD (+Inf
// when d has no price). With a warm session (q.Warm), the expected cache
// reads cost the cached-input price on the warm deployment, and a cache
// write (priced above input on Anthropic) on the cold ones.
func costOf(q *Query, d *Deployment) float64 {
	if d.Info == nil {
		return math.Inf(1)
	}
	in, out := float64(max(d.Info.Input, 0)), float64(max(d.Info.Output, 0))
	prompt := float64(q.PromptTokens) * in
	if c := min(q.CacheTokens, q.PromptTokens); q.Warm != nil && c > 0 {
		rest := float64(q.PromptTokens-c) * in
		if d == q.Warm {
			prompt = rest + float64(c)*float64(max(d.Info.CachedInput, 0))
		} else if w := d.Info.CacheWriteInput; w > d.Info.Input {
			prompt = rest + float64(c)*float64(w)
		}
	}
	return prompt + float64(q.CompletionTokens)*out
}

// latencyOf is d's recent latency for the request's kind in nanoseconds:
// time to first token for streams, time per output token otherwise,
// inflated by its error rate (a failing deployment costs a failover). 0
// means unknown, or stale and chosen to be refreshed by this request.
func latencyOf(q *Query, d *Deployment) float64 {
	h := &d.health
	if !q.explored && h.claimStale(q.Now) {
		q.explored = true
		return 0
	}
	v := h.perToken.load()
	if q.Stream {
		v = h.ttft.load()
	}
	return v / (1 - min(h.errRate.load(), 0.9))
}
