package providers

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The fields xroute reads from a caller's body decide what it routes,
// holds and bills; the upstream reads the same body. They must mean one
// thing to both. JSON lets a key appear twice ({"model":"free",
// "model":"priced"}): Go's decoder keeps the last, gjson and sjson the
// first, other parsers either. Go's decoder also takes "MAX_TOKENS" or
// "max_toKens" (with a Kelvin sign) for max_tokens, which an upstream
// ignores. And a field of the wrong type would be the upstream's 400 after
// xroute had routed and held on a guess. CheckFields refuses all three,
// in one pass over the body's top-level keys.

// fieldKind is what a read field's value must be (null is always allowed:
// an optional parameter set to null is unset).
type fieldKind uint8

const (
	anyValue    fieldKind = iota
	stringValue           // a string
	boolValue             // true or false
	countValue            // an integer >= 1
	numberValue           // a number
	objectValue           // an object
	arrayValue            // an array
)

// readFields are the top-level fields some ingress, the router, the hold
// or the estimator reads, in every API xroute serves (Chat Completions,
// legacy completions, embeddings, Responses, Anthropic Messages) and
// OpenRouter's routing extensions.
var readFields = [...]struct {
	name string
	kind fieldKind
}{
	{"model", stringValue},
	{"messages", arrayValue},
	{"input", anyValue},
	{"prompt", anyValue},
	{"instructions", anyValue},
	{"system", anyValue},
	{"stream", boolValue},
	{"stream_options", objectValue},
	{"prompt_cache_key", anyValue},
	{"n", countValue},
	{"best_of", countValue},
	{"max_tokens", countValue},
	{"max_completion_tokens", countValue},
	{"max_output_tokens", countValue},
	{"temperature", numberValue},
	{"top_p", numberValue},
	{"tools", arrayValue},
	{"functions", arrayValue},
	{"tool_choice", anyValue},
	{"response_format", objectValue},
	{"text", anyValue},
	{"reasoning", anyValue},
	{"thinking", anyValue},
	{"previous_response_id", anyValue},
	{"store", boolValue},
	{"suffix", anyValue},
	{"echo", anyValue},
	{"stop", anyValue},
	{"stop_sequences", anyValue},
	{"dimensions", anyValue},
	{"encoding_format", anyValue},
	{"provider", anyValue}, // typed by the router, to the nested field
	{"models", anyValue},
	{"route", anyValue},
	{"transforms", anyValue},
	{"plugins", anyValue},
}

// CheckFields checks the top-level keys of a caller's body that xroute
// reads: each appears at most once, spelled exactly (case included, as the
// upstream reads it), with a value of its type. The error is a
// *RequestError naming the field. A body that is not a JSON object is left
// to the decoder that follows.
func CheckFields(body []byte) error {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil
	}
	var seen [len(readFields)]bool
	for i++; ; {
		i = skipSpace(body, i)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
		if i >= len(body) || body[i] != '"' {
			return nil // the end, or not JSON: the decoder says which
		}
		end, escaped := skipString(body, i)
		if end < 0 {
			return nil
		}
		quoted, key := body[i:end], body[i+1:end-1]
		if i = skipSpace(body, end); i >= len(body) || body[i] != ':' {
			return nil
		}
		start := skipSpace(body, i+1)
		if i = skipValue(body, start); i < 0 {
			return nil
		}
		if escaped {
			var k string
			if json.Unmarshal(quoted, &k) != nil {
				return nil
			}
			key = []byte(k)
		}
		f, exact := lookupField(key)
		if f < 0 {
			continue
		}
		name := readFields[f].name
		switch {
		case !exact:
			return &RequestError{Param: name, Message: "Invalid parameter '" + string(key) + "': parameter names are case-sensitive; did you mean '" + name + "'?"}
		case seen[f]:
			return &RequestError{Param: name, Message: "Invalid body: '" + name + "' appears more than once; each parameter may be given once."}
		}
		seen[f] = true
		if err := checkKind(name, readFields[f].kind, body[start:i]); err != nil {
			return err
		}
	}
}

// lookupField finds the read field key names, as Go's decoder matches
// names (case-insensitively, Unicode folding included); exact is false
// for another spelling.
func lookupField(key []byte) (f int, exact bool) {
	ascii := true
	for _, c := range key {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	for i := range readFields {
		name := readFields[i].name
		if ascii && len(key) != len(name) {
			continue
		}
		if bytes.EqualFold(key, []byte(name)) {
			return i, string(key) == name
		}
	}
	return -1, false
}

// checkKind checks one read field's raw value.
func checkKind(name string, kind fieldKind, v []byte) error {
	if len(v) == 0 || bytes.Equal(v, nullLiteral) {
		return nil
	}
	bad := func(want string) error {
		return &RequestError{Param: name, Message: "Invalid type for '" + name + "': expected " + want + ", but got " + jsonType(v) + " instead."}
	}
	switch kind {
	case stringValue:
		if v[0] != '"' {
			return bad("a string")
		}
	case boolValue:
		if !bytes.Equal(v, []byte("true")) && !bytes.Equal(v, []byte("false")) {
			return bad("a boolean")
		}
	case numberValue:
		if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
			return bad("a number")
		}
	case objectValue:
		if v[0] != '{' {
			return bad("an object")
		}
	case arrayValue:
		if v[0] != '[' {
			return bad("an array")
		}
	case countValue:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return bad("an integer")
		}
		if n < 1 {
			return &RequestError{Param: name, Message: "Invalid '" + name + "': integer below minimum value. Expected a value >= 1, but got " + strconv.FormatInt(n, 10) + " instead."}
		}
	}
	return nil
}

var nullLiteral = []byte("null")

// jsonType names the type of a raw JSON value, as OpenAI's errors do.
func jsonType(v []byte) string {
	switch {
	case v[0] == '"':
		return "a string"
	case v[0] == '{':
		return "an object"
	case v[0] == '[':
		return "an array"
	case v[0] == 't' || v[0] == 'f':
		return "a boolean"
	case bytes.ContainsAny(v, ".eE"):
		return "a decimal"
	}
	return "a number"
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] (a
// quote), and whether it holds escapes; -1 when it does not end.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index after the value that starts at b[i]; -1
// when it does not end. It does not validate: the decoder does.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _ := skipString(b, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
