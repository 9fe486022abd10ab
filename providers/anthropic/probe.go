package anthropic

import (
	"context"
	"net/http"
	"strings"

	"github.com/xroute/xroute/providers"
)

// Probe implements providers.Prober: GET /v1/models?limit=1, free for any
// valid key.
func (a *Adapter) Probe(ctx context.Context, _ string) error {
	u := strings.TrimSuffix(a.url, "/messages") + "/models?limit=1"
	_, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			req, err := a.newRequest(ctx, nil, false)
			if err != nil {
				return nil, err
			}
			return providers.GetWith(ctx, u, req)
		},
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	return err
}
