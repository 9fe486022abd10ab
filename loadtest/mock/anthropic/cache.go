package anthropic

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

const (
	cacheEntries   = 1 << 14 // prefixes the LRU keeps
	cacheLookback  = 20      // blocks before a breakpoint checked for a hit, as the API does
	maxBreakpoints = 4
	ttl5m          = mock.CacheTTL5m
	ttl1h          = mock.CacheTTL1h
)

// bp is the breakpoint TTL of a block's cache_control: 0 without one.
func (c *cacheControl) bp() time.Duration {
	if c == nil {
		return 0
	}
	return c.duration()
}

func (c *cacheControl) duration() time.Duration {
	if c != nil && c.TTL == "1h" {
		return ttl1h
	}
	return ttl5m
}

// check validates a cache_control object at field at.
func (c *cacheControl) check(at string) *apiError {
	if c == nil {
		return nil
	}
	if c.Type != "ephemeral" {
		return invalid(at + ".cache_control.type: Input tag '" + c.Type + "' found using 'type' does not match any of the expected tags: 'ephemeral'")
	}
	switch c.TTL {
	case "", "5m", "1h":
		return nil
	}
	return invalid(at + ".cache_control.ephemeral.ttl: Input should be '5m' or '1h'")
}

// checkBreakpoints applies the API's limits: at most 4 breakpoints, and
// no 1h breakpoint after a 5m one.
func checkBreakpoints(p *mock.Prefix) *apiError {
	bps := p.Breakpoints()
	if len(bps) > maxBreakpoints {
		return invalid("A maximum of " + strconv.Itoa(maxBreakpoints) + " blocks with cache_control may be provided. Found " + strconv.Itoa(len(bps)) + ".")
	}
	seen5m := false
	for _, ttl := range bps {
		if ttl == ttl5m {
			seen5m = true
		} else if seen5m {
			return invalid("cache_control: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
		}
	}
	return nil
}

// canonJSON is raw without its cache_control member, with sorted keys.
func canonJSON(raw json.RawMessage) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, "cache_control")
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return b
}

// callerKey is the key a request authenticated with (x-api-key, else the
// bearer token): the prompt cache is per key, as the API's is per
// workspace (keys of one workspace share it; the mock has no workspaces).
func callerKey(r *http.Request) string {
	if k := r.Header.Get("x-api-key"); k != "" {
		return k
	}
	b, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(b)
}
