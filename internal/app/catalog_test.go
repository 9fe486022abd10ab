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
	lookup := catalogLookup(cat, own, freeProviders(cfg))
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
