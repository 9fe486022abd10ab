package mock

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// checkSchema validates the JSON document doc against the JSON schema sc: a
// test-only validator of the keywords the generator claims to honour,
// written from the JSON Schema specification rather than from the
// generator.
func checkSchema(t *testing.T, sc, doc string) {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal([]byte(sc), &root); err != nil {
		t.Fatalf("schema: %v", err)
	}
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("document %q: %v", doc, err)
	}
	if err := (validator{root: root}).check(root, v, "$"); err != nil {
		t.Fatalf("document %s does not conform: %v", doc, err)
	}
}

type validator struct{ root map[string]any }

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func (vd validator) check(sc map[string]any, v any, at string) error {
	if ref, ok := sc["$ref"].(string); ok {
		var target any
		switch {
		case ref == "#":
			target = vd.root
		case strings.HasPrefix(ref, "#/$defs/"):
			target = vd.root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")]
		case strings.HasPrefix(ref, "#/definitions/"):
			target = vd.root["definitions"].(map[string]any)[strings.TrimPrefix(ref, "#/definitions/")]
		}
		m, ok := target.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: unresolved $ref %q", at, ref)
		}
		return vd.check(m, v, at)
	}
	if c, ok := sc["const"]; ok && !jsonEqual(c, v) {
		return fmt.Errorf("%s: %v is not const %v", at, v, c)
	}
	if e, ok := sc["enum"].([]any); ok {
		found := false
		for _, x := range e {
			found = found || jsonEqual(x, v)
		}
		if !found {
			return fmt.Errorf("%s: %v not in enum %v", at, v, e)
		}
	}
	if subs, ok := sc["allOf"].([]any); ok {
		for _, s := range subs {
			if err := vd.check(s.(map[string]any), v, at); err != nil {
				return err
			}
		}
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if subs, ok := sc[kw].([]any); ok {
			n := 0
			for _, s := range subs {
				if vd.check(s.(map[string]any), v, at) == nil {
					n++
				}
			}
			if n == 0 || (kw == "oneOf" && n > 1) {
				return fmt.Errorf("%s: %v matches %d of %s", at, v, n, kw)
			}
		}
	}
	if t, ok := sc["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{strings.ToLower(t)}
		case []any:
			for _, x := range t {
				types = append(types, strings.ToLower(x.(string)))
			}
		}
		if n, _ := sc["nullable"].(bool); n {
			types = append(types, "null")
		}
		match := false
		for _, typ := range types {
			match = match || hasType(v, typ)
		}
		if !match {
			return fmt.Errorf("%s: %v is not of type %v", at, v, types)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := sc["properties"].(map[string]any)
		if req, ok := sc["required"].([]any); ok {
			for _, k := range req {
				if _, ok := v[k.(string)]; !ok {
					return fmt.Errorf("%s: required %q missing", at, k)
				}
			}
		}
		for k, x := range v {
			p, declared := props[k]
			if !declared {
				if ap, ok := sc["additionalProperties"].(bool); ok && !ap {
					return fmt.Errorf("%s: additional property %q", at, k)
				}
				continue
			}
			if ps, ok := p.(map[string]any); ok { // else a boolean schema
				if err := vd.check(ps, x, at+"."+k); err != nil {
					return err
				}
			}
		}
	case []any:
		if n, ok := number(sc["minItems"]); ok && float64(len(v)) < n {
			return fmt.Errorf("%s: %d items < minItems %v", at, len(v), n)
		}
		if n, ok := number(sc["maxItems"]); ok && float64(len(v)) > n {
			return fmt.Errorf("%s: %d items > maxItems %v", at, len(v), n)
		}
		prefix, _ := sc["prefixItems"].([]any)
		if tuple, ok := sc["items"].([]any); ok {
			prefix = tuple
		}
		items, _ := sc["items"].(map[string]any)
		for i, x := range v {
			var s map[string]any
			if i < len(prefix) {
				s = prefix[i].(map[string]any)
			} else {
				s = items
			}
			if s == nil {
				continue
			}
			if err := vd.check(s, x, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case float64:
		if m, ok := number(sc["minimum"]); ok && (v < m || (sc["exclusiveMinimum"] == true && v == m)) {
			return fmt.Errorf("%s: %v below minimum %v", at, v, m)
		}
		if m, ok := number(sc["maximum"]); ok && (v > m || (sc["exclusiveMaximum"] == true && v == m)) {
			return fmt.Errorf("%s: %v above maximum %v", at, v, m)
		}
		if m, ok := number(sc["exclusiveMinimum"]); ok && v <= m {
			return fmt.Errorf("%s: %v not above %v", at, v, m)
		}
		if m, ok := number(sc["exclusiveMaximum"]); ok && v >= m {
			return fmt.Errorf("%s: %v not below %v", at, v, m)
		}
		if m, ok := number(sc["multipleOf"]); ok && math.Abs(v/m-math.Round(v/m)) > 1e-9 {
			return fmt.Errorf("%s: %v not a multiple of %v", at, v, m)
		}
	case string:
		n := float64(utf8.RuneCountInString(v))
		if m, ok := number(sc["minLength"]); ok && n < m {
			return fmt.Errorf("%s: %q shorter than %v", at, v, m)
		}
		if m, ok := number(sc["maxLength"]); ok && n > m {
			return fmt.Errorf("%s: %q longer than %v", at, v, m)
		}
		if f, _ := sc["format"].(string); f != "" && !hasFormat(v, f) {
			return fmt.Errorf("%s: %q is not a %s", at, v, f)
		}
	}
	return nil
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return false
}

func hasFormat(s, f string) bool {
	var err error
	switch f {
	case "date-time":
		_, err = time.Parse(time.RFC3339, s)
	case "date":
		_, err = time.Parse(time.DateOnly, s)
	case "time":
		_, err = time.Parse(time.TimeOnly, s)
	case "email":
		at := strings.IndexByte(s, '@')
		return at > 0 && strings.Contains(s[at:], ".")
	case "uri":
		u, e := url.Parse(s)
		return e == nil && u.Scheme != "" && u.Host != ""
	case "uuid":
		return uuidRE.MatchString(s)
	case "ipv4":
		ip := net.ParseIP(s)
		return ip != nil && ip.To4() != nil
	}
	return err == nil
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case string: // Gemini writes int64 values as strings
		var f float64
		_, err := fmt.Sscan(v, &f)
		return f, err == nil
	}
	return 0, false
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// A structured-outputs schema the way SDKs write one (strict: every
// property required, additionalProperties false, nested types in $defs).
const planSchema = `{
  "type": "object",
  "properties": {
    "title":    {"type": "string", "minLength": 3, "maxLength": 40},
    "priority": {"type": "string", "enum": ["low", "medium", "high"]},
    "score":    {"type": "number", "minimum": 0, "maximum": 1},
    "attempts": {"type": "integer", "minimum": 1, "maximum": 3},
    "done":     {"type": "boolean"},
    "due":      {"type": "string", "format": "date-time"},
    "owner":    {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]},
    "steps":    {"type": "array", "minItems": 2, "maxItems": 4, "items": {"$ref": "#/$defs/step"}},
    "labels":   {"type": "array", "items": {"type": "string"}}
  },
  "required": ["title", "priority", "score", "attempts", "done", "due", "owner", "steps", "labels"],
  "additionalProperties": false,
  "$defs": {
    "person": {
      "type": "object",
      "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
      "required": ["name", "email"], "additionalProperties": false
    },
    "step": {
      "type": "object",
      "properties": {"id": {"type": "string", "format": "uuid"}, "minutes": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 5}},
      "required": ["id", "minutes"], "additionalProperties": false
    }
  }
}`

// plan is planSchema as a Go type, for decoding with unknown fields
// disallowed.
type plan struct {
	Title    string  `json:"title"`
	Priority string  `json:"priority"`
	Score    float64 `json:"score"`
	Attempts int     `json:"attempts"`
	Done     bool    `json:"done"`
	Due      string  `json:"due"`
	Owner    *struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"owner"`
	Steps []struct {
		ID      string `json:"id"`
		Minutes int    `json:"minutes"`
	} `json:"steps"`
	Labels []string `json:"labels"`
}

func decodeStrict(t *testing.T, doc string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
}

func TestJSONValueConforms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, schema string
		check        func(t *testing.T, doc string) // extra checks, may be nil
	}{
		{"structured outputs plan", planSchema, func(t *testing.T, doc string) {
			var p plan
			decodeStrict(t, doc, &p)
			if p.Owner == nil || len(p.Steps) != 2 || len(p.Labels) != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"top-level array with tuple items (draft 4)", `{"type":"array","items":[{"type":"integer"},{"type":"string","const":"x"}]}`, func(t *testing.T, doc string) {
			var v []any
			_ = json.Unmarshal([]byte(doc), &v)
			if len(v) != 2 || v[1] != "x" {
				t.Fatalf("%s", doc)
			}
		}},
		{"prefixItems then items", `{"type":"array","prefixItems":[{"type":"boolean"}],"items":{"type":"integer"},"minItems":3}`, func(t *testing.T, doc string) {
			var v []any
			_ = json.Unmarshal([]byte(doc), &v)
			if len(v) != 3 {
				t.Fatalf("%s", doc)
			}
		}},
		{"maxItems 0", `{"type":"array","items":{"type":"string"},"maxItems":0}`, func(t *testing.T, doc string) {
			if doc != "[]" {
				t.Fatalf("%s", doc)
			}
		}},
		{"draft-4 exclusive bounds", `{"type":"object","properties":{"i":{"type":"integer","minimum":3,"maximum":4,"exclusiveMaximum":true},"n":{"type":"number","minimum":0,"maximum":0.001,"exclusiveMinimum":true}}}`, func(t *testing.T, doc string) {
			if !strings.Contains(doc, `"i":3`) {
				t.Fatalf("%s", doc)
			}
		}},
		{"numeric exclusive bounds", `{"type":"object","properties":{"i":{"type":"integer","exclusiveMinimum":-5,"exclusiveMaximum":-3},"n":{"type":"number","exclusiveMinimum":10}}}`, func(t *testing.T, doc string) {
			if !strings.Contains(doc, `"i":-4`) {
				t.Fatalf("%s", doc)
			}
		}},
		{"only a maximum", `{"type":"integer","maximum":-1000}`, nil},
		{"integer multipleOf within bounds", `{"type":"integer","minimum":7,"maximum":30,"multipleOf":10}`, nil},
		{"number multipleOf", `{"type":"number","minimum":0,"maximum":1,"multipleOf":0.25}`, nil},
		{"formats", `{"type":"object","properties":{"a":{"type":"string","format":"date-time"},"b":{"type":"string","format":"date"},"c":{"type":"string","format":"time"},"d":{"type":"string","format":"email"},"e":{"type":"string","format":"uri"},"f":{"type":"string","format":"uuid"},"g":{"type":"string","format":"ipv4"}}}`, nil},
		{"string lengths", `{"type":"object","properties":{"long":{"type":"string","minLength":60},"short":{"type":"string","maxLength":2}}}`, nil},
		{"allOf merges", `{"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},{"$ref":"#/$defs/b"}],"$defs":{"b":{"type":"object","properties":{"b":{"type":"boolean"}},"required":["b"]}}}`, nil},
		{"recursive tree ends in null", `{"$ref":"#/definitions/node","definitions":{"node":{"type":"object","properties":{"name":{"type":"string"},"child":{"anyOf":[{"$ref":"#/definitions/node"},{"type":"null"}]}},"required":["name","child"]}}}`, func(t *testing.T, doc string) {
			if !strings.Contains(doc, `"child":null`) {
				t.Fatalf("%s", doc)
			}
		}},
		{"nullable type list", `{"type":"object","properties":{"x":{"type":["null","string"]}}}`, func(t *testing.T, doc string) {
			if strings.Contains(doc, "null") {
				t.Fatalf("non-null first: %s", doc)
			}
		}},
		{"Gemini upper-case types and string ints", `{"type":"OBJECT","properties":{"xs":{"type":"ARRAY","minItems":"3","maxItems":"3","items":{"type":"INTEGER","minimum":"10","maximum":"12"}}}}`, nil},
		{"boolean sub-schemas", `{"type":"object","properties":{"any":true,"x":{"type":"integer"}},"additionalProperties":false}`, nil},
		{"enum of objects", `{"enum":[{"a":1},[1,2],"s"]}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed < 200; seed += 37 {
				doc := jsonValue(json.RawMessage(tc.schema), mix(seed))
				if doc == "" || !json.Valid([]byte(doc)) {
					t.Fatalf("seed %d: invalid JSON %q", seed, doc)
				}
				if doc != jsonValue(json.RawMessage(tc.schema), mix(seed)) {
					t.Fatal("not deterministic")
				}
				checkSchema(t, tc.schema, doc)
				if tc.check != nil {
					tc.check(t, doc)
				}
			}
		})
	}

	// Tool arguments stay objects; what is no schema gives nothing.
	for _, s := range []string{``, `not json`, `[1]`} {
		if got := jsonValue(json.RawMessage(s), 1); got != "" && s != `[1]` {
			t.Fatalf("jsonValue(%q) = %q", s, got)
		}
		if got := toolArguments(json.RawMessage(s), 1); got != "{}" {
			t.Fatalf("toolArguments(%q) = %q", s, got)
		}
	}
	if got := toolArguments(json.RawMessage(`{"type":"array","items":{"type":"string"}}`), 1); got != "{}" {
		t.Fatalf("array parameters: %q", got)
	}
}
