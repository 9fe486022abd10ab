package exchange_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/store"
)

// TestRegistryActive: what the exchange trusts is the config file's
// issuers plus every stored one that still validates and does not claim
// a config issuer's iss (the file wins); the others are reported.
func TestRegistryActive(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	cfgIss := config.Issuer{Issuer: "https://config.example", Audiences: []string{"xroute"}, Rules: rules()}
	changes := 0
	reg := exchange.NewRegistry([]config.Issuer{cfgIss}, f.db, f.audit, f.clock.now, func() { changes++ })

	api := config.Issuer{Issuer: f.is.URL, Audiences: []string{"xroute"}, Rules: rules()}
	e, err := reg.Create(ctx, "cli", api)
	if err != nil || changes != 1 {
		t.Fatalf("create: %v (changes %d)", err, changes)
	}
	if _, err := reg.Create(ctx, "cli", cfgIss); !errors.Is(err, exchange.ErrShadowsConfig) {
		t.Fatalf("create a config iss: %v", err)
	}
	if err := reg.Delete(ctx, "cli", exchange.ConfigIssuerID(cfgIss.Issuer)); !errors.Is(err, exchange.ErrConfigIssuer) {
		t.Fatalf("delete a config issuer: %v", err)
	}
	// Rows written behind the registry's back: one that the file now
	// shadows, one that no longer validates.
	now := time.Now()
	for id, def := range map[string]string{
		"iss_shadow": `{"issuer":"https://config.example","audiences":["x"],"rules":[{"name":"r","claims":{"sub":"*"},"account":"a"}]}`,
		"iss_broken": `{"issuer":"https://broken.example","audiences":[],"rules":[]}`,
	} {
		iss := "https://shadow-row.example"
		if id == "iss_broken" {
			iss = "https://broken.example"
		}
		if err := f.db.CreateIssuer(ctx, store.StoredIssuer{ID: id, Issuer: iss, Definition: []byte(def), CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	list, skipped, err := reg.Active(ctx)
	if err != nil || len(list) != 2 || list[0].Issuer != cfgIss.Issuer || list[1].Issuer != api.Issuer || len(skipped) != 2 {
		t.Fatalf("active: %v, skipped %v, %v", list, skipped, err)
	}
	if _, err := reg.List(ctx); err == nil {
		t.Fatal("the list hides a stored issuer that no longer validates")
	}

	// A merge patch changes the fields it names and keeps the others.
	got, err := reg.Patch(ctx, "cli", e.ID, []byte(`{"audiences":["a","b"],"clock_skew":"1m"}`))
	if err != nil || len(got.Issuer.Audiences) != 2 || got.Issuer.ClockSkew != time.Minute || len(got.Issuer.Rules) != len(rules()) {
		t.Fatalf("patch: %+v, %v", got.Issuer, err)
	}
	if _, err := reg.Patch(ctx, "cli", e.ID, []byte(`{"rules":null}`)); err == nil {
		t.Fatal("a patch that removes every rule was accepted")
	}
}
