package bedrock

import (
	"context"
	"errors"
	"net/http"

	"github.com/xroute/xroute/providers"
)

// probeBody is a Converse request Bedrock refuses as invalid (no
// messages): it costs nothing, and AWS checks the credentials first, so a
// ValidationException means they were accepted.
var probeBody = []byte(`{"messages":[]}`)

// Probe implements providers.Prober. The runtime API has no listing call,
// so the probe is a Converse request to model that Bedrock must refuse
// after authenticating it.
func (a *Adapter) Probe(ctx context.Context, model string) error {
	_, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) { return a.newRequest(ctx, model, false, probeBody) },
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Status == http.StatusBadRequest && !pe.KeyRejected() {
		return nil
	}
	return err
}
