package httpapi

import (
	"testing"
	"time"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/keys"
)

func TestNarrowPolicy(t *testing.T) {
	t.Parallel()
	model := respcache.Policy{Enabled: true, TTL: time.Hour, MaxEntryBytes: 1000, Scope: respcache.ScopeGlobal}
	for _, tc := range []struct {
		name   string
		meta   map[string]string
		want   respcache.Policy
		wantOn bool
	}{
		{"no policy keeps the model's", nil, model, true},
		{"off", map[string]string{"cache": "off"}, model, false},
		{"shorter ttl and entry", map[string]string{"cache_ttl": "5m", "cache_max_entry_bytes": "100"},
			respcache.Policy{Enabled: true, TTL: 5 * time.Minute, MaxEntryBytes: 100, Scope: respcache.ScopeGlobal}, true},
		{"never longer nor larger", map[string]string{"cache": "on", "cache_ttl": "48h", "cache_max_entry_bytes": "5000"}, model, true},
		{"an unreadable entry is ignored", map[string]string{"cache_ttl": "soon"}, model, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, on := narrowPolicy(model, &keys.Key{Record: keys.Record{Metadata: tc.meta}})
			if on != tc.wantOn || (on && got != tc.want) {
				t.Fatalf("narrowPolicy = %+v, %v; want %+v, %v", got, on, tc.want, tc.wantOn)
			}
		})
	}
}
