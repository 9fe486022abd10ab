package mock

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Deterministic JSON values that conform to a JSON schema: the arguments of
// tool calls and the answers of structured outputs (JSON mode).
//
// Every property of an object is generated (so "required" always holds),
// in key order. Covered: type (also a list, and Gemini's upper-case
// names), enum, const, properties, items (a schema or, as in draft 4, a
// tuple), prefixItems, minItems/maxItems, anyOf/oneOf (the first non-null
// alternative), allOf (merged), $ref to "#", "#/$defs/..." or
// "#/definitions/...", minimum/maximum (with draft-4 boolean or numeric
// exclusive bounds), multipleOf, minLength/maxLength, and the string
// formats date-time, date, time, email, uri, uuid, hostname and ipv4.
// Recursion stops at depth maxSchemaDepth, with null where the schema
// allows it.

const (
	maxSchemaDepth = 6
	maxSchemaItems = 16
)

// schema is the part of a JSON schema used to build values (see
// parseSchema).
type schema struct {
	Type        json.RawMessage    `json:"type"`
	Enum        []json.RawMessage  `json:"enum"`
	Const       json.RawMessage    `json:"const"`
	Properties  map[string]*schema `json:"properties"`
	Items       *schema            `json:"items"`
	PrefixItems []*schema          `json:"prefixItems"`
	AnyOf       []*schema          `json:"anyOf"`
	OneOf       []*schema          `json:"oneOf"`
	AllOf       []*schema          `json:"allOf"`
	Ref         string             `json:"$ref"`
	Defs        map[string]*schema `json:"$defs"`
	Definitions map[string]*schema `json:"definitions"`
	Nullable    bool               `json:"nullable"`
	Format      string             `json:"format"`

	// Numeric keywords, nil when absent (see num).
	Minimum          *num `json:"minimum"`
	Maximum          *num `json:"maximum"`
	ExclusiveMinimum *num `json:"exclusiveMinimum"`
	ExclusiveMaximum *num `json:"exclusiveMaximum"`
	MultipleOf       *num `json:"multipleOf"`
	MinLength        *num `json:"minLength"`
	MaxLength        *num `json:"maxLength"`
	MinItems         *num `json:"minItems"`
	MaxItems         *num `json:"maxItems"`
}

// parseSchema decodes a JSON schema (an object). Most decode directly; the
// others go through normalizeSchema first.
func parseSchema(raw json.RawMessage) (*schema, bool) {
	var sc schema
	if json.Unmarshal(raw, &sc) == nil {
		return &sc, true
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(normalizeSchema(m))
	if err != nil {
		return nil, false
	}
	sc = schema{}
	if json.Unmarshal(b, &sc) != nil {
		return nil, false
	}
	return &sc, true
}

// normalizeSchema rewrites what the schema type cannot hold: boolean
// sub-schemas become {} (true) or are dropped (false, under "items"), and
// draft 4's tuple "items" becomes "prefixItems".
func normalizeSchema(v any) any {
	switch v := v.(type) {
	case bool:
		return map[string]any{}
	case []any:
		for i := range v {
			v[i] = normalizeSchema(v[i])
		}
		return v
	case map[string]any:
		for _, k := range [...]string{"properties", "$defs", "definitions", "patternProperties"} {
			if sub, ok := v[k].(map[string]any); ok {
				for name, s := range sub {
					sub[name] = normalizeSchema(s)
				}
			} else if _, ok := v[k]; ok {
				delete(v, k)
			}
		}
		for _, k := range [...]string{"anyOf", "oneOf", "allOf", "prefixItems"} {
			if list, ok := v[k].([]any); ok {
				v[k] = normalizeSchema(list)
			} else if _, ok := v[k]; ok {
				delete(v, k)
			}
		}
		switch items := v["items"].(type) {
		case []any:
			if _, ok := v["prefixItems"]; !ok {
				v["prefixItems"] = normalizeSchema(items)
			}
			delete(v, "items")
		case map[string]any:
			v["items"] = normalizeSchema(items)
		case nil:
		default:
			delete(v, "items")
		}
		for _, k := range [...]string{"type", "enum", "$ref", "format"} {
			if _, ok := v[k]; !ok {
				continue
			}
			switch v[k].(type) {
			case string, []any:
			default:
				delete(v, k) // not a form the schema type holds
			}
		}
		if _, ok := v["nullable"].(bool); !ok {
			delete(v, "nullable")
		}
		return v
	}
	return v
}

// num is a numeric keyword, also written as a string (Gemini's int64
// values) or, for draft 4's exclusiveMinimum/Maximum, as a boolean (flag).
type num struct {
	v    float64
	set  bool // a number
	flag bool // true
}

// isSet reports whether n is a number; isFlag whether it is true.
func (n *num) isSet() bool  { return n != nil && n.set }
func (n *num) isFlag() bool { return n != nil && n.flag }

func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case 't':
		n.flag = true
		return nil
	case 'f', 'n':
		return nil
	case '"':
		b = bytes.Trim(b, `"`)
	}
	if v, err := strconv.ParseFloat(string(b), 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
		n.v, n.set = v, true
	}
	return nil
}

