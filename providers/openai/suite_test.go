package openai

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

const mockKey = "sk-mock-key-0123456789"

// suiteAgainstMock is the shared adapter suite (providertest) against the
// OpenAI mock upstream.
func suiteAgainstMock(t *testing.T, cfg mock.Config) providertest.Suite {
	t.Helper()
	cfg.APIKey = mockKey
	srv := httptest.NewServer(mock.New(cfg))
	t.Cleanup(srv.Close)
	p, err := New(config.Provider{Name: "up", Type: "openai", BaseURL: srv.URL + "/v1", APIKey: mockKey}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return providertest.Suite{Adapter: p, NewCall: func(t *testing.T, body string) *providers.Call { return call(t, body, "gpt-4o") }, Model: "gpt-4o", Provider: "up", Secret: mockKey}
}

func TestUpstreamErrorsAgainstMock(t *testing.T) {
	t.Parallel()
	s := suiteAgainstMock(t, mock.Config{RetryAfter: 3 * time.Second})
	s.Errors(t, []providertest.Failure{
		{Name: "400", Content: "hi #mock:status=400", Status: 400, Type: "invalid_request_error"},
		{Name: "401", Content: "hi #mock:status=401", Status: 401, Type: "invalid_request_error", Code: "invalid_api_key"},
		{Name: "404", Content: "hi #mock:status=404", Status: 404, Type: "invalid_request_error"},
		{Name: "429", Content: "hi #mock:status=429", Status: 429, Type: "requests", Code: "rate_limit_exceeded", Retryable: true, RetryAfter: 3 * time.Second},
		{Name: "429 retry-after directive", Content: "hi #mock:status=429;retry-after=1.5", Status: 429, Type: "requests", Code: "rate_limit_exceeded", Retryable: true, RetryAfter: 1500 * time.Millisecond},
		{Name: "quota", Content: "hi #mock:quota", Status: 429, Type: "insufficient_quota", Code: "insufficient_quota", Retryable: true, RetryAfter: 3 * time.Second},
		{Name: "500", Content: "hi #mock:status=500", Status: 500, Type: "server_error", Retryable: true},
		{Name: "503", Content: "hi #mock:status=503", Status: 503, Type: "server_error", Retryable: true},
	})
}

func TestStreamBreaksAgainstMock(t *testing.T) {
	t.Parallel()
	suiteAgainstMock(t, mock.Config{}).Breaks(t, []providertest.Break{
		{Name: "stream-error", Content: "hi #mock:stream-error", Retryable: true},
		{Name: "reset", Content: "hi #mock:reset", Retryable: true},
	})
}

func TestTimeoutBeforeHeadersAgainstMock(t *testing.T) {
	t.Parallel()
	s := suiteAgainstMock(t, mock.Config{})
	srv := httptest.NewServer(mock.New(mock.Config{Latency: 2 * time.Second}))
	t.Cleanup(srv.Close)
	slow, err := New(config.Provider{Name: "slow", BaseURL: srv.URL + "/v1", Timeout: 50 * time.Millisecond}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	s.TimeoutBeforeHeaders(t, slow, "hi")
}

func TestCloseMidStreamAgainstMock(t *testing.T) {
	t.Parallel()
	m := mock.New(mock.Config{TokensPerSec: 200, CompletionTokens: 400})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	p, err := New(config.Provider{Name: "up", BaseURL: srv.URL + "/v1"}, providers.Deps{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	s := providertest.Suite{Adapter: p, NewCall: func(t *testing.T, body string) *providers.Call { return call(t, body, "gpt-4o") }, Model: "gpt-4o"}
	s.CloseMidStream(t, func() int64 { return m.Stats().Canceled })
}
