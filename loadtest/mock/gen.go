package mock

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
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

func appendTokenRaw(b []byte, seed uint64, i, n int, stop bool) []byte {
	return append(b, token(seed, i, n, stop)...)
}

// schema is the part of a JSON schema used to build tool-call arguments.
type schema struct {
	Type       json.RawMessage    `json:"type"`
	Enum       []json.RawMessage  `json:"enum"`
	Const      json.RawMessage    `json:"const"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
	AnyOf      []*schema          `json:"anyOf"`
	OneOf      []*schema          `json:"oneOf"`
}

// toolArguments builds deterministic arguments (a JSON object, as a string)
// from a function's parameters schema: every property gets a value of its
// type (enum values are picked from the enum).
func toolArguments(params json.RawMessage, seed uint64) string {
	var sc schema
	if len(bytes.TrimSpace(params)) == 0 || json.Unmarshal(params, &sc) != nil {
		return "{}"
	}
	b := appendValue(nil, &sc, seed, 0)
	if len(b) == 0 || b[0] != '{' {
		return "{}"
	}
	return string(b)
}

func schemaType(sc *schema) string {
	t := bytes.TrimSpace(sc.Type)
	if len(t) == 0 {
		if sc.Properties != nil {
			return "object"
		}
		return ""
	}
	if t[0] == '"' {
		var s string
		_ = json.Unmarshal(t, &s)
		return s
	}
	var list []string
	_ = json.Unmarshal(t, &list)
	for _, s := range list {
		if s != "null" {
			return s
		}
	}
	if len(list) > 0 {
		return list[0]
	}
	return ""
}

func appendRaw(b []byte, raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(b, "null"...)
	}
	return append(b, buf.Bytes()...)
}

func appendValue(b []byte, sc *schema, seed uint64, depth int) []byte {
	if sc == nil {
		return appendString(b, vocabulary[seed%uint64(len(vocabulary))])
	}
	if len(sc.Const) > 0 {
		return appendRaw(b, sc.Const)
	}
	if len(sc.Enum) > 0 {
		return appendRaw(b, sc.Enum[seed%uint64(len(sc.Enum))])
	}
	for _, alts := range [][]*schema{sc.AnyOf, sc.OneOf} {
		for _, alt := range alts {
			if alt != nil && schemaType(alt) != "null" {
				return appendValue(b, alt, seed, depth+1)
			}
		}
	}
	switch schemaType(sc) {
	case "object":
		b = append(b, '{')
		if depth < 6 {
			keys := make([]string, 0, len(sc.Properties))
			for k := range sc.Properties {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = append(b, ':')
				b = appendValue(b, sc.Properties[k], mix(seed^hashString(k)), depth+1)
			}
		}
		return append(b, '}')
	case "array":
		b = append(b, '[')
		if sc.Items != nil && depth < 6 {
			b = appendValue(b, sc.Items, mix(seed+1), depth+1)
		}
		return append(b, ']')
	case "integer":
		return strconv.AppendUint(b, seed%100, 10)
	case "number":
		return strconv.AppendFloat(b, float64(seed%1000)/10+0.5, 'f', -1, 64)
	case "boolean":
		return strconv.AppendBool(b, seed&1 == 1)
	case "null":
		return append(b, "null"...)
	}
	v := len(vocabulary)
	return appendString(b, vocabulary[seed%uint64(v)]+" "+vocabulary[mix(seed)%uint64(v)])
}