// toolArguments builds deterministic arguments (a JSON object, as a string)
// from a function's parameters schema: every property gets a value of its
// type (enum values are picked from the enum).
func toolArguments(params json.RawMessage, seed uint64) string {
	v := jsonValue(params, seed)
	if v == "" || v[0] != '{' {
		return "{}"
	}
	return v
}

// jsonValue builds a deterministic JSON document of any type that conforms
// to the JSON schema sc; "" when sc is empty or not a schema.
func jsonValue(sc json.RawMessage, seed uint64) string {
	if len(bytes.TrimSpace(sc)) == 0 {
		return ""
	}
	root, ok := parseSchema(sc)
	if !ok {
		return ""
	}
	g := schemaGen{root: root}
	return string(g.value(nil, root, seed, 0))
}

// schemaGen generates values of the schemas of one document.
type schemaGen struct{ root *schema }

// resolve returns the target of a local $ref, nil when unknown.
func (g *schemaGen) resolve(ref string) *schema {
	switch {
	case ref == "#":
		return g.root
	case strings.HasPrefix(ref, "#/$defs/"):
		return g.root.Defs[unescapePointer(ref[len("#/$defs/"):])]
	case strings.HasPrefix(ref, "#/definitions/"):
		return g.root.Definitions[unescapePointer(ref[len("#/definitions/"):])]
	}
	return nil
}

func unescapePointer(s string) string {
	if !strings.Contains(s, "~") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// schemaType returns the (first non-null) type of sc, lower case; "" when
// none is declared (an object when it has properties).
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
		return strings.ToLower(s)
	}
	var list []string
	_ = json.Unmarshal(t, &list)
	for _, s := range list {
		if !strings.EqualFold(s, "null") {
			return strings.ToLower(s)
		}
	}
	if len(list) > 0 {
		return strings.ToLower(list[0])
	}
	return ""
}

// allowsNull reports whether null is a valid value of sc.
func allowsNull(sc *schema) bool {
	if sc.Nullable {
		return true
	}
	t := bytes.TrimSpace(sc.Type)
	if len(t) > 0 && t[0] == '[' {
		var list []string
		_ = json.Unmarshal(t, &list)
		for _, s := range list {
			if strings.EqualFold(s, "null") {
				return true
			}
		}
	}
	for _, alts := range [][]*schema{sc.AnyOf, sc.OneOf} {
		for _, alt := range alts {
			if alt != nil && schemaType(alt) == "null" {
				return true
			}
		}
	}
	return false
}

func appendRaw(b []byte, raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(b, "null"...)
	}
	return append(b, buf.Bytes()...)
}

// merged returns sc with its allOf subschemas folded in (properties
// merged, the first type, enum, const and format found).
func (g *schemaGen) merged(sc *schema, depth int) *schema {
	m := *sc
	m.AllOf = nil
	m.Properties = make(map[string]*schema, len(sc.Properties))
	for k, v := range sc.Properties {
		m.Properties[k] = v
	}
	for _, sub := range sc.AllOf {
		for sub != nil && sub.Ref != "" && depth < maxSchemaDepth {
			sub, depth = g.resolve(sub.Ref), depth+1
		}
		if sub == nil {
			continue
		}
		if len(sub.AllOf) > 0 && depth < maxSchemaDepth {
			sub = g.merged(sub, depth+1)
		}
		for k, v := range sub.Properties {
			if _, ok := m.Properties[k]; !ok {
				m.Properties[k] = v
			}
		}
		if len(m.Type) == 0 {
			m.Type = sub.Type
		}
		if len(m.Enum) == 0 {
			m.Enum = sub.Enum
		}
		if len(m.Const) == 0 {
			m.Const = sub.Const
		}
		if m.Format == "" {
			m.Format = sub.Format
		}
	}
	if len(m.Properties) == 0 && sc.Properties == nil {
		m.Properties = nil
	}
	return &m
}

