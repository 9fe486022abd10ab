package gemini

import (
	"context"
	"net/http"

	"github.com/xroute/xroute/providers"
)

// Probe implements providers.Prober: GET the models list (one entry),
// free for any valid key.
func (a *Adapter) Probe(ctx context.Context, _ string) error {
	u := a.base + "/models?pageSize=1"
	_, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			req, err := a.newRequest(ctx, u, nil, false)
			if err != nil {
				return nil, err
			}
			return providers.GetWith(ctx, u, req)
		},
		func(resp *http.Response, raw []byte) error { return upstreamError(a.name, resp, raw, a.key, a.now()) })
	return err
}
