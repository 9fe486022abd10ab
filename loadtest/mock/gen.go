package mock

import (
	"encoding/json"
	"strings"
)

// vocabulary of the generated text; plain ASCII, so tokens need no JSON
// escaping.
var vocabulary = [...]string{
	"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
	"a", "gateway", "routes", "every", "request", "to", "an", "upstream",
	"model", "and", "streams", "tokens", "back", "with", "low", "latency",
	"while", "counting", "usage", "for", "each", "tenant", "in", "real",
	"time", "so", "that", "budgets", "hold", "under", "heavy", "load",
	"retries", "fail", "over", "quickly", "when", "providers", "are", "slow",
	"cache", "hits", "save", "money", "on", "repeated", "prompts", "across",
	"regions", "keys", "rotate", "safely", "logs", "stay", "clean", "always",
}

// Precomputed token spellings: the first token is capitalized, later ones
// carry a leading space, and the last token of a finished answer ends with
// a period.
var tokFirst, tokFirstEnd, tokNext, tokNextEnd = spellings()

func spellings() (first, firstEnd, next, nextEnd [len(vocabulary)]string) {
	for i, w := range vocabulary {
		c := strings.ToUpper(w[:1]) + w[1:]
		first[i], firstEnd[i] = c, c+"."
		next[i], nextEnd[i] = " "+w, " "+w+"."
	}
	return
}

// token returns token i of an answer of n tokens.
func token(seed uint64, i, n int, stop bool) string {
	w := mix(seed+uint64(i)*0x632be59bd9b4e019) % uint64(len(vocabulary))
	end := stop && i == n-1
	switch {
	case i == 0 && end:
		return tokFirstEnd[w]
	case i == 0:
		return tokFirst[w]
	case end:
		return tokNextEnd[w]
	}
	return tokNext[w]
}

// answer is the text of an answer, n tokens: words of the generated text
// (the last one ending with a period when stop), or, for a JSON answer, the
// first n pieces (Fragments) of doc.
type answer struct {
	seed  uint64
	n     int
	stop  bool
	doc   string
	frags []int
}

// wordAnswer is the generated text of want tokens (seed), cut to limit
// tokens when 0 < limit < want; cut reports the cut.
func wordAnswer(seed uint64, want, limit int) (a answer, cut bool) {
	if limit > 0 && limit < want {
		return answer{seed: seed, n: limit}, true
	}
	return answer{seed: seed, n: want, stop: true}, false
}

// docAnswer is the JSON document doc, cut to limit tokens (pieces) when
// 0 < limit < its length; cut reports the cut.
func docAnswer(doc string, limit int) (a answer, cut bool) {
	a = answer{doc: doc, frags: Fragments(doc), stop: true}
	a.n = len(a.frags)
	if limit > 0 && limit < a.n {
		a.n, a.stop, cut = limit, false, true
	}
	return a, cut
}

// appendRange appends tokens [i, j) of the answer, escaped for the inside
// of a JSON string.
func (a *answer) appendRange(b []byte, i, j int) []byte {
	if j <= i {
		return b
	}
	if a.doc == "" {
		for k := i; k < j; k++ {
			b = append(b, token(a.seed, k, a.n, a.stop)...)
		}
		return b
	}
	from := 0
	if i > 0 {
		from = a.frags[i-1]
	}
	return appendEscaped(b, a.doc[from:a.frags[j-1]])
}

// appendText appends the whole answer as a JSON string literal.
func (a *answer) appendText(b []byte) []byte {
	b = append(b, '"')
	b = a.appendRange(b, 0, a.n)
	return append(b, '"')
}

// jsonFormat is the JSON mode of a request: chat's response_format or the
// Responses API's text.format.
type jsonFormat struct {
	kind   string          // "" (text), "json_object" or "json_schema"
	schema json.RawMessage // json_schema's schema, may be empty
}

// doc returns the JSON answer to a request with seed: a value of the
// schema, or (json_object, or no usable schema) an object whose "text" is
// the generated text of want tokens.
func (f *jsonFormat) doc(seed uint64, want int) string {
	if f.kind == "json_schema" {
		if v := jsonValue(f.schema, seed); v != "" {
			return v
		}
	}
	b := make([]byte, 0, 16+8*want)
	b = append(b, `{"text":"`...)
	for i := 0; i < want; i++ {
		b = append(b, token(seed, i, want, true)...)
	}
	return string(append(b, `"}`...))
}

// containsJSONWord reports whether s mentions "json" in any letter case.
func containsJSONWord(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		if (s[i]|0x20) == 'j' && (s[i+1]|0x20) == 's' && (s[i+2]|0x20) == 'o' && (s[i+3]|0x20) == 'n' {
			return true
		}
	}
	return false
}