func (g *schemaGen) value(b []byte, sc *schema, seed uint64, depth int) []byte {
	if sc == nil {
		return appendString(b, vocabulary[seed%uint64(len(vocabulary))])
	}
	if sc.Ref != "" {
		if t := g.resolve(sc.Ref); t != nil && depth < maxSchemaDepth {
			return g.value(b, t, seed, depth+1)
		}
		return append(b, "null"...)
	}
	if len(sc.AllOf) > 0 {
		sc = g.merged(sc, depth)
	}
	if len(sc.Const) > 0 {
		return appendRaw(b, sc.Const)
	}
	if len(sc.Enum) > 0 {
		return appendRaw(b, sc.Enum[seed%uint64(len(sc.Enum))])
	}
	if depth >= maxSchemaDepth-1 && allowsNull(sc) {
		return append(b, "null"...)
	}
	for _, alts := range [][]*schema{sc.AnyOf, sc.OneOf} {
		for _, alt := range alts {
			if alt != nil && schemaType(alt) != "null" {
				return g.value(b, alt, seed, depth+1)
			}
		}
	}
	switch schemaType(sc) {
	case "object":
		b = append(b, '{')
		if depth < maxSchemaDepth {
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
				b = g.value(b, sc.Properties[k], mix(seed^hashString(k)), depth+1)
			}
		}
		return append(b, '}')
	case "array":
		return g.array(b, sc, seed, depth)
	case "integer":
		return strconv.AppendInt(b, integerIn(sc, seed), 10)
	case "number":
		return strconv.AppendFloat(b, numberIn(sc, seed), 'f', -1, 64)
	case "boolean":
		return strconv.AppendBool(b, seed&1 == 1)
	case "null":
		return append(b, "null"...)
	}
	if sc.Format == "" && sc.MinLength == nil && sc.MaxLength == nil {
		nv := uint64(len(vocabulary)) // two words: ASCII, nothing to escape
		b = append(b, '"')
		b = append(b, vocabulary[seed%nv]...)
		b = append(b, ' ')
		b = append(b, vocabulary[mix(seed)%nv]...)
		return append(b, '"')
	}
	return appendString(b, stringIn(sc, seed))
}

func (g *schemaGen) array(b []byte, sc *schema, seed uint64, depth int) []byte {
	b = append(b, '[')
	prefix, item := sc.PrefixItems, sc.Items
	n := len(prefix)
	if item != nil && n == 0 {
		n = 1
	}
	if sc.MinItems.isSet() && int(sc.MinItems.v) > n && (item != nil || len(prefix) == 0) {
		n = int(sc.MinItems.v)
	}
	if sc.MaxItems.isSet() && int(sc.MaxItems.v) < n {
		n = max(int(sc.MaxItems.v), 0)
	}
	n = min(n, maxSchemaItems)
	if depth >= maxSchemaDepth {
		n = 0
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		s := item
		if i < len(prefix) {
			s = prefix[i]
		}
		b = g.value(b, s, mix(seed+1+uint64(i)), depth+1)
	}
	return append(b, ']')
}

// integerIn returns an integer within the bounds of sc: by default 0..99.
func integerIn(sc *schema, seed uint64) int64 {
	lo, hasLo := int64(0), false
	if sc.Minimum.isSet() {
		lo, hasLo = int64(math.Ceil(sc.Minimum.v)), true
		if sc.ExclusiveMinimum.isFlag() && float64(lo) == sc.Minimum.v {
			lo++
		}
	}
	if sc.ExclusiveMinimum.isSet() {
		if l := int64(math.Floor(sc.ExclusiveMinimum.v)) + 1; !hasLo || l > lo {
			lo, hasLo = l, true
		}
	}
	hi, hasHi := int64(0), false
	if sc.Maximum.isSet() {
		hi, hasHi = int64(math.Floor(sc.Maximum.v)), true
		if sc.ExclusiveMaximum.isFlag() && float64(hi) == sc.Maximum.v {
			hi--
		}
	}
	if sc.ExclusiveMaximum.isSet() {
		if h := int64(math.Ceil(sc.ExclusiveMaximum.v)) - 1; !hasHi || h < hi {
			hi, hasHi = h, true
		}
	}
	span := uint64(100)
	var v int64
	switch {
	case hasLo && hasHi:
		if hi < lo {
			return lo
		}
		span = uint64(hi-lo) + 1
		v = lo + int64(seed%span)
	case hasLo:
		v = lo + int64(seed%span)
	case hasHi:
		v = hi - int64(seed%span)
	default:
		v = int64(seed % span)
	}
	if m := sc.MultipleOf; m.isSet() && m.v >= 1 && m.v == math.Trunc(m.v) {
		step := int64(m.v)
		r := v - v%step
		if v < 0 && v%step != 0 {
			r -= step
		}
		if hasLo && r < lo {
			r += step
		}
		if !hasHi || r <= hi {
			v = r
		}
	}
	return v
}

