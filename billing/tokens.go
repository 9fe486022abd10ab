package billing

// Token estimates and costs.
//
// The Estimator counts tokens the way OpenAI's tiktoken does (the o200k_base
// and cl100k_base encodings, read from tiktoken-go-loader's embedded BPE
// files, nothing fetched). The BPE itself is the standard tiktoken merge;
// the pre-tokenizer is the encodings' split regex written out by hand,
// which is what makes it fast (tiktoken-go runs the regex through a
// backtracking engine at ~350 µs per KB; this runs at a few µs). The tests
// compare every count with tiktoken-go's on a mixed corpus and random text.
//
// Deliberate difference: a pre-token longer than maxPiece bytes (a run of
// letters or symbols with no break, e.g. "aaaa…") is merged in maxPiece
// chunks, which may count a few more tokens than tiktoken, in exchange for
// linear time on hostile input (the BPE merge is quadratic in the piece).

import (
	"fmt"
	"math"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// Token estimates for what the Estimator cannot read as text.
const (
	// ImageTokensLow and ImageTokensHigh are charged per image part of a
	// prompt (OpenAI's detail=low flat rate, and a 1024×1024 image at high
	// detail); the real count depends on the image size.
	ImageTokensLow  = 85
	ImageTokensHigh = 765
	// maxPiece is the longest pre-token merged in one go (see above).
	maxPiece = 256
)

// Encoding is one BPE vocabulary with its pre-tokenizer. Safe for
// concurrent use.
type Encoding struct {
	name  string
	ranks map[string]int
	o200k bool // the o200k_base split rules, else cl100k_base's
}

// Name is the tiktoken name of the encoding, e.g. "o200k_base".
func (e *Encoding) Name() string { return e.name }

func loadEncoding(name string) (*Encoding, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(name + ".tiktoken")
	if err != nil {
		return nil, fmt.Errorf("billing: load %s: %w", name, err)
	}
	return &Encoding{name: name, ranks: ranks, o200k: name == "o200k_base"}, nil
}

// Estimator counts prompt and completion tokens before (or without) the
// provider's own count. Build one with NewEstimator and share it.
type Estimator struct {
	o200k, cl100k *Encoding
}

// NewEstimator loads both vocabularies (about 0.25 s and 15 MB; do it once
// at start-up).
func NewEstimator() (*Estimator, error) {
	o, err := loadEncoding("o200k_base")
	if err != nil {
		return nil, err
	}
	c, err := loadEncoding("cl100k_base")
	if err != nil {
		return nil, err
	}
	return &Estimator{o200k: o, cl100k: c}, nil
}

// o200kPrefixes are the model families tokenized with o200k_base; every
// other model is counted with cl100k_base (exact for OpenAI's older models,
// an estimate for other vendors' tokenizers).
var o200kPrefixes = [...]string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4", "codex"}

// Encoding returns the encoding used for a model name. A vendor prefix
// ("openai/gpt-4o") is ignored.
func (e *Estimator) Encoding(model string) *Encoding {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	for _, p := range o200kPrefixes {
		if len(model) >= len(p) && strings.EqualFold(model[:len(p)], p) {
			return e.o200k
		}
	}
	return e.cl100k
}

// TextTokens counts the tokens of plain text in model's encoding, e.g. the
// text a stream delivered when the provider sent no usage.
func (e *Estimator) TextTokens(model, text string) int { return e.Encoding(model).Count(text) }

// PromptTokens estimates the prompt tokens of an OpenAI-shaped request body
// in the encoding of its "model": for chat, OpenAI's cookbook rule (every
// message's string fields, 3 tokens per message, 1 per name, 3 to prime
// the reply), text parts counted, image parts at ImageTokensLow/High, and
// the JSON of tools/functions counted as text; for embeddings and legacy
// completions, "input"/"prompt" (strings, or token arrays at 1 per id).
// Malformed JSON counts what can be read; it never fails.
func (e *Estimator) PromptTokens(body []byte) int {
	root := gjson.ParseBytes(body)
	enc := e.Encoding(root.Get("model").String())
	c := counter{enc: enc}
	if msgs := root.Get("messages"); msgs.Exists() {
		c.n = 3
		msgs.ForEach(c.message)
		for _, k := range [...]string{"tools", "functions"} {
			if t := root.Get(k); t.IsArray() {
				c.n += enc.Count(t.Raw)
			}
		}
		return c.n
	}
	for _, k := range [...]string{"input", "prompt"} {
		if v := root.Get(k); v.Exists() {
			c.value(v)
			break
		}
	}
	if v := root.Get("instructions"); v.Type == gjson.String {
		c.n += enc.Count(v.Str)
	}
	return c.n
}

type counter struct {
	enc *Encoding
	n   int
}

func (c *counter) message(_, m gjson.Result) bool {
	if !m.IsObject() {
		c.value(m)
		return true
	}
	c.n += 3
	m.ForEach(c.field)
	return true
}

func (c *counter) field(k, v gjson.Result) bool {
	switch k.Str {
	case "content":
		c.content(v)
	case "name":
		c.n += c.enc.Count(v.String()) + 1
	case "tool_calls":
		v.ForEach(c.call)
	case "function_call":
		c.call(k, v)
	default:
		if v.Type == gjson.String {
			c.n += c.enc.Count(v.Str)
		}
	}
	return true
}

func (c *counter) call(_, v gjson.Result) bool {
	fn := v
	if f := v.Get("function"); f.Exists() {
		fn = f
	}
	c.n += c.enc.Count(fn.Get("name").String()) + c.enc.Count(fn.Get("arguments").String())
	return true
}

func (c *counter) content(v gjson.Result) {
	switch {
	case v.Type == gjson.String:
		c.n += c.enc.Count(v.Str)
	case v.IsArray():
		v.ForEach(c.part)
	}
}

func (c *counter) part(_, p gjson.Result) bool {
	if p.Type == gjson.String {
		c.n += c.enc.Count(p.Str)
		return true
	}
	switch p.Get("type").Str {
	case "image_url", "input_image", "image":
		if p.Get("image_url.detail").Str == "low" || p.Get("detail").Str == "low" {
			c.n += ImageTokensLow
		} else {
			c.n += ImageTokensHigh
		}
	default:
		if t := p.Get("text"); t.Type == gjson.String {
			c.n += c.enc.Count(t.Str)
		}
	}
	return true
}

// value counts an "input"/"prompt" value: text, token ids, arrays of
// those, or message objects (Responses-style input).
func (c *counter) value(v gjson.Result) {
	switch {
	case v.Type == gjson.String:
		c.n += c.enc.Count(v.Str)
	case v.Type == gjson.Number:
		c.n++
	case v.IsArray():
		v.ForEach(func(_, x gjson.Result) bool { c.value(x); return true })
	case v.IsObject():
		c.message(gjson.Result{}, v)
	}
}

// Count returns the number of tokens of s, as tiktoken's encode_ordinary
// would produce (special tokens are counted as plain text).
func (e *Encoding) Count(s string) int {
	if s == "" {
		return 0
	}
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // as tiktoken-go: each bad byte becomes U+FFFD
	}
	n := 0
	for i := 0; i < len(s); {
		var j int
		if e.o200k {
			j = nextO200k(s, i)
		} else {
			j = nextCL100k(s, i)
		}
		if j <= i { // cannot happen: every rune starts some alternative
			_, w := utf8.DecodeRuneInString(s[i:])
			j = i + w
		}
		n += e.piece(s[i:j])
		i = j
	}
	return n
}

