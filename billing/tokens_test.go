package billing

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// The vocabularies take a while to load; every test shares one Estimator.
var (
	estOnce sync.Once
	est     *Estimator
	estErr  error
)

func testEstimator(t testing.TB) *Estimator {
	t.Helper()
	estOnce.Do(func() { est, estErr = NewEstimator() })
	if estErr != nil {
		t.Fatal(estErr)
	}
	return est
}

// tiktoken-go is the reference the fast counter is checked against.
var (
	refOnce sync.Once
	refEnc  map[string]*tiktoken.Tiktoken
	refErr  error
)

func reference(t testing.TB) map[string]*tiktoken.Tiktoken {
	t.Helper()
	refOnce.Do(func() {
		tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
		refEnc = map[string]*tiktoken.Tiktoken{}
		for _, name := range []string{"o200k_base", "cl100k_base"} {
			enc, err := tiktoken.GetEncoding(name)
			if err != nil {
				refErr = err
				return
			}
			refEnc[name] = enc
		}
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refEnc
}

var tokenCorpus = []string{
	"",
	"hello",
	"Hello, world! How are you today?",
	"I'm sure you're right; they've said we'll go, DON'T you think? It'S 'll 're 'VE 'd 'm",
	"'s at start, ' alone, '' twice, 'x",
	"1234567890 12 3 4567 3.14159 -42 1,000,000",
	"  leading spaces and trailing   ",
	"tabs\tand\t\tmore\t",
	"line one\nline two\r\nline three\n\n\nend\n",
	"  \n  \n\t \r\n x",
	"trailing newline spaces \n   ",
	"func main() {\n\tfmt.Println(\"hi\") // comment\n}\n",
	`{"key": "value", "n": [1, 2, 3], "nested": {"a": null}}`,
	"https://example.com/path/to/thing?x=1&y=two#frag",
	"a/b//c///\n/",
	"!!!???...;;;\n\n",
	"HTTPServer XMLHttpRequest camelCase snake_case kebab-case CONSTANT_CASE",
	"héllo wörld naïve café résumé Ångström",
	"e\u0301 decomposed a\u0308b\u0301c",
	"你好，世界！这是一个测试。",
	"日本語のテキストとカタカナ、ひらがな。",
	"한국어 텍스트입니다",
	"Привет, мир! Как дела?",
	"مرحبا بالعالم",
	"नमस्ते दुनिया, यह एक परीक्षण है",
	"emoji 👍🏽 🎉🎉 👨‍👩‍👧‍👦 ❤️",
	"ǅemal ǈ ǋ title-case letters, modifier ʰʲ ˈstress",
	"nbsp\u00a0here em\u2003space nel\u0085x ideographic\u3000space",
	"Roman Ⅻ numbers ², ³, ¼ and ٣٤٥ arabic-indic",
	"<|endoftext|> special tokens are plain text here <|fim_prefix|>",
	"mixed123abc456DEF789 abc123 ABC123def",
	"ªº µ ß ÿ Ð þ",
	"a\u0300\u0301\u0302 stacked marks \u0300 leading mark",
	" \u0301x mark after space",
	strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20),
	"ALLCAPS WORDS FOLLOWED BY lowercase AND MixedCase'S Contractions'LL",
}

func TestCountMatchesTiktoken(t *testing.T) {
	e := testEstimator(t)
	ref := reference(t)
	for _, enc := range []*Encoding{e.o200k, e.cl100k} {
		for _, s := range tokenCorpus {
			want := len(ref[enc.Name()].EncodeOrdinary(s))
			if got := enc.Count(s); got != want {
				t.Errorf("%s: Count(%q) = %d, tiktoken %d", enc.Name(), s, got, want)
			}
		}
	}
}

// TestCountMatchesTiktokenRandom feeds random strings built from the runes
// that decide the split rules.
func TestCountMatchesTiktokenRandom(t *testing.T) {
	e := testEstimator(t)
	ref := reference(t)
	alphabet := []rune("aZ9 \t\n\r'sStTlLdD.,!/-_:é\u0301\u00a0\u3000你ǅʰ²👍Ω\u0085ЖжA")
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1500
	if testing.Short() {
		n = 200
	}
	for range n {
		b := make([]rune, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		s := string(b)
		for _, enc := range []*Encoding{e.o200k, e.cl100k} {
			want := len(ref[enc.Name()].EncodeOrdinary(s))
			if got := enc.Count(s); got != want {
				t.Fatalf("%s: Count(%q) = %d, tiktoken %d", enc.Name(), s, got, want)
			}
		}
	}
}

func TestCountInvalidUTF8(t *testing.T) {
	e := testEstimator(t)
	ref := reference(t)
	s := "ok \xff\xfe bad \xc3 bytes"
	want := len(ref["o200k_base"].EncodeOrdinary(s))
	if got := e.o200k.Count(s); got != want {
		t.Fatalf("Count = %d, tiktoken %d", got, want)
	}
}

func TestCountLongPieceIsLinear(t *testing.T) {
	e := testEstimator(t)
	s := strings.Repeat("a", 1<<16) // one 64 KiB pre-token
	n := e.o200k.Count(s)
	if n < (1<<16)/maxPiece || n > 1<<16 {
		t.Fatalf("Count = %d", n)
	}
}

func TestEncodingForModel(t *testing.T) {
	e := testEstimator(t)
	for _, c := range []struct{ model, want string }{
		{"gpt-4o", "o200k_base"}, {"gpt-4o-mini", "o200k_base"}, {"openai/gpt-4.1-nano", "o200k_base"},
		{"o3-mini", "o200k_base"}, {"gpt-5", "o200k_base"}, {"GPT-4O", "o200k_base"},
		{"gpt-4", "cl100k_base"}, {"gpt-3.5-turbo", "cl100k_base"}, {"claude-sonnet-4", "cl100k_base"},
		{"llama-3.3-70b", "cl100k_base"}, {"", "cl100k_base"},
	} {
		if got := e.Encoding(c.model).Name(); got != c.want {
			t.Errorf("Encoding(%q) = %s, want %s", c.model, got, c.want)
		}
	}
}

func TestPromptTokens(t *testing.T) {
	e := testEstimator(t)
	ref := reference(t)["o200k_base"]
	count := func(s string) int { return len(ref.EncodeOrdinary(s)) }
	tools := `[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	cases := []struct {
		name string
		body string
		want int
	}{
		{"cookbook", `{"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi there"}]}`,
			3 + 3 + count("system") + count("You are helpful.") + 3 + count("user") + count("Hi there")},
		{"name", `{"model":"gpt-4o","messages":[{"role":"user","name":"bob","content":"x"}]}`,
			3 + 3 + count("user") + count("bob") + 1 + count("x")},
		{"parts and image", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"look at this"},{"type":"image_url","image_url":{"url":"data:...","detail":"low"}},{"type":"image_url","image_url":{"url":"https://x"}}]}]}`,
			3 + 3 + count("user") + count("look at this") + ImageTokensLow + ImageTokensHigh},
		{"tools and tool calls", `{"model":"gpt-4o","tools":` + tools + `,"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}]}`,
			3 + count(tools) + 3 + count("assistant") + count("get_weather") + count(`{"city":"Paris"}`) + 3 + count("tool") + count("c1") + count("sunny")},
		{"escaped text", `{"model":"gpt-4o","messages":[{"role":"user","content":"line\none \"quoted\" \u00e9"}]}`,
			3 + 3 + count("user") + count("line\none \"quoted\" é")},
		{"embeddings string", `{"model":"text-embedding-3-small","input":"hello world"}`, len(reference(t)["cl100k_base"].EncodeOrdinary("hello world"))},
		{"embeddings token ids", `{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}`, 4},
		{"not json", `garbage`, 0},
		{"empty", ``, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := e.PromptTokens([]byte(c.body)); got != c.want {
				t.Fatalf("PromptTokens = %d, want %d", got, c.want)
			}
		})
	}
}

func TestTextTokens(t *testing.T) {
	e := testEstimator(t)
	ref := reference(t)
	s := "Streaming text delivered to the client, counted when usage is missing."
	if got, want := e.TextTokens("gpt-4o-mini", s), len(ref["o200k_base"].EncodeOrdinary(s)); got != want {
		t.Fatalf("TextTokens = %d, want %d", got, want)
	}
	if got, want := e.TextTokens("gpt-3.5-turbo", s), len(ref["cl100k_base"].EncodeOrdinary(s)); got != want {
		t.Fatalf("TextTokens = %d, want %d", got, want)
	}
}

func TestCostMatchesCatalogAtOneX(t *testing.T) {
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
