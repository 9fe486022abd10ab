package providers

import (
	"context"
	"net/http"
)

// Prober is an adapter that can check its credential alone, with the
// cheapest authenticated call its upstream has (listing models), spending
// no tokens. The router probes a pool key the upstream refused before it
// disables the key for good.
type Prober interface {
	// Probe returns nil when the upstream accepts the key, else the
	// upstream's *Error (KeyRejected when the key itself is refused) or a
	// transport error. model is a model the key serves, for upstreams that
	// have no call without one.
	Probe(ctx context.Context, model string) error
}

// GetWith returns a GET of u carrying the headers of from (an adapter's
// authenticated request), without its body headers: the way an adapter
// asks a listing endpoint with the credentials it uses for everything else.
func GetWith(ctx context.Context, u string, from *http.Request) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header = from.Header.Clone()
	req.Header.Del("Content-Type")
	req.Header.Set("Accept", "application/json")
	return req, nil
}
