package main

import (
	"testing"

	"github.com/xroute/xroute/config"
)

// TestDemoModelsArePriced: every model `serve --demo` offers has a price
// (or is marked free): a model without one is refused, so the demo would
// not answer.
func TestDemoModelsArePriced(t *testing.T) {
	cfg := config.Default()
	servers, err := startDemoMocks(&cfg)
	for _, s := range servers {
		defer s.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Models) == 0 {
		t.Fatal("the demo has no models")
	}
	for _, m := range cfg.Models {
		for _, d := range m.Deployments {
			if !d.Priced() && !d.Free {
				t.Errorf("demo model %s: deployment %s/%s has no price", m.Name, d.Provider, d.Model)
			}
		}
	}
}
