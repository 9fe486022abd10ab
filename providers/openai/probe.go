package openai

import (
	"context"
	"net/http"
	"strings"

	"github.com/xroute/xroute/providers"
)

// Probe implements providers.Prober: GET the models list, which every
// OpenAI-compatible API serves to any valid key, free.
func (a *Adapter) Probe(ctx context.Context, _ string) error {
	u := strings.TrimSuffix(a.url, "/chat/completions") + "/models"
	if a.opts.ModelsURL != "" {
		u = a.opts.ModelsURL
	}
	_, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return nil, err
			}
			a.setHeaders(req.Header, "", providers.ContentJSON)
			return req, nil
		},
		func(resp *http.Response, body []byte) error { return a.upstreamError(resp, body) })
	return err
}
