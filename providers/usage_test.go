package providers

import (
	"errors"
	"testing"

	"github.com/tidwall/gjson"
)

// TestHoleUpstreamUsageChecked: an upstream's usage was stored as sent:
// prompt_tokens -1e9 went into the record (and panicked a Prometheus
// counter), 1e12 drained the account, "lots" read as 0. Check refuses
// each; UsageCount reads what is not an integer as a refused count.
func TestHoleUpstreamUsageChecked(t *testing.T) {
	count := func(raw string) int { return UsageCount(gjson.Get(`{"v":`+raw+`}`, "v")) }
	for _, c := range []struct {
		name string
		u    Usage
		ok   bool
	}{
		{"sane", Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CachedTokens: 4, ReasoningTokens: 2}, true},
		{"zeros", Usage{}, true},
		{"cache writes within the prompt", Usage{PromptTokens: 10, CachedTokens: 3, CacheWriteTokens: 7, CacheWrite1hTokens: 7}, true},
		{"negative prompt", Usage{PromptTokens: count("-1e9"), CompletionTokens: 5}, false},
		{"negative completion", Usage{PromptTokens: 5, CompletionTokens: -1}, false},
		{"absurd prompt", Usage{PromptTokens: count("1000000000000"), CompletionTokens: 5}, false},
		{"just above the bound", Usage{PromptTokens: MaxUsageTokens + 1}, false},
		{"a string", Usage{PromptTokens: count(`"lots"`), CompletionTokens: 5}, false},
		{"a numeric string", Usage{PromptTokens: count(`"12"`)}, false},
		{"a fraction", Usage{PromptTokens: count("12.5")}, false},
		{"an object", Usage{CompletionTokens: count(`{"n":1}`)}, false},
		{"cached above the prompt", Usage{PromptTokens: 10, CachedTokens: 11}, false},
		{"1h writes above the writes", Usage{PromptTokens: 10, CacheWriteTokens: 2, CacheWrite1hTokens: 3}, false},
		{"reasoning above the completion", Usage{PromptTokens: 10, CompletionTokens: 2, ReasoningTokens: 3}, false},
		{"negative web searches", Usage{PromptTokens: 10, WebSearches: -1}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.u.Check()
			var ue *UsageError
			if (err == nil) != c.ok || (err != nil && !errors.As(err, &ue)) {
				t.Fatalf("Check(%+v) = %v", c.u, err)
			}
		})
	}
	for raw, want := range map[string]int{"12": 12, "12.0": 12, "null": 0, "0": 0} {
		if got := count(raw); got != want {
			t.Errorf("UsageCount(%s) = %d, want %d", raw, got, want)
		}
	}
	if got := UsageCount(gjson.Result{}); got != 0 {
		t.Errorf("an absent count = %d", got)
	}
}
