package billing

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

func TestCostMatchesCatalogAtOneX(t *testing.T) {
	t.Parallel()
	m := catalog.Model{Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000, MaxOutput: 16384, Context: 128000}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		p, c, o := rng.IntN(200000), rng.IntN(200000), rng.IntN(20000)
		u := providers.Usage{PromptTokens: p, CachedTokens: c, CompletionTokens: o}
		for _, bp := range []int{0, OneX} {
			if got, want := Cost(m, u, bp), Nano(m.Cost(p, c, o)); got != want {
				t.Fatalf("Cost(%d,%d,%d) = %d, catalog %d", p, c, o, got, want)
			}
		}
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	// $0.15 / $0.60 per 1M, cached $0.075.
	m := catalog.Model{Input: 150_000, CachedInput: 75_000, Output: 600_000, MaxOutput: 16384, Context: 128000}
	cases := []struct {
		name  string
		usage providers.Usage
		bp    int
		want  Nano
	}{
		{"zero", providers.Usage{}, OneX, 0},
		{"1M in 1M out", providers.Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000}, OneX, 750_000_000},
		{"cached half", providers.Usage{PromptTokens: 1_000_000, CachedTokens: 500_000}, OneX, 112_500_000},
		{"cached capped", providers.Usage{PromptTokens: 10, CachedTokens: 50}, OneX, 750},
		{"one token", providers.Usage{PromptTokens: 1}, OneX, 150},
		{"1.25x", providers.Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000}, 12500, 937_500_000},
		{"0.5x", providers.Usage{PromptTokens: 7}, 5000, 525},
		{"0.0001x", providers.Usage{PromptTokens: 1_000_000}, 1, 15_000},
		{"1/3x rounds up", providers.Usage{CompletionTokens: 1}, 3333, 200}, // 600000 pico × 0.3333 = 199.98 nano
		{"negative counts", providers.Usage{PromptTokens: -5, CompletionTokens: -1}, OneX, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Cost(m, c.usage, c.bp); got != c.want {
				t.Fatalf("Cost = %d, want %d", got, c.want)
			}
		})
	}
	// One rounding, after the multiplier: 1 token at 1500 pico-USD is
	// 1.5 nano; at 0.6x that is 0.9 -> 1 nano (rounding first would give 2).
	cheap := catalog.Model{Input: 1500, CachedInput: 1500, Output: 1500, MaxOutput: 1, Context: 2}
	if got := Cost(cheap, providers.Usage{PromptTokens: 1}, 6000); got != 1 {
		t.Fatalf("Cost at 0.6x = %d, want 1", got)
	}
}

func TestMaxCost(t *testing.T) {
	t.Parallel()
	m := catalog.Model{Input: 1_000_000, Output: 4_000_000, MaxOutput: 1000, Context: 8000} // $1 / $4 per 1M
	cases := []struct {
		name              string
		prompt, maxTokens int
		bp                int
		want              Nano
	}{
		{"explicit max", 1000, 100, OneX, 1000*1000 + 100*4000},
		{"unset uses MaxOutput", 1000, 0, OneX, 1000*1000 + 1000*4000},
		{"above MaxOutput capped", 1000, 50000, OneX, 1000*1000 + 1000*4000},
		{"multiplier", 1000, 100, 20000, 2 * (1000*1000 + 100*4000)},
		{"huge saturates", math.MaxInt, 0, MaxMultiplierBP, math.MaxInt64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MaxCost(m, c.prompt, c.maxTokens, c.bp); got != c.want {
				t.Fatalf("MaxCost = %d, want %d", got, c.want)
			}
		})
	}
	emb := catalog.Model{Input: 20_000, Caps: catalog.Capabilities{Embeddings: true}}
	if got := MaxCost(emb, 1_000_000, 0, OneX); got != 20_000_000 {
		t.Fatalf("embedding MaxCost = %d", got)
	}
}

func FuzzCountMatchesTiktoken(f *testing.F) {
	for _, s := range tokenCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 200 {
			return
		}
		e := testEstimator(t)
		ref := reference(t)
		for _, enc := range []*Encoding{e.o200k, e.cl100k} {
			if got, want := enc.Count(s), len(ref[enc.Name()].EncodeOrdinary(s)); got != want {
				t.Fatalf("%s: Count(%q) = %d, tiktoken %d", enc.Name(), s, got, want)
			}
		}
	})
}

func TestMaxCostNCountsEveryAnswer(t *testing.T) {
	t.Parallel()
	m := catalog.Model{Input: 1_000_000, Output: 2_000_000, MaxOutput: 100}
	one := MaxCost(m, 10, 50, OneX)
	if got := MaxCostN(m, 10, 50, 1, OneX); got != one {
		t.Fatalf("n=1: %d, MaxCost %d", got, one)
	}
	// The prompt is paid once, each answer's output up to its own cap.
	if got, want := MaxCostN(m, 10, 50, 4, OneX), MaxCost(m, 10, 0, OneX)-MaxCost(m, 0, 0, OneX)+4*MaxCost(m, 0, 50, OneX); got != want {
		t.Fatalf("n=4: %d, want %d", got, want)
	}
	if got, want := MaxCostN(m, 0, 1000, 3, OneX), 3*MaxCost(m, 0, 100, OneX); got != want {
		t.Fatalf("capped at the model's output limit per answer: %d, want %d", got, want)
	}
	if got := MaxCostN(m, 0, 1<<30, 1<<62, OneX); got != math.MaxInt64 {
		t.Fatalf("overflow must saturate, got %d", got)
	}
}
