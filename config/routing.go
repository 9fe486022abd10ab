package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Routing says how the router orders a model's deployments and how it
// judges their health. The zero value routes in config order with the
// defaults listed on each field.
//
//	routing:
//	  default_strategy: priority        # priority | cost | latency | balanced
//	  budget: 30s                       # failover stops starting attempts after this
//	  models:
//	    gpt-4o: {strategy: latency, hedge: true, max_attempts: 4}
//	  deployments:
//	    "openai/gpt-4o": {weight: 2, priority: 1, tags: [us]}
//	  hedge: {delay: 0s, min_delay: 50ms, max_delay: 2s}
//	  breaker: {failure_ratio: 0.5, min_requests: 20, window: 60s, probes: 1}
//	  affinity: {entries: 100000, ttl: 5m}
//
// Strategy names are checked by the router, which owns the strategies.
type Routing struct {
	// DefaultStrategy applies to models with no strategy of their own
	// (default "priority": config order).
	DefaultStrategy string `yaml:"default_strategy"`
	// CostWeight is the share of cost in the "balanced" score, 0..1; the
	// rest is latency (default 0.5).
	CostWeight float64 `yaml:"cost_weight"`
	// Budget bounds one request's failover: no attempt starts later than
	// Budget after the first (0: only the caller's deadline bounds it).
	Budget time.Duration `yaml:"budget"`
	// RateLimitCooldown is how long a deployment answering 429 without a
	// Retry-After is skipped (default 1s); MaxCooldown caps any cooldown
	// (default 5m).
	RateLimitCooldown time.Duration `yaml:"rate_limit_cooldown"`
	MaxCooldown       time.Duration `yaml:"max_cooldown"`
	// Models holds per public model settings, by model name.
	Models map[string]ModelRouting `yaml:"models"`
	// Deployments holds per deployment settings, by "provider/model" (the
	// provider's name in providers[] and the upstream model id).
	Deployments map[string]DeploymentRouting `yaml:"deployments"`
	Hedge       Hedge                        `yaml:"hedge"`
	Breaker     Breaker                      `yaml:"breaker"`
	Affinity    Affinity                     `yaml:"affinity"`
}

// Affinity tunes session affinity: a session whose request read or wrote
// a provider's prompt cache goes back to the same deployment and provider
// key while it is healthy (per model: routing.models[].affinity).
type Affinity struct {
	// Entries bounds the sessions one replica remembers (LRU; default
	// 100000). Redis, when configured, shares them between replicas.
	Entries int `yaml:"entries"`
	// TTL is how long a session is remembered without traffic: the
	// provider's cache lifetime (default 5m, Anthropic's and OpenAI's); a
	// request asking a longer cache ttl keeps its session that long.
	TTL time.Duration `yaml:"ttl"`
}

// ModelRouting overrides routing for one public model.
type ModelRouting struct {
	Strategy string `yaml:"strategy"`
	// Hedge sends a slow request to a second deployment too (see Hedge);
	// nil means Hedge.Enabled.
	Hedge *bool `yaml:"hedge"`
	// MaxAttempts overrides router.max_attempts (0: keep it).
	MaxAttempts int `yaml:"max_attempts"`
	// Affinity keeps a session on the deployment and provider key whose
	// prompt cache it warmed (nil: on).
	Affinity *bool `yaml:"affinity"`
	// CacheBreakpoints adds Anthropic cache_control breakpoints to
	// requests that set none (nil: on).
	CacheBreakpoints *bool `yaml:"cache_breakpoints"`
}

// DeploymentRouting describes one deployment to the strategies.
type DeploymentRouting struct {
	// Weight spreads traffic among deployments that tie (default 1).
	Weight int `yaml:"weight"`
	// Priority orders the "priority" strategy, lowest first. Unset, it is
	// the deployment's position in the model's list (config order).
	Priority *int `yaml:"priority"`
	// Tags can be named in a request's provider.only / ignore / order.
	Tags []string `yaml:"tags"`
	// FirstByteTimeout and StreamIdleTimeout override router's for this
	// deployment (0: router's): a reasoning model that thinks in silence
	// may need more.
	FirstByteTimeout  time.Duration `yaml:"first_byte_timeout"`
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
}