// numberIn returns a number within the bounds of sc: by default 0.5..100.4.
func numberIn(sc *schema, seed uint64) float64 {
	def := float64(seed%1000)/10 + 0.5
	lo, hasLo, loEx := 0.0, false, false
	if sc.Minimum.isSet() {
		lo, hasLo, loEx = sc.Minimum.v, true, sc.ExclusiveMinimum.isFlag()
	}
	if sc.ExclusiveMinimum.isSet() && (!hasLo || sc.ExclusiveMinimum.v >= lo) {
		lo, hasLo, loEx = sc.ExclusiveMinimum.v, true, true
	}
	hi, hasHi, hiEx := 0.0, false, false
	if sc.Maximum.isSet() {
		hi, hasHi, hiEx = sc.Maximum.v, true, sc.ExclusiveMaximum.isFlag()
	}
	if sc.ExclusiveMaximum.isSet() && (!hasHi || sc.ExclusiveMaximum.v <= hi) {
		hi, hasHi, hiEx = sc.ExclusiveMaximum.v, true, true
	}
	var v float64
	switch {
	case hasLo && hasHi:
		if hi <= lo {
			return lo
		}
		v = lo + float64(seed%998+1)/1000*(hi-lo) // strictly inside
	case hasLo:
		v = lo + def
	case hasHi:
		v = hi - def
	default:
		v = def
	}
	if m := sc.MultipleOf; m.isSet() && m.v > 0 {
		r := math.Round(v/m.v) * m.v
		if (!hasLo || r > lo || (r == lo && !loEx)) && (!hasHi || r < hi || (r == hi && !hiEx)) {
			v = r
		} else if r2 := math.Ceil(lo/m.v) * m.v; hasLo && (r2 > lo || !loEx) && (!hasHi || r2 < hi || (r2 == hi && !hiEx)) {
			v = r2
		}
	}
	return v
}

// stringIn returns a string of sc's format, within its length bounds: by
// default two words of the vocabulary.
func stringIn(sc *schema, seed uint64) string {
	nv := uint64(len(vocabulary))
	w1, w2 := vocabulary[seed%nv], vocabulary[mix(seed)%nv]
	var s string
	switch strings.ToLower(sc.Format) {
	case "date-time":
		s = "2024-" + pad2(1+seed%12) + "-" + pad2(1+seed%28) + "T" + pad2(seed%24) + ":" + pad2(seed%60) + ":00Z"
	case "date":
		s = "2024-" + pad2(1+seed%12) + "-" + pad2(1+seed%28)
	case "time":
		s = pad2(seed%24) + ":" + pad2(seed%60) + ":00"
	case "email":
		s = w1 + "." + w2 + "@example.com"
	case "uri", "url", "uri-reference", "iri":
		s = "https://example.com/" + w1 + "/" + w2
	case "hostname":
		s = w1 + ".example.com"
	case "ipv4":
		s = "10." + strconv.FormatUint(seed%256, 10) + "." + strconv.FormatUint((seed>>8)%256, 10) + "." + strconv.FormatUint(1+(seed>>16)%254, 10)
	case "uuid":
		const hex = "0123456789abcdef"
		var u [36]byte
		x, y := mix(seed), mix(seed+1)
		for i, j := 0, 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				u[i] = '-'
				continue
			}
			src := x
			if j >= 16 {
				src = y
			}
			u[i] = hex[(src>>(4*(j%16)))&0xf]
			j++
		}
		u[14] = '4'                      // version 4
		u[19] = hex[8+(mix(seed+2)&0x3)] // variant 10xx
		s = string(u[:])
	default:
		s = w1 + " " + w2
		if sc.MinLength.isSet() {
			for k := uint64(2); len(s) < int(sc.MinLength.v); k++ {
				s += " " + vocabulary[mix(seed+k)%nv]
			}
		}
	}
	if sc.MaxLength.isSet() && len(s) > int(sc.MaxLength.v) {
		s = s[:max(int(sc.MaxLength.v), 0)]
	}
	return s
}

func pad2(v uint64) string {
	return string([]byte{byte('0' + v/10%10), byte('0' + v%10)})
}
