package app

import (
	"fmt"
	"os"
	"sort"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers/catalog"
	"github.com/xroute/xroute/router"
)

// loadCatalog returns the embedded catalog with the config's overrides.
func loadCatalog(cfg config.Catalog) (*catalog.Catalog, error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if cfg.File != "" {
		data, err := os.ReadFile(cfg.File)
		if err != nil {
			return nil, fmt.Errorf("catalog.file: %w", err)
		}
		over, err := catalog.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("catalog.file %s: %w", cfg.File, err)
		}
		if err := cat.Merge(over.Models()); err != nil {
			return nil, fmt.Errorf("catalog.file %s: %w", cfg.File, err)
		}
	}
	return cat, nil
}

// withCatalog adds the providers enabled by their env variables and, for
// every catalog model some configured provider serves, a public model with
// those deployments, cheapest first. What the config names itself wins.
// Keyless local servers (Ollama, vLLM...) get catalog models only when the
// config file names them: their model list is the operator's, not ours.
func withCatalog(cfg config.Config, cat *catalog.Catalog, getenv func(string) string) config.Config {
	configured := map[string]bool{}
	fromFile := map[string]bool{}
	for _, p := range cfg.Providers {
		configured[p.Name], fromFile[p.Name] = true, true
	}
	if cfg.Catalog.FromEnv {
		for _, p := range catalog.FromEnv(getenv) {
			if !configured[p.Name] {
				cfg.Providers = append(cfg.Providers, p)
				configured[p.Name] = true
			}
		}
	}
	named := map[string]bool{}
	for _, m := range cfg.Models {
		named[m.Name] = true
	}
	for _, name := range cat.Names() {
		if named[name] {
			continue
		}
		var deps []catalog.Model
		for _, d := range cat.Deployments(name) {
			if !configured[d.Provider] {
				continue
			}
			if preset, ok := catalog.PresetByName(d.Provider); ok && preset.Keyless && !fromFile[d.Provider] {
				continue
			}
			deps = append(deps, d)
		}
		if len(deps) == 0 {
			continue
		}
		sort.SliceStable(deps, func(i, j int) bool { return deps[i].Input+deps[i].Output < deps[j].Input+deps[j].Output })
		m := config.Model{Name: name, OwnedBy: deps[0].Provider}
		for _, d := range deps {
			m.Deployments = append(m.Deployments, config.Deployment{Provider: d.Provider, Model: d.ID})
		}
		cfg.Models = append(cfg.Models, m)
	}
	return cfg
}

// catalogLookup finds a deployment's entry by the provider's model id, or
// by the public name on that provider.
func catalogLookup(cat *catalog.Catalog) router.CatalogLookup {
	return func(provider, model string) (catalog.Model, bool) {
		if m, ok := cat.Find(provider, model); ok {
			return m, true
		}
		for _, m := range cat.ByProvider(provider) {
			if m.Name == model {
				return m, true
			}
		}
		return catalog.Model{}, false
	}
}
