package providers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	anthropicmock "github.com/xroute/xroute/loadtest/mock/anthropic"
	azuremock "github.com/xroute/xroute/loadtest/mock/azure"
	bedrockmock "github.com/xroute/xroute/loadtest/mock/bedrock"
	geminimock "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/builtin"
)

// TestEveryAdapterProbesItsKey: each built-in adapter can check its key
// alone (the router's probe before it disables a pool key), and tells a
// refused key from an accepted one.
func TestEveryAdapterProbesItsKey(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream http.Handler
		cfg      config.Provider // BaseURL is the mock's
		good     string
		model    string
	}{
		{"openai", mock.New(mock.Config{APIKey: "sk-good-key-000000000001"}), config.Provider{Type: "openai"}, "sk-good-key-000000000001", "m"},
		{"anthropic", anthropicmock.New(anthropicmock.Config{Config: mock.Config{APIKey: "sk-ant-good-000000000001"}}), config.Provider{Type: "anthropic"}, "sk-ant-good-000000000001", "claude-sonnet-4-5"},
		{"gemini", geminimock.New(geminimock.Config{Config: mock.Config{APIKey: "AIza-good-000000000001"}}), config.Provider{Type: "gemini"}, "AIza-good-000000000001", "gemini-2.5-flash"},
		{"azure dated", azuremock.New(azuremock.Config{Config: mock.Config{APIKey: "azure-good-000000000001"}}), config.Provider{Type: "azure"}, "azure-good-000000000001", "dep"},
		{"azure v1", azuremock.New(azuremock.Config{Config: mock.Config{APIKey: "azure-good-000000000001"}}), config.Provider{Type: "azure", APIVersion: "v1"}, "azure-good-000000000001", "dep"},
		{"bedrock sigv4", bedrockmock.New(bedrockmock.Config{AccessKeyID: "AKIDGOOD0001", SecretAccessKey: "secret-good-0001", Region: "us-east-1"}),
			config.Provider{Type: "bedrock", Region: "us-east-1"}, "AKIDGOOD0001:secret-good-0001", "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{"bedrock api key", bedrockmock.New(bedrockmock.Config{Config: mock.Config{APIKey: "ABSKgood000000000001"}, Region: "us-east-1"}),
			config.Provider{Type: "bedrock", Region: "us-east-1"}, "ABSKgood000000000001", "anthropic.claude-3-5-haiku-20241022-v1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.upstream)
			t.Cleanup(srv.Close)
			probe := func(key string) error {
				cfg := tc.cfg
				cfg.Name, cfg.BaseURL, cfg.APIKey = "p", srv.URL, key
				if cfg.Type == "openai" {
					cfg.BaseURL += "/v1"
				}
				a, err := builtin.Registry().New(cfg, providers.Deps{Client: srv.Client()})
				if err != nil {
					t.Fatal(err)
				}
				p, ok := a.(providers.Prober)
				if !ok {
					t.Fatalf("%T cannot probe its key", a)
				}
				return p.Probe(context.Background(), tc.model)
			}
			if err := probe(tc.good); err != nil {
				t.Fatalf("the right key: %v", err)
			}
			bad := tc.good[:len(tc.good)-1] + "9"
			var pe *providers.Error
			if err := probe(bad); !errors.As(err, &pe) || !pe.KeyRejected() {
				t.Fatalf("a wrong key: %v", err)
			}
		})
	}
}
