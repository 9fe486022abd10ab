package bedrock

import (
	"encoding/json"

	"github.com/xroute/xroute/providers/catalog"
)

// Bedrock caches a prompt (Claude and Nova models) only up to the cache
// points a Converse request marks. xroute translates every request it
// sends to Bedrock, so no caller's own mark can get there: the adapter
// marks, as the Anthropic adapter does (providers/anthropic
// AddBreakpoints), within the limit of four: after the tools, after the
// system prompt, after the last stable turn (before the newest user turn)
// and after the stable turn of the previous request, each only where the
// prefix up to it reaches the model's minimum cacheable length.

// MinCacheTokens implements providers.BreakpointCacher: Claude models cache
// from 1024 tokens (Haiku 2048); others are not marked.
func (a *Adapter) MinCacheTokens(model string) int { return catalog.DefaultMinCacheTokens(model) }

const maxCachePoints = 4

var defaultCachePoint = &cachePoint{Type: "default"}

// addCachePoints marks r for a prompt cache from minTokens tokens (4 bytes
// of JSON per token, as estimated for Anthropic).
func addCachePoints(r *converseRequest, minTokens int) {
	if minTokens <= 0 {
		return
	}
	size := 0
	long := func(v any) bool {
		b, _ := json.Marshal(v)
		size += len(b)
		return size/4 >= minTokens
	}
	used := 0
	if tc := r.ToolConfig; tc != nil && len(tc.Tools) > 0 && long(tc.Tools) {
		tc.Tools = append(tc.Tools, tool{CachePoint: defaultCachePoint})
		used++
	}
	if len(r.System) > 0 && long(r.System) {
		r.System = append(r.System, systemBlock{CachePoint: defaultCachePoint})
		used++
	}
	n := len(r.Messages)
	var stable []int
	if n >= 2 && r.Messages[n-1].Role == "user" {
		if n >= 4 && r.Messages[n-3].Role == "user" {
			stable = append(stable, n-4)
		}
		stable = append(stable, n-2)
	}
	for used+len(stable) > maxCachePoints && len(stable) > 0 {
		stable = stable[1:]
	}
	next := 0
	for _, i := range stable {
		for ; next <= i; next++ {
			b, _ := json.Marshal(r.Messages[next])
			size += len(b)
		}
		if size/4 < minTokens || len(r.Messages[i].Content) == 0 {
			continue
		}
		// The caller's turns are shared with the decoded pivot's other
		// attempts: the marked content is a copy.
		m := &r.Messages[i]
		m.Content = append(m.Content[:len(m.Content):len(m.Content)], contentBlock{CachePoint: defaultCachePoint})
	}
}
