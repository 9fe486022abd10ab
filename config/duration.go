package config

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// ParseDuration reads a duration as time.ParseDuration does, plus the units
// d (24h) and w (7d), alone or combined ("30d", "1w2d3h", "1.5d"). One
// syntax for every duration xroute takes (CLI flags, the config file,
// XROUTE_* variables, the admin API), because key lifetimes and rotation
// overlaps are counted in days and "720h" is a sum nobody should do.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, durationError(orig)
	}
	if !strings.ContainsAny(s, "dw") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, durationError(orig)
		}
		return d, nil
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	var total float64 // nanoseconds; checked against the int64 range below
	for s != "" {
		// one element: a number, then a unit
		i := 0
		for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
			i++
		}
		j := i
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		num, unit := s[:i], s[i:j]
		if num == "" || unit == "" {
			return 0, durationError(orig)
		}
		var d float64
		switch unit {
		case "d", "w":
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, durationError(orig)
			}
			d = v * float64(day)
			if unit == "w" {
				d = v * float64(week)
			}
		default:
			v, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, durationError(orig)
			}
			d = float64(v)
		}
		total += d
		s = s[j:]
	}
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("invalid duration %q: too long", orig)
	}
	if neg {
		total = -total
	}
	return time.Duration(total), nil
}

func durationError(s string) error {
	return fmt.Errorf("invalid duration %q: want a number and a unit (ns, us, ms, s, m, h, d, w), e.g. 90s, 36h, 30d, 1w2d", s)
}

// FormatDuration prints d in the largest units ParseDuration reads back,
// "30d" rather than "720h0m0s".
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	var b strings.Builder
	b.WriteString(sign)
	if d%time.Second != 0 || d < time.Minute {
		// sub-second precision, or short: Go's form is the clearer one
		if d >= day {
			fmt.Fprintf(&b, "%dd", d/day)
			d %= day
		}
		if d > 0 {
			b.WriteString(d.String())
		}
		return b.String()
	}
	for _, u := range []struct {
		n time.Duration
		s string
	}{{week, "w"}, {day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d >= u.n {
			fmt.Fprintf(&b, "%d%s", d/u.n, u.s)
			d %= u.n
		}
	}
	return b.String()
}

// Duration is a time.Duration read with ParseDuration: from YAML (a string
// such as 30d, or an integer of nanoseconds as yaml reads time.Duration)
// and as a CLI flag (it is a pflag.Value).
type Duration time.Duration

// String is the flag's value in help and defaults.
func (d *Duration) String() string { return FormatDuration(time.Duration(*d)) }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Type names the value in flag help.
func (d *Duration) Type() string { return "duration" }

// UnmarshalYAML reads a duration string, or an integer of nanoseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30s, 24h or 30d", n.Line)
	}
	if n.Tag == "!!int" {
		v, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*d = Duration(v)
		return nil
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration the way ParseDuration reads it.
func (d Duration) MarshalYAML() (any, error) { return FormatDuration(time.Duration(d)), nil }

// expandDurations lets the config file use days and weeks in its
// time.Duration fields, which the yaml decoder reads with
// time.ParseDuration only: every such value written with d or w is
// rewritten, in the source, to Go's form before decoding. The rewrite is
// in place on its line, so the decoder's "line N" messages stay right.
// Values that do not parse are left for the decoder to report.
func expandDurations(data []byte, root *yaml.Node, target any) []byte {
	t := reflect.TypeOf(target)
	type edit struct {
		line, col int
		old, new  string
	}
	var edits []edit
	var walk func(n *yaml.Node, t reflect.Type)
	walk = func(n *yaml.Node, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t == durationType:
			if n.Kind != yaml.ScalarNode || !strings.ContainsAny(n.Value, "dw") {
				return
			}
			if d, err := ParseDuration(n.Value); err == nil {
				edits = append(edits, edit{n.Line, n.Column, n.Value, d.String()})
			}
		case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if f, ok := yamlField(t, n.Content[i].Value); ok {
					walk(n.Content[i+1], f.Type)
				}
			}
		case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem())
			}
		case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, t.Elem())
			}
		}
	}
	walk(root, t)
	if len(edits) == 0 {
		return data
	}
	// right to left within a line, so earlier columns stay valid
	sort.Slice(edits, func(i, j int) bool {
		if edits[i].line != edits[j].line {
			return edits[i].line < edits[j].line
		}
		return edits[i].col > edits[j].col
	})
	lines := bytes.SplitAfter(data, []byte("\n"))
	for _, e := range edits {
		if e.line < 1 || e.line > len(lines) {
			continue
		}
		ln := lines[e.line-1]
		// yaml counts columns in characters
		off := 0
		for c := 1; c < e.col && off < len(ln); c++ {
			_, size := utf8.DecodeRune(ln[off:])
			off += size
		}
		rest := ln[off:]
		if len(rest) > 0 && (rest[0] == '"' || rest[0] == '\'') {
			off++
			rest = rest[1:]
		}
		if !bytes.HasPrefix(rest, []byte(e.old)) {
			continue
		}
		var b []byte
		b = append(b, ln[:off]...)
		b = append(b, e.new...)
		b = append(b, rest[len(e.old):]...)
		lines[e.line-1] = b
	}
	return bytes.Join(lines, nil)
}

// yamlField finds the struct field a YAML key decodes into.
func yamlField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := strings.Split(f.Tag.Get("yaml"), ",")[0]; name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
