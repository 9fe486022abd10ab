package app

import (
	"fmt"
	"os"
	"sort"

	"go.uber.org/zap"

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
// A deployment marked free (or served by a provider marked free) gets
// zero prices; one the catalog does not know must state both its input
// and its output price, so that no part of an answer is free by omission.
func priced(cfg config.Config, cat *catalog.Catalog) (map[string]catalog.Model, error) {
	free := freeProviders(cfg)
	out := map[string]catalog.Model{}
	for _, m := range cfg.Models {
		for _, d := range m.Deployments {
			switch {
			case d.Priced():
			case d.Free || free[d.Provider]:
				out[d.Provider+"/"+d.Model] = freeEntry(cat, m.Name, d.Provider, d.Model)
				continue
			default:
				continue // the catalog's price, or none: refused when asked
			}
			e, ok := cat.Find(d.Provider, d.Model)
			if !ok {
				if d.InputPrice == "" || d.OutputPrice == "" {
					return nil, fmt.Errorf("model %s deployment %s/%s: the catalog does not price it: set both input_price and output_price (or free: true)", m.Name, d.Provider, d.Model)
				}
				e = unknownEntry(m.Name, d.Provider, d.Model)
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

// unknownEntry is the catalog entry of a deployment the catalog does not
// know, before its prices are set.
func unknownEntry(name, provider, model string) catalog.Model {
	return catalog.Model{Name: name, Provider: provider, ID: model, Context: 1 << 30,
		Caps: catalog.Capabilities{Tools: true, Vision: true, JSONSchema: true, StreamingUsage: true, Embeddings: true}}
}

// freeEntry is the entry of a deployment the operator marked free: the
// catalog's limits and capabilities when it knows the model, every price
// zero.
func freeEntry(cat *catalog.Catalog, name, provider, model string) catalog.Model {
	e, ok := cat.Find(provider, model)
	if !ok {
		e = unknownEntry(name, provider, model)
	}
	e.Input, e.CachedInput, e.CacheWriteInput, e.CacheWrite1hInput, e.Output, e.WebSearch = 0, 0, 0, 0, 0, 0
	return e
}

// freeProviders are the providers the config marks free.
func freeProviders(cfg config.Config) map[string]bool {
	free := map[string]bool{}
	for _, p := range cfg.Providers {
		if p.Free {
			free[p.Name] = true
		}
	}
	return free
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
// that provider; on a provider marked free, that entry with zero prices
// (or an unknown model's, free). Not found: the deployment has no price,
// and requests to it are refused.
func catalogLookup(cat *catalog.Catalog, own map[string]catalog.Model, free map[string]bool) router.CatalogLookup {
	return func(provider, model string) (catalog.Model, bool) {
		if m, ok := own[provider+"/"+model]; ok {
			return m, true
		}
		id := model
		if _, ok := cat.Find(provider, model); !ok {
			for _, m := range cat.ByProvider(provider) {
				if m.Name == model {
					id = m.ID
					break
				}
			}
		}
		if free[provider] {
			return freeEntry(cat, model, provider, id), true
		}
		return cat.Find(provider, id)
	}
}

// warnUnpriced logs, at start, every configured deployment without a price:
// requests to its model are refused until it gets one (or is marked free).
func warnUnpriced(rt *router.Router, log *zap.Logger) {
	for _, m := range rt.Models() {
		for _, d := range m.Deployments {
			if d.Info == nil {
				log.Warn("deployment has no price: requests to its model are refused (model_not_priced) until it gets input_price and output_price, or free: true",
					zap.String("model", m.Name), zap.String("deployment", d.Name()))
			}
		}
	}
}