// Hedge tunes hedged requests: when the first deployment has not
// answered (streams: sent the first token) after the delay, the request
// also goes to the next candidate; the first answer wins.
type Hedge struct {
	// Enabled hedges every model that does not say otherwise.
	Enabled bool `yaml:"enabled"`
	// Delay is a fixed hedge delay; 0 uses the deployment's p95 time to
	// first token (streams) or p95 latency, within MinDelay..MaxDelay
	// (defaults 50ms and 2s; MaxDelay is also used before any sample).
	Delay    time.Duration `yaml:"delay"`
	MinDelay time.Duration `yaml:"min_delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
}

// Breaker adds a failure-ratio trip to router.breaker_failures (consecutive
// failures) and tunes half-open probing.
type Breaker struct {
	// FailureRatio opens the breaker when at least this share of the
	// requests in Window failed, once MinRequests were counted (default
	// 0.5 over 20 requests in 60s; a negative ratio turns it off).
	FailureRatio float64       `yaml:"failure_ratio"`
	MinRequests  uint32        `yaml:"min_requests"`
	Window       time.Duration `yaml:"window"`
	// Probes is how many requests a half-open breaker lets through; as
	// many successes close it (default 1).
	Probes uint32 `yaml:"probes"`
}

// WithDefaults fills the fields left at zero.
func (r Routing) WithDefaults() Routing {
	if r.DefaultStrategy == "" {
		r.DefaultStrategy = "priority"
	}
	if r.CostWeight == 0 {
		r.CostWeight = 0.5
	}
	if r.RateLimitCooldown == 0 {
		r.RateLimitCooldown = time.Second
	}
	if r.MaxCooldown == 0 {
		r.MaxCooldown = 5 * time.Minute
	}
	if r.Hedge.MinDelay == 0 {
		r.Hedge.MinDelay = 50 * time.Millisecond
	}
	if r.Hedge.MaxDelay == 0 {
		r.Hedge.MaxDelay = 2 * time.Second
	}
	if r.Breaker.FailureRatio == 0 {
		r.Breaker.FailureRatio = 0.5
	}
	if r.Breaker.MinRequests == 0 {
		r.Breaker.MinRequests = 20
	}
	if r.Breaker.Window == 0 {
		r.Breaker.Window = time.Minute
	}
	if r.Breaker.Probes == 0 {
		r.Breaker.Probes = 1
	}
	if r.Affinity.Entries == 0 {
		r.Affinity.Entries = 100_000
	}
	if r.Affinity.TTL == 0 {
		r.Affinity.TTL = 5 * time.Minute
	}
	return r
}

// Validate checks the routing settings; errors name the field under
// "routing.". It does not know the strategy names (the router checks them)
// nor the models and providers added from the catalog at start-up.
func (r Routing) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: "routing." + field, Msg: fmt.Sprintf(format, args...)})
	}
	if r.CostWeight < 0 || r.CostWeight > 1 {
		bad("cost_weight", "must be between 0 and 1, got %v", r.CostWeight)
	}
	if r.Budget < 0 {
		bad("budget", "must not be negative")
	}
	if r.RateLimitCooldown < 0 {
		bad("rate_limit_cooldown", "must not be negative")
	}
	if r.MaxCooldown < 0 {
		bad("max_cooldown", "must not be negative")
	}
	for _, name := range sortedKeys(r.Models) {
		m := r.Models[name]
		f := fmt.Sprintf("models[%q]", name)
		if name == "" {
			bad("models", "a model name must not be empty")
		}
		if m.MaxAttempts < 0 {
			bad(f+".max_attempts", "must not be negative")
		}
	}
	for _, name := range sortedKeys(r.Deployments) {
		d := r.Deployments[name]
		f := fmt.Sprintf("deployments[%q]", name)
		if p, m, ok := strings.Cut(name, "/"); !ok || p == "" || m == "" {
			bad(f, "the key must be \"provider/model\"")
		}
		if d.Weight < 0 {
			bad(f+".weight", "must not be negative")
		}
		if d.FirstByteTimeout < 0 {
			bad(f+".first_byte_timeout", "must not be negative (0: router.first_byte_timeout)")
		}
		if d.StreamIdleTimeout < 0 {
			bad(f+".stream_idle_timeout", "must not be negative (0: router.stream_idle_timeout)")
		}
		for i, t := range d.Tags {
			if strings.TrimSpace(t) == "" {
				bad(fmt.Sprintf("%s.tags[%d]", f, i), "must not be empty")
			}
		}
	}
	if r.Hedge.Delay < 0 || r.Hedge.MinDelay < 0 || r.Hedge.MaxDelay < 0 {
		bad("hedge", "delays must not be negative")
	}
	if r.Hedge.MinDelay > 0 && r.Hedge.MaxDelay > 0 && r.Hedge.MinDelay > r.Hedge.MaxDelay {
		bad("hedge.min_delay", "must not exceed hedge.max_delay")
	}
	if r.Breaker.FailureRatio > 1 {
		bad("breaker.failure_ratio", "must be at most 1 (negative: off), got %v", r.Breaker.FailureRatio)
	}
	if r.Breaker.Window < 0 {
		bad("breaker.window", "must not be negative")
	}
	if r.Affinity.Entries < 0 {
		bad("affinity.entries", "must not be negative")
	}
	if r.Affinity.TTL < 0 {
		bad("affinity.ttl", "must not be negative")
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