func (e *Encoding) piece(p string) int {
	if _, ok := e.ranks[p]; ok {
		return 1
	}
	n := 0
	for len(p) > maxPiece {
		n += e.merge(p[:maxPiece])
		p = p[maxPiece:]
	}
	return n + e.merge(p)
}

// merge counts the tokens of a piece by tiktoken's byte-pair merge: join
// the adjacent pair of lowest rank until no pair is in the vocabulary.
func (e *Encoding) merge(p string) int {
	if len(p) <= 1 {
		return len(p)
	}
	type part struct{ start, rank int }
	var buf [maxPiece + 1]part
	parts := buf[:len(p)+1]
	for i := range parts {
		parts[i] = part{i, math.MaxInt}
	}
	rank := func(i, skip int) int {
		if i+skip+2 < len(parts) {
			if r, ok := e.ranks[p[parts[i].start:parts[i+skip+2].start]]; ok {
				return r
			}
		}
		return math.MaxInt
	}
	for i := 0; i+2 < len(parts); i++ {
		parts[i].rank = rank(i, 0)
	}
	for len(parts) > 1 {
		minRank, at := math.MaxInt, -1
		for i := 0; i < len(parts)-1; i++ {
			if parts[i].rank < minRank {
				minRank, at = parts[i].rank, i
			}
		}
		if at < 0 {
			break
		}
		parts[at].rank = rank(at, 1)
		if at > 0 {
			parts[at-1].rank = rank(at-1, 1)
		}
		parts = append(parts[:at+1], parts[at+2:]...)
	}
	return len(parts) - 1
}

