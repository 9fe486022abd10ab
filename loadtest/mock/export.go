package mock

import (
	"encoding/json"
	"unicode/utf8"
)

// The functions below let the mocks of other wire formats (Anthropic,
// Gemini, Bedrock, ...) generate the same deterministic answers, ids and
// token counts as this OpenAI mock, so tests can compare them across
// providers.

// Seed derives the deterministic seed of an answer from the text it
// answers (the last user message).
func Seed(text string) uint64 { return hashString(text) }

// Mix is the mixing function the mocks derive seeds with (splitmix64's
// finalizer): Mix(Seed(text) ^ Seed(name)) seeds the arguments of a call
// of function name.
func Mix(x uint64) uint64 { return mix(x) }

// Token returns token i of an answer of n tokens: the first capitalized,
// later ones with a leading space, the last one ending with a period when
// stop is true (the answer finished rather than being cut).
func Token(seed uint64, i, n int, stop bool) string { return token(seed, i, n, stop) }

// Answer returns the n tokens of an answer (see Token).
func Answer(seed uint64, n int, stop bool) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = token(seed, i, n, stop)
	}
	return out
}

// CountWords counts the tokens of a text the way the mock does (words).
func CountWords(s string) int { return countWords(s) }

// ToolArguments builds deterministic arguments (a JSON object, as a
// string) from a function's JSON-schema parameters.
func ToolArguments(params json.RawMessage, seed uint64) string { return toolArguments(params, seed) }

// JSONValue builds a deterministic JSON document of any type (an object,
// an array, a string...) that conforms to the JSON schema sc: the answer
// of structured outputs. It is "" when sc is empty or not a schema.
func JSONValue(sc json.RawMessage, seed uint64) string { return jsonValue(sc, seed) }

// Fragments splits s (tool-call arguments) into pieces of about 4 bytes on
// rune boundaries, each of which counts as a token, and returns their end
// offsets.
func Fragments(s string) []int {
	frags := make([]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		j := min(i+4, len(s))
		for j < len(s) && !utf8.RuneStart(s[j]) {
			j++
		}
		frags = append(frags, j)
		i = j
	}
	return frags
}

// Pieces returns the pieces of s that Fragments delimits.
func Pieces(s string) []string {
	ends := Fragments(s)
	out := make([]string, len(ends))
	start := 0
	for i, e := range ends {
		out[i], start = s[start:e], e
	}
	return out
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// AppendAlnum appends n base-62 characters drawn from seed (an id's
// random-looking part).
func AppendAlnum(b []byte, seed uint64, n int) []byte {
	x := seed
	for i := 0; i < n; i++ {
		if i%8 == 0 {
			x = mix(seed + uint64(i))
		}
		b = append(b, alnum[x%62])
		x /= 62
	}
	return b
}

// UnitVector fills v with the deterministic unit vector of seed, as this
// mock's embeddings do (seed = Seed(input text)).
func UnitVector(v []float32, seed uint64) { vector(v, seed) }

// ToolCall is a call of a tool an answer makes, the same in every mock.
type ToolCall struct {
	ID, Name, Args string // Args is a JSON object
	Frags          []int  // end offsets of the pieces of Args (Fragments)
}

// NewToolCall plans call i of the answer with seed to the function name
// whose JSON-schema parameters are params: deterministic arguments, and an
// id of idPrefix followed by idLen base-62 characters.
func NewToolCall(seed uint64, i int, name string, params json.RawMessage, idPrefix string, idLen int) ToolCall {
	h := hashString(name)
	c := ToolCall{Name: name, Args: toolArguments(params, mix(seed^h))}
	c.Frags = Fragments(c.Args)
	c.ID = string(AppendAlnum([]byte(idPrefix), mix(seed+uint64(i)+1)^h, idLen))
	return c
}

// Tokens is the number of completion tokens of the call: 1 for the name
// and 1 per piece of the arguments.
func (c *ToolCall) Tokens() int { return 1 + len(c.Frags) }
