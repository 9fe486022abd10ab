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

// priced returns the config's own deployment prices, keyed by
// provider/model: they override the catalog, and give deployments it does
// not know (custom servers, mocks) a price. An unknown deployment is
// assumed capable of everything: only the operator knows what it serves.
func priced(cfg config.Config, cat *catalog.Catalog) (map[string]catalog.Model, error) {
	out := map[string]catalog.Model{}
	for _, m := range cfg.Models {
		for _, d := range m.Deployments {
			if d.InputPrice == "" && d.OutputPrice == "" && d.CachedInputPrice == "" && d.CacheWriteInputPrice == "" {
				continue
			}
			e, ok := cat.Find(d.Provider, d.Model)
			if !ok {
				e = catalog.Model{Name: m.Name, Provider: d.Provider, ID: d.Model, Context: 1 << 30,
					Caps: catalog.Capabilities{Tools: true, Vision: true, JSONSchema: true, StreamingUsage: true, Embeddings: true}}
			}
			var err error
			for _, p := range []struct {
				raw string
				dst *catalog.Price
			}{{d.InputPrice, &e.Input}, {d.OutputPrice, &e.Output}, {d.CachedInputPrice, &e.CachedInput}, {d.CacheWriteInputPrice, &e.CacheWriteInput}} {
				if p.raw == "" {
					continue
				}
				if *p.dst, err = catalog.ParsePrice(p.raw); err != nil {
					return nil, fmt.Errorf("model %s deployment %s/%s: %w", m.Name, d.Provider, d.Model, err)
				}
			}
			if d.CachedInputPrice == "" && !ok {
				e.CachedInput = e.Input
			}
			if d.CacheWriteInputPrice == "" && !ok {
				e.CacheWriteInput = e.Input
			}
			if !ok {
				// Server-side searches are billed by the provider: at its
				// list price unless the catalog knows better.
				e.WebSearch = catalog.DefaultWebSearch(providerType(cfg, d.Provider))
			}
			out[d.Provider+"/"+d.Model] = e
		}
	}
	return out, nil
}

// providerType is the wire format of a configured provider.
func providerType(cfg config.Config, name string) string {
	for _, p := range cfg.Providers {
		if p.Name == name {
			return p.Type
		}
	}
	return ""
}

// catalogLookup finds a deployment's entry: the config's own prices first,
// then the catalog by the provider's model id, then by the public name on
// that provider.
func catalogLookup(cat *catalog.Catalog, own map[string]catalog.Model) router.CatalogLookup {
	return func(provider, model string) (catalog.Model, bool) {
		if m, ok := own[provider+"/"+model]; ok {
			return m, true
		}
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
