package billing

// Token estimates (what a request costs is in cost.go, the
// pre-tokenizer in pretokenize.go).
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
	"strings"
	"unicode/utf8"
	"unsafe"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
	"github.com/tidwall/gjson"
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
	name   string
	ranks  map[string]int
	o200k  bool        // the o200k_base split rules, else cl100k_base's
	counts *countCache // of long strings (tokencache.go)
}

// Name is the tiktoken name of the encoding, e.g. "o200k_base".
func (e *Encoding) Name() string { return e.name }

func loadEncoding(name string) (*Encoding, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(name + ".tiktoken")
	if err != nil {
		return nil, fmt.Errorf("billing: load %s: %w", name, err)
	}
	return &Encoding{name: name, ranks: ranks, o200k: name == "o200k_base", counts: newCountCache()}, nil
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
	// One pass over the top-level keys: an agent's body is hundreds of
	// kilobytes of messages, and a lookup per key would skip over them
	// once per key.
	var model, msgs, input, prompt, instructions gjson.Result
	var tools [2]gjson.Result // "tools", "functions"
	first := func(r *gjson.Result, v gjson.Result) {
		if !r.Exists() { // the first of a repeated key, as gjson.Get
			*r = v
		}
	}
	// The body is read in place (no copy: an agent's is hundreds of
	// kilobytes), and nothing read from it outlives this call.
	gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			first(&model, v)
		case "messages":
			first(&msgs, v)
		case "tools":
			first(&tools[0], v)
		case "functions":
			first(&tools[1], v)
		case "input":
			first(&input, v)
		case "prompt":
			first(&prompt, v)
		case "instructions":
			first(&instructions, v)
		}
		return true
	})
	enc := e.Encoding(model.String())
	c := counter{enc: enc}
	if msgs.Exists() {
		c.n = 3
		msgs.ForEach(c.message)
		for _, t := range tools {
			if t.IsArray() {
				c.n += enc.Count(t.Raw)
			}
		}
		return c.n
	}
	switch {
	case input.Exists():
		c.value(input)
	case prompt.Exists():
		c.value(prompt)
	}
	if instructions.Type == gjson.String {
		c.n += enc.Count(instructions.Str)
	}
	return c.n
}

type counter struct {
	enc *Encoding
	n   int
}

// message counts one message. An object's count is remembered by its JSON
// text (an agent resends its earlier turns with every request), so a
// message seen before is neither walked nor unescaped again.
func (c *counter) message(_, m gjson.Result) bool {
	if !m.IsObject() {
		c.value(m)
		return true
	}
	c.n += c.enc.remembered(kindMessage, m.Raw, func() int {
		sub := counter{enc: c.enc, n: 3}
		m.ForEach(sub.field)
		return sub.n
	})
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
// A string of countCacheMin bytes or more is counted once and then
// remembered (tokencache.go).
func (e *Encoding) Count(s string) int {
	return e.remembered(kindText, s, func() int { return e.count(s) })
}

// remembered is count(), remembered by key (of its kind) when key is long
// enough to be worth it (tokencache.go).
func (e *Encoding) remembered(kind countKind, key string, count func() int) int {
	if len(key) < countCacheMin || e.counts == nil {
		return count()
	}
	k := e.counts.key(kind, key)
	if n, ok := e.counts.get(k); ok {
		return n
	}
	n := count()
	e.counts.put(k, n)
	return n
}

// count is Count without the cache.
func (e *Encoding) count(s string) int {
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
