package app

import (
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers/catalog"
)

// TestHoleHalfPricedDeploymentRefusedAtStart: a deployment the catalog
// does not know, given an input price and no output price, used to serve
// its output for nothing. The config is refused at start, naming it.
func TestHoleHalfPricedDeploymentRefusedAtStart(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{
		Providers: []config.Provider{{Name: "mine", Type: "openai"}},
		Models:    []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "mine", Model: "x", InputPrice: "1"}}}},
	}
	if _, err := priced(cfg, cat); err == nil || !strings.Contains(err.Error(), "mine/x") || !strings.Contains(err.Error(), "output_price") {
		t.Fatalf("half-priced unknown deployment: %v", err)
	}
	// The catalog knows openai/gpt-4o-mini: overriding one price keeps the other.
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "openai", Type: "openai"})
	cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "openai", Model: "gpt-4o-mini", InputPrice: "1"}}}}
	own, err := priced(cfg, cat)
	if err != nil || own["openai/gpt-4o-mini"].Output == 0 {
		t.Fatalf("override of a catalog price: %v %+v", err, own)
	}
}

// TestCatalogLookupPricesOrFrees: the lookup behind every deployment,
// provider/model addresses included: the config's prices, else the
// catalog's by the provider's model id or public name, else free only on a
// provider marked free, else nothing (refused at request time).
func TestCatalogLookupPricesOrFrees(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{
		Providers: []config.Provider{{Name: "openai", Type: "openai"}, {Name: "local", Type: "openai", Free: true}, {Name: "mine", Type: "openai"}, {Name: "ollama", Type: "openai", Free: true}},
		Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
			{Provider: "mine", Model: "priced", InputPrice: "1", OutputPrice: "2"},
			{Provider: "mine", Model: "gift", Free: true},
			{Provider: "openai", Model: "gpt-4o", Free: true},
		}}},
	}
	own, err := priced(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	lookup := catalogLookup(cat, own, cfg)
	gpt, _ := cat.Find("openai", "gpt-4o-mini")
	for _, c := range []struct {
		provider, model string
		found, free     bool
	}{
		{"mine", "priced", true, false},
		{"mine", "gift", true, true},
		{"mine", "unknown", false, false},
		{"openai", "gpt-4o-mini", true, false}, // the catalog's price
		{"openai", "gpt-4o", true, true},       // marked free in the config
		{"openai", "no-such-model", false, false},
		{"local", "anything", true, true},
		{"ollama", "llama-3.3-70b", true, true}, // a public name on a free provider
	} {
		m, ok := lookup(c.provider, c.model)
		free := m.Input == 0 && m.Output == 0 && m.CachedInput == 0 && m.CacheWriteInput == 0 && m.WebSearch == 0
		if ok != c.found || (ok && free != c.free) {
			t.Errorf("%s/%s: found %v free %v (%+v)", c.provider, c.model, ok, free, m)
		}
	}
	if m, _ := lookup("openai", "gpt-4o-mini"); m.Input != gpt.Input || m.Output != gpt.Output {
		t.Errorf("catalog price not used: %+v", m)
	}
	llama, _ := cat.Find("ollama", "llama3.3:70b")
	if m, _ := lookup("ollama", "llama-3.3-70b"); m.ID != llama.ID || m.MaxOutput != llama.MaxOutput || m.Context != llama.Context {
		t.Errorf("a free provider's catalog model keeps its id and limits: %+v", m)
	}
}

// TestCatalogPricesAVendorAccountUnderAnotherName: a second account of a
// vendor (an "anthropic" provider named "claude-team" at Anthropic's own
// address) is priced from the vendor's catalog entries, by model id or
// public name; the same type behind another address (a proxy, a
// compatible server) is not: its prices are its own, so it is refused
// until the operator sets them.
func TestCatalogPricesAVendorAccountUnderAnotherName(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Providers: []config.Provider{
		{Name: "claude-team", Type: "anthropic"},
		{Name: "claude-eu", Type: "anthropic", BaseURL: "https://api.anthropic.com/v1"},
		{Name: "claude-proxy", Type: "anthropic", BaseURL: "https://llm-proxy.example.com/v1"},
		{Name: "aws-prod", Type: "bedrock", BaseURL: "https://bedrock-runtime.eu-west-1.amazonaws.com"},
		{Name: "groq-alt", Type: "openai", BaseURL: "https://api.groq.com/openai/v1"},
	}}
	lookup := catalogLookup(cat, nil, cfg)
	sonnet, _ := cat.Find("anthropic", "claude-sonnet-4-5-20250929")
	for _, c := range []struct {
		provider, model string
		want            bool
	}{
		{"claude-team", "claude-sonnet-4-5-20250929", true},
		{"claude-team", "claude-sonnet-4.5", true}, // the public name
		{"claude-eu", "claude-sonnet-4-5-20250929", true},
		{"claude-proxy", "claude-sonnet-4-5-20250929", false},
		{"aws-prod", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", true},
		{"groq-alt", "gpt-4o-mini", false},
		{"claude-team", "no-such-model", false},
	} {
		m, ok := lookup(c.provider, c.model)
		if ok != c.want {
			t.Errorf("%s/%s: priced %v, want %v", c.provider, c.model, ok, c.want)
			continue
		}
		if ok && (m.Input == 0 || m.Output == 0 || m.Provider != c.provider) {
			t.Errorf("%s/%s: entry %+v", c.provider, c.model, m)
		}
		if ok && c.provider == "claude-team" && (m.Input != sonnet.Input || m.Output != sonnet.Output) {
			t.Errorf("%s/%s: price %v/%v, want the vendor's %v/%v", c.provider, c.model, m.Input, m.Output, sonnet.Input, sonnet.Output)
		}
	}
}
