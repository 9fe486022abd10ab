package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ErrIssuerUnavailable is an issuer whose signing keys could not be read
// (discovery or JWKS down) while none are cached.
var ErrIssuerUnavailable = errors.New("issuer keys unavailable")

// maxKeyAge is how long a JWKS is used before it is read again even when
// every kid is known, so that keys the issuer retired stop verifying.
const maxKeyAge = time.Hour

// maxDocBytes bounds a discovery document or a JWKS.
const maxDocBytes = 1 << 20

// keySet is one issuer's signing keys: discovered, cached, and read again
// on an unknown kid at most once per interval (a flood of made-up kids
// costs the issuer one fetch per interval, not one per token).
type keySet struct {
	issuer  string
	jwksURL string // "" until discovered (or configured)
	client  *http.Client
	every   time.Duration
	now     func() time.Time

	mu      sync.Mutex
	set     *jose.JSONWebKeySet
	fetched time.Time // the last attempt, successful or not
	fetches int       // for tests and the metric
}

// keys returns the public keys that may have signed a token with kid ("":
// every signing key).
func (k *keySet) keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if k.set != nil {
		found := k.match(kid)
		fresh := now.Sub(k.fetched) < maxKeyAge
		if len(found) > 0 && fresh {
			return found, nil
		}
		if now.Sub(k.fetched) < k.every {
			return found, nil // unknown kid, refreshed too recently: refused
		}
	} else if !k.fetched.IsZero() && now.Sub(k.fetched) < k.every {
		return nil, fmt.Errorf("%w: the last fetch failed less than %s ago", ErrIssuerUnavailable, k.every)
	}
	k.fetched = now
	k.fetches++
	// The fetch outlives a caller that goes away (its result serves the
	// next ones) but not a stuck issuer.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	set, err := k.fetch(fctx)
	if err != nil {
		if k.set != nil {
			return k.match(kid), nil
		}
		return nil, fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
	}
	k.set = set
	return k.match(kid), nil
}

// match picks the public signing keys for kid. Symmetric (oct) keys are
// never used, whatever the JWKS holds: a verifier must not accept an HMAC
// made with a key that is public.
func (k *keySet) match(kid string) []jose.JSONWebKey {
	var cands []jose.JSONWebKey
	if kid != "" {
		cands = k.set.Key(kid)
	} else {
		cands = k.set.Keys
	}
	out := cands[:0:0]
	for _, c := range cands {
		if c.Use == "enc" {
			continue
		}
		pub := c.Public()
		if !pub.Valid() || !pub.IsPublic() {
			continue
		}
		out = append(out, pub)
	}
	return out
}

func (k *keySet) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	if k.jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := k.getJSON(ctx, strings.TrimSuffix(k.issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		if doc.Issuer != k.issuer {
			return nil, fmt.Errorf("discovery: the document names issuer %q, not %q", doc.Issuer, k.issuer)
		}
		if doc.JWKSURI == "" {
			return nil, errors.New("discovery: no jwks_uri")
		}
		k.jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := k.getJSON(ctx, k.jwksURL, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return &set, nil
}

func (k *keySet) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocBytes))
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocBytes)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
