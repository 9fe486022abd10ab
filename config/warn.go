package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Warning is a setting xroute does not know: a key of the config file or
// an XROUTE_* environment variable that matches nothing, most often a
// typo. It does not stop the start (an older or newer file still runs),
// but the setting it meant to change is not changed, so the start-up log
// names it, and the known one it most likely meant.
type Warning struct {
	// Source is the config file's path, or "environment".
	Source string
	// Name is the unknown key's dotted path (providers[0].base_ur) or the
	// variable's name.
	Name string
	// Line is the key's line in the file (0 for a variable).
	Line int
	// Suggestion is the closest known key or variable ("" when none is
	// close).
	Suggestion string
}

func (w Warning) String() string {
	var b strings.Builder
	if w.Line > 0 {
		fmt.Fprintf(&b, "%s line %d: unknown key %s", w.Source, w.Line, w.Name)
	} else {
		fmt.Fprintf(&b, "unknown %s variable %s", w.Source, w.Name)
	}
	if w.Suggestion != "" {
		fmt.Fprintf(&b, ": did you mean %s?", w.Suggestion)
	}
	b.WriteString(" (ignored)")
	return b.String()
}

// OtherEnv are the XROUTE_* variables that are not config settings: read
// by the command line or by scripts around it. Together with EnvNames
// they are every variable xroute knows (`xroute config env` lists both).
var OtherEnv = [][2]string{
	{"XROUTE_CONFIG", "the config file of serve and of the CLI (--config)"},
	{"XROUTE_URL", "CLI: the admin API of a running server (with XROUTE_ADMIN_KEY)"},
	{"XROUTE_ADMIN_KEY", "CLI: the admin key for XROUTE_URL"},
	{"XROUTE_DATA", "serve: the data directory (--data; --demo defaults to a per-user one)"},
	{"XROUTE_KEY", "a caller key for clients configured by name (Codex's env_key)"},
	{"XROUTE_BIN", "e2e: the binary to test instead of building one"},
	{"XROUTE_CODEX_BIN", "tests: the Codex CLI to run through xroute"},
	{"XROUTE_CLAUDE_BIN", "tests: the Claude Code CLI to run through xroute"},
}

// envTestPrefix marks the variables of the test suites
// (XROUTE_TEST_POSTGRES_URL, ...): never warned about.
const envTestPrefix = "XROUTE_TEST_"

// envWarnings names every XROUTE_* variable in environ that xroute does
// not know, sorted, with the closest known one.
func envWarnings(environ []string) []Warning {
	known := map[string]bool{}
	var names []string
	for _, kv := range EnvNames() {
		known[kv[0]] = true
		names = append(names, kv[0])
	}
	for _, kv := range OtherEnv {
		known[kv[0]] = true
		names = append(names, kv[0])
	}
	var out []Warning
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) || strings.HasPrefix(k, envTestPrefix) || known[k] {
			continue
		}
		out = append(out, Warning{Source: "environment", Name: k, Suggestion: closest(k, names)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// yamlWarnings walks the file's tree against Config's yaml tags and names
// every key that matches no field.
func yamlWarnings(source string, root *yaml.Node) []Warning {
	if root == nil || len(root.Content) == 0 {
		return nil
	}
	paths := knownPaths()
	var out []Warning
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			walk(n.Alias, t, path)
		case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				if k.Value == "<<" { // a merge key: its mapping's keys are this one's
					walk(v, t, path)
					continue
				}
				ft, ok := fields[k.Value]
				if !ok {
					out = append(out, Warning{Source: source, Name: p, Line: k.Line, Suggestion: suggestPath(p, paths)})
					continue
				}
				walk(v, ft, p)
			}
		case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			for i, c := range n.Content {
				walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
		// Maps (provider headers) take any key; a scalar where a mapping
		// belongs is a type error the decoder reports.
	}
	walk(root.Content[0], reflect.TypeOf(Config{}), "")
	return out
}

// yamlFields maps a struct's yaml keys to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		out[key] = f.Type
	}
	return out
}

// knownPaths lists every key the file may set as a dotted path, list
// elements as [] (providers[].base_url).
func knownPaths() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for name, ft := range yamlFields(t) {
			p := join(path, name)
			out = append(out, p)
			switch {
			case ft.Kind() == reflect.Struct && ft != durationType:
				walk(ft, p)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), p+"[]")
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	sort.Strings(out)
	return out
}

var listIndex = regexp.MustCompile(`\[\d+\]`)

// suggestPath finds the known path closest to p, comparing with list
// indexes taken out, and gives it back with p's indexes put in.
func suggestPath(p string, known []string) string {
	idx := listIndex.FindAllString(p, -1)
	best := closest(listIndex.ReplaceAllString(p, "[]"), known)
	for _, i := range idx {
		best = strings.Replace(best, "[]", i, 1)
	}
	return best
}

// closest is the known name s most likely meant, or "" when none is
// near. A name that ends like s after a section s lacks comes first
// (XROUTE_VAULT_MASTER_KEY for XROUTE_MASTER_KEY, server.addr for a
// top-level addr): a dropped section is the likelier slip. Otherwise the
// nearest by edit distance, when at most a third of the letters differ.
func closest(s string, candidates []string) string {
	suffix := suffixAfterPrefix(s)
	best, bestD, bestSuffix := "", -1, false
	for _, c := range candidates {
		d := EditDistance(strings.ToLower(s), strings.ToLower(c))
		isSuffix := strings.HasSuffix(c, suffix)
		if !isSuffix && d > max(len(s), len(c))/3 {
			continue
		}
		switch {
		case bestD < 0, isSuffix && !bestSuffix:
		case bestSuffix && !isSuffix:
			continue
		case d > bestD, d == bestD && c > best:
			continue
		}
		best, bestD, bestSuffix = c, d, isSuffix
	}
	return best
}

// suffixAfterPrefix is what a known name must end with to be what s meant
// with a section missing or misplaced: s after XROUTE_, s's last dotted
// element, or a top-level key as a key of some section.
func suffixAfterPrefix(s string) string {
	if rest, ok := strings.CutPrefix(s, envPrefix); ok {
		return "_" + rest
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		return s[i:]
	}
	return "." + s // a top-level key that belongs in a section
}

// EditDistance is the Levenshtein distance between a and b, in bytes
// (setting, variable, command and flag names are ASCII): what the
// did-you-mean of config warnings and of the CLI go by.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
