package billing

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	e := testEstimator(t)
	ref := reference(t)
	s := "ok \xff\xfe bad \xc3 bytes"
	want := len(ref["o200k_base"].EncodeOrdinary(s))
	if got := e.o200k.Count(s); got != want {
		t.Fatalf("Count = %d, tiktoken %d", got, want)
	}
}

func TestCountLongPieceIsLinear(t *testing.T) {
	t.Parallel()
	e := testEstimator(t)
	s := strings.Repeat("a", 1<<16) // one 64 KiB pre-token
	n := e.o200k.Count(s)
	if n < (1<<16)/maxPiece || n > 1<<16 {
		t.Fatalf("Count = %d", n)
	}
}

func TestEncodingForModel(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
