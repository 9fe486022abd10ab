package router

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xroute/xroute/config"
)

// The routing section as an operator writes it (config.Routing lives in
// config/routing.go; it is tested here, next to its only reader).
const routingYAML = `
default_strategy: cost
cost_weight: 0.7
budget: 20s
models:
  gpt-4o: {strategy: latency, hedge: true, max_attempts: 4, affinity: false, cache_breakpoints: false}
deployments:
  "openai/gpt-4o": {weight: 2, priority: 1, tags: [us]}
  "azure/gpt-4o": {tags: [eu]}
hedge: {delay: 0s, min_delay: 20ms, max_delay: 1s}
breaker: {failure_ratio: 0.4, min_requests: 10, window: 30s, probes: 2}
affinity: {entries: 500, ttl: 1h}
`

func TestRoutingConfigDecodes(t *testing.T) {
	var rt config.Routing
	dec := yaml.NewDecoder(bytes.NewReader([]byte(routingYAML)))
	dec.KnownFields(true)
	if err := dec.Decode(&rt); err != nil {
		t.Fatal(err)
	}
	if err := rt.Validate(); err != nil {
		t.Fatal(err)
	}
	m := rt.Models["gpt-4o"]
	d := rt.Deployments["openai/gpt-4o"]
	if rt.DefaultStrategy != "cost" || m.Strategy != "latency" || m.Hedge == nil || !*m.Hedge || m.MaxAttempts != 4 ||
		m.Affinity == nil || *m.Affinity || m.CacheBreakpoints == nil || *m.CacheBreakpoints || rt.Affinity.Entries != 500 || rt.Affinity.TTL != time.Hour ||
		d.Weight != 2 || d.Priority == nil || *d.Priority != 1 || d.Tags[0] != "us" || rt.Breaker.Probes != 2 || rt.Hedge.MinDelay != 20*time.Millisecond {
		t.Fatalf("%+v", rt)
	}
	def := config.Routing{}.WithDefaults()
	if def.DefaultStrategy != "priority" || def.CostWeight != 0.5 || def.Breaker.FailureRatio != 0.5 || def.Hedge.MaxDelay != 2*time.Second ||
		def.Affinity.Entries != 100_000 || def.Affinity.TTL != 5*time.Minute {
		t.Fatalf("defaults: %+v", def)
	}
}

func TestRoutingConfigValidate(t *testing.T) {
	bad := config.Routing{
		CostWeight:  2,
		Budget:      -1,
		Models:      map[string]config.ModelRouting{"m": {MaxAttempts: -1}},
		Deployments: map[string]config.DeploymentRouting{"nope": {Weight: -1, Tags: []string{" "}}},
		Hedge:       config.Hedge{MinDelay: time.Second, MaxDelay: time.Millisecond},
		Breaker:     config.Breaker{FailureRatio: 1.5},
		Affinity:    config.Affinity{Entries: -1, TTL: -1},
	}
	err := bad.Validate()
	for _, field := range []string{"routing.cost_weight", "routing.budget", `routing.models["m"].max_attempts`, `routing.deployments["nope"]:`,
		`routing.deployments["nope"].weight`, `routing.deployments["nope"].tags[0]`, "routing.hedge.min_delay", "routing.breaker.failure_ratio",
		"routing.affinity.entries", "routing.affinity.ttl"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error should name %s: %v", field, err)
		}
	}
}