// Character classes of the split regexes.
const (
	cLetter   uint8 = 1 << iota // \p{L}
	cNumber                     // \p{N}
	cSpace                      // \s (unicode.IsSpace, as regexp2)
	cNewline                    // \r or \n
	cUpperish                   // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cLowerish                   // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
)

func classOf(r rune) uint8 {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z':
			return cLetter | cLowerish
		case 'A' <= r && r <= 'Z':
			return cLetter | cUpperish
		case '0' <= r && r <= '9':
			return cNumber
		case r == '\n' || r == '\r':
			return cSpace | cNewline
		case r == ' ' || ('\t' <= r && r <= '\f'):
			return cSpace
		}
		return 0
	}
	var c uint8
	if unicode.IsSpace(r) {
		c = cSpace
	}
	switch {
	case unicode.IsUpper(r), unicode.IsTitle(r):
		c |= cLetter | cUpperish
	case unicode.IsLower(r):
		c |= cLetter | cLowerish
	case unicode.IsLetter(r): // Lm, Lo
		c |= cLetter | cUpperish | cLowerish
	case unicode.IsMark(r):
		c |= cUpperish | cLowerish
	case unicode.IsNumber(r):
		c |= cNumber
	}
	return c
}

// at decodes the rune at i of a valid UTF-8 string.
func at(s string, i int) (rune, int, uint8) {
	if b := s[i]; b < utf8.RuneSelf {
		return rune(b), 1, classOf(rune(b))
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, w, classOf(r)
}

// run returns the end of the run of runes from i whose class has a bit of mask.
func run(s string, i int, mask uint8) int {
	for i < len(s) {
		_, w, c := at(s, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

// runNot returns the end of the run of runes from i whose class has no bit of mask.
func runNot(s string, i int, mask uint8) int {
	for i < len(s) {
		_, w, c := at(s, i)
		if c&mask != 0 {
			break
		}
		i += w
	}
	return i
}

// numbers matches \p{N}{1,3} after the first number rune (ending at j).
func numbers(s string, j int) int {
	for k := 1; k < 3 && j < len(s); k++ {
		_, w, c := at(s, j)
		if c&cNumber == 0 {
			break
		}
		j += w
	}
	return j
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) at i; it returns the
// length matched, 0 for none.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2]|0x20 == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2]|0x20 == 'l' {
			return 3
		}
	}
	return 0
}

// punct matches ` ?[^\s\p{L}\p{N}]+[\r\n]*` (slash: `[\r\n/]*`) at i
// (whose rune is r, w bytes, class c); 0 when it does not match.
func punct(s string, i int, r rune, w int, c uint8, slash bool) int {
	const word = cSpace | cLetter | cNumber
	k := i
	if r == ' ' {
		if k = i + w; k >= len(s) {
			return 0
		}
		if _, _, c2 := at(s, k); c2&word != 0 {
			return 0
		}
	} else if c&word != 0 {
		return 0
	}
	end := runNot(s, k, word)
	for end < len(s) && (s[end] == '\r' || s[end] == '\n' || (slash && s[end] == '/')) {
		end++
	}
	return end
}

// spaces matches, at whitespace i, `\s*[\r\n]+|\s+(?!\S)|\s+`.
func spaces(s string, i int) int {
	end := run(s, i, cSpace)
	for k := end - 1; k >= i; k-- { // \r and \n never occur inside a multi-byte rune
		if s[k] == '\n' || s[k] == '\r' {
			return k + 1
		}
	}
	if end == len(s) {
		return end
	}
	if _, w := utf8.DecodeLastRuneInString(s[i:end]); end-w > i {
		return end - w // leave the last space to prefix the next word
	}
	return end
}

// nextCL100k returns the end of the pre-token at i for
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func nextCL100k(s string, i int) int {
	r, w, c := at(s, i)
	if r == '\'' {
		if k := contraction(s, i); k > 0 {
			return i + k
		}
	}
	j := i + w
	if c&(cLetter|cNumber|cNewline) == 0 && j < len(s) {
		if _, _, c2 := at(s, j); c2&cLetter != 0 {
			return run(s, j, cLetter)
		}
	}
	if c&cLetter != 0 {
		return run(s, j, cLetter)
	}
	if c&cNumber != 0 {
		return numbers(s, j)
	}
	if end := punct(s, i, r, w, c, false); end > 0 {
		return end
	}
	return spaces(s, i)
}

// nextO200k returns the end of the pre-token at i for o200k_base's
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	\p{N}{1,3}
//	 ?[^\s\p{L}\p{N}]+[\r\n/]*
//	\s*[\r\n]+ | \s+(?!\S) | \s+
func nextO200k(s string, i int) int {
	r, w, c := at(s, i)
	j := i + w
	pre := c&(cLetter|cNumber|cNewline) == 0 && j < len(s)
	if pre {
		if end := lowerWord(s, j); end > 0 {
			return end + contraction(s, end)
		}
	}
	if end := lowerWord(s, i); end > 0 {
		return end + contraction(s, end)
	}
	if pre {
		if end := upperWord(s, j); end > 0 {
			return end + contraction(s, end)
		}
	}
	if end := upperWord(s, i); end > 0 {
		return end + contraction(s, end)
	}
	if c&cNumber != 0 {
		return numbers(s, j)
	}
	if end := punct(s, i, r, w, c, true); end > 0 {
		return end
	}
	return spaces(s, i)
}

// lowerWord matches [U]*[Lw]+ at st with the regex engine's backtracking:
// the greedy U-run gives back runes until an Lw rune can start Lw+. 0 when
// it does not match.
func lowerWord(s string, st int) int {
	k, lastEnd := st, 0
	for k < len(s) {
		_, w, c := at(s, k)
		if c&cUpperish == 0 {
			break
		}
		if c&cLowerish != 0 {
			lastEnd = k + w
		}
		k += w
	}
	if k < len(s) {
		if _, _, c := at(s, k); c&cLowerish != 0 {
			return run(s, k, cLowerish)
		}
	}
	return lastEnd // the last Lw rune inside the U-run, alone (its successors are Lu/Lt)
}

// upperWord matches [U]+[Lw]* at st; 0 when it does not match.
func upperWord(s string, st int) int {
	if _, _, c := at(s, st); c&cUpperish == 0 {
		return 0
	}
	return run(s, run(s, st, cUpperish), cLowerish)
}

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
	var hi, lo uint64
	for _, t := range terms {
		h, l := bits.Mul64(t[0], t[1])
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi, carry = bits.Add64(hi, h, carry)
		if carry != 0 {
			return math.MaxInt64
		}
	}
	m := normBP(bp)
	h1, l1 := bits.Mul64(lo, m)
	h2, l2 := bits.Mul64(hi, m)
	hi, carry := bits.Add64(h1, l2, 0)
	if h2 != 0 || carry != 0 {
		return math.MaxInt64
	}
	return Nano(divCeil(hi, l1, 1000*OneX))
}
