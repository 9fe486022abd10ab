package billing

// What a request costs: exactly, from the provider's usage (Cost), and at
// most, before it is routed (MaxCost), in the catalog's prices times the
// account multiplier, rounded once.

import (
	"math"
	"math/bits"

	"github.com/xroute/xroute/internal/money"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// Cost is the exact price of a finished request from the provider's usage:
// prompt tokens (cached ones included) at Input, except cached tokens at
// CachedInput, completion tokens at Output, times the account multiplier
// (basis points; 0 means 1x). The product is computed exactly in integers
// and rounded once, up, to the next nano-USD; at 1x it equals
// catalog.Model.Cost.
func Cost(m catalog.Model, u providers.Usage, multiplierBP int) Nano {
	p, c, o := uint64(max(u.PromptTokens, 0)), uint64(max(u.CachedTokens, 0)), uint64(max(u.CompletionTokens, 0))
	c = min(c, p)
	w := min(uint64(max(u.CacheWriteTokens, 0)), p-c)
	w1h := min(uint64(max(u.CacheWrite1hTokens, 0)), w)
	return price(multiplierBP,
		[2]uint64{p - c - w, uint64(max(m.Input, 0))},
		[2]uint64{c, uint64(max(m.CachedInput, 0))},
		[2]uint64{w - w1h, uint64(max(m.CacheWriteInput, 0))},
		[2]uint64{w1h, uint64(max(m.CacheWrite1h(), 0))},
		[2]uint64{o, uint64(max(m.Output, 0))},
		// WebSearch is per 1000 searches: a search is 1000 of its units.
		[2]uint64{uint64(max(u.WebSearches, 0)) * 1000, uint64(max(m.WebSearch, 0))})
}

// DefaultMaxOutput is the completion length reserved for a request that
// sets no max_tokens on a model whose output limit is unknown (a
// deployment priced in the config and absent from the catalog). Reserving
// nothing there would let such requests spend credits the account does
// not have; the unused part of the hold is released at settle.
const DefaultMaxOutput = 16384

// MaxCost is what a request may cost at most, the amount to reserve before
// routing: promptTokens at Input or the cache-write price, whichever is
// higher (no cache discount assumed) plus maxTokens
// at Output, where maxTokens 0 (unset) or above the model's MaxOutput means
// MaxOutput, or DefaultMaxOutput when that is unknown. Rounded like Cost.
func MaxCost(m catalog.Model, promptTokens, maxTokens int, multiplierBP int) Nano {
	return MaxCostN(m, promptTokens, maxTokens, 1, multiplierBP)
}

// MaxCostN is MaxCost for a request answered choices times (n, best_of,
// several prompts): the prompt is paid once, each answer's output up to
// its own cap.
func MaxCostN(m catalog.Model, promptTokens, maxTokens, choices int, multiplierBP int) Nano {
	out := max(maxTokens, 0)
	if m.MaxOutput > 0 && (out == 0 || out > m.MaxOutput) {
		out = m.MaxOutput
	}
	if out == 0 {
		out = DefaultMaxOutput
	}
	overflow, total := bits.Mul64(uint64(out), uint64(max(choices, 1)))
	if overflow != 0 {
		return math.MaxInt64
	}
	// The whole prompt may be written to the provider's cache, which may
	// cost more than plain input (Anthropic: 1.25x).
	in := max(m.Input, m.CacheWriteInput, m.CacheWrite1h(), 0)
	return price(multiplierBP,
		[2]uint64{uint64(max(promptTokens, 0)), uint64(in)},
		[2]uint64{total, uint64(max(m.Output, 0))})
}

// price returns ceil(Σ tokens×pico-USD × bp / (1000 × 10000)) in nano-USD,
// exact in 128-bit arithmetic, saturating at math.MaxInt64.
func price(bp int, terms ...[2]uint64) Nano {
	return Nano(money.CeilProducts(normBP(bp), 1000*OneX, terms...))
}
