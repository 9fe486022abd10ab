package exchange

import (
	"strconv"
	"strings"

	"github.com/xroute/xroute/config"
)

// matchRule returns the first rule whose every claim pattern matches, or
// nil.
func matchRule(rules []config.IssuerRule, claims map[string]any) *config.IssuerRule {
	for i := range rules {
		if ruleMatches(&rules[i], claims) {
			return &rules[i]
		}
	}
	return nil
}

func ruleMatches(r *config.IssuerRule, claims map[string]any) bool {
	for name, pat := range r.Claims {
		v, ok := claim(claims, name)
		if !ok || !valueMatches(pat, v) {
			return false
		}
	}
	return true
}

// claim finds a claim by name; a dotted name reaches into nested objects
// (kubernetes.io.namespace is claims["kubernetes.io"]["namespace"]). A
// key that itself holds dots is tried whole first.
func claim(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if sub, ok := m[name[:i]].(map[string]any); ok {
			if v, ok := claim(sub, name[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// valueMatches: a string, number or boolean claim matches as its text; a
// list (groups) when one element does; an object never.
func valueMatches(pat string, v any) bool {
	switch v := v.(type) {
	case string:
		return glob(pat, v)
	case float64:
		return glob(pat, strconv.FormatFloat(v, 'f', -1, 64))
	case bool:
		return glob(pat, strconv.FormatBool(v))
	case []any:
		for _, e := range v {
			if _, nested := e.([]any); !nested && valueMatches(pat, e) {
				return true
			}
		}
	}
	return false
}

// glob matches s against a pattern where * is any run of characters
// (slashes included: repo:org/* matches every repository's subject) and ?
// one character. Everything else is literal.
func glob(pat, s string) bool {
	// Iterative matching with one backtrack point: linear in practice and
	// never exponential, whatever the pattern.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pat) && (pat[p] == '?' || pat[p] == s[i]) && pat[p] != '*':
			p++
			i++
		case p < len(pat) && pat[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	return strings.Trim(pat[p:], "*") == ""
}
