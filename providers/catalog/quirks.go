package catalog

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Quirks describe, as data, how one provider (or one model) departs from
// the OpenAI chat-completions request format. Apply rewrites an
// OpenAI-shaped request body accordingly, before it goes upstream.
//
// Paths use gjson/sjson dot syntax ("stream_options", "response_format.type").
// A path may hold one "#" segment to address every element of an array:
// "messages.#.name" is the name field of each message.
type Quirks struct {
	// Drop lists fields removed from the body when present.
	Drop []string `yaml:"drop,omitempty"`
	// Rename maps a field to the name the provider expects
	// (max_completion_tokens -> max_tokens). When the target is already
	// set, the target wins and the source is removed.
	Rename map[string]string `yaml:"rename,omitempty"`
	// Reject lists fields the provider cannot honour and that must not be
	// silently dropped because the answer would change meaning (tools on a
	// model without tool calling). "path" matches when the field is present
	// and not null or an empty array; "path=value" matches when the field's
	// string form equals value ("response_format.type=json_schema").
	// Apply returns an *UnsupportedError so the router can pick another
	// deployment.
	Reject []string `yaml:"reject,omitempty"`
	// MaxN is the largest n (number of choices) the provider accepts; 0
	// means no limit is known. A larger n is rejected like Reject.
	MaxN int64 `yaml:"max_n,omitempty"`
}

// ErrUnsupported is matched (errors.Is) by every *UnsupportedError.
var ErrUnsupported = errors.New("unsupported by this deployment")

// UnsupportedError says which request parameter a deployment cannot serve.
type UnsupportedError struct {
	Param  string
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("parameter %q %s", e.Param, e.Reason)
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// IsZero reports whether q changes nothing.
func (q Quirks) IsZero() bool {
	return len(q.Drop) == 0 && len(q.Rename) == 0 && len(q.Reject) == 0 && q.MaxN == 0
}

// Merge returns the union of q and o (o's renames win on conflict, the
// smaller non-zero MaxN wins). Neither input is modified.
func (q Quirks) Merge(o Quirks) Quirks {
	out := Quirks{MaxN: q.MaxN}
	if o.MaxN > 0 && (out.MaxN == 0 || o.MaxN < out.MaxN) {
		out.MaxN = o.MaxN
	}
	out.Drop = unionStrings(q.Drop, o.Drop)
	out.Reject = unionStrings(q.Reject, o.Reject)
	if len(q.Rename)+len(o.Rename) > 0 {
		out.Rename = make(map[string]string, len(q.Rename)+len(o.Rename))
		for k, v := range q.Rename {
			out.Rename[k] = v
		}
		for k, v := range o.Rename {
			out.Rename[k] = v
		}
	}
	return out
}

func unionStrings(a, b []string) []string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make([]string, 0, len(a)+len(b))
	for _, s := range slices.Concat(a, b) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// clone deep-copies q so callers cannot alter catalog data through it.
func (q Quirks) clone() Quirks { return Quirks{}.Merge(q) }

// Apply rewrites an OpenAI chat-completions request body: it first checks
// Reject and MaxN (returning an *UnsupportedError, body untouched), then
// applies Rename (in key order) and Drop. A body that is not a JSON object
// is an error. When nothing matches, the input slice is returned as is.
func (q Quirks) Apply(body []byte) ([]byte, error) {
	if q.IsZero() {
		return body, nil
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return nil, errors.New("quirks: request body is not a JSON object")
	}
	for _, rule := range q.Reject {
		path, want, hasValue := strings.Cut(rule, "=")
		res := gjson.GetBytes(body, path)
		if hasValue {
			if matchValue(res, want, strings.Contains(path, "#")) {
				return nil, &UnsupportedError{Param: path, Reason: fmt.Sprintf("= %q is not supported", want)}
			}
			continue
		}
		if present(res) {
			return nil, &UnsupportedError{Param: path, Reason: "is not supported"}
		}
	}
	if q.MaxN > 0 {
		if n := gjson.GetBytes(body, "n"); n.Exists() && n.Int() > q.MaxN {
			return nil, &UnsupportedError{Param: "n", Reason: fmt.Sprintf("must be at most %d, got %s", q.MaxN, n.Raw)}
		}
	}
	out := body
	var err error
	keys := make([]string, 0, len(q.Rename))
	for k := range q.Rename {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, from := range keys {
		to := q.Rename[from]
		v := gjson.GetBytes(out, from)
		if !v.Exists() {
			continue
		}
		if !gjson.GetBytes(out, to).Exists() {
			if out, err = sjson.SetRawBytes(out, to, []byte(v.Raw)); err != nil {
				return nil, fmt.Errorf("quirks: rename %s to %s: %w", from, to, err)
			}
		}
		if out, err = sjson.DeleteBytes(out, from); err != nil {
			return nil, fmt.Errorf("quirks: rename %s: %w", from, err)
		}
	}
	for _, path := range q.Drop {
		if out, err = deletePath(out, path); err != nil {
			return nil, fmt.Errorf("quirks: drop %s: %w", path, err)
		}
	}
	return out, nil
}

// present reports whether a field carries a value worth honouring.
func present(r gjson.Result) bool {
	if !r.Exists() || r.Type == gjson.Null {
		return false
	}
	if r.IsArray() {
		// Also covers "a.#.b" queries, which yield an array of matches.
		return len(r.Array()) > 0
	}
	return true
}

// matchValue reports whether res (or, for a "#" path, any element of it)
// has the string form want.
func matchValue(res gjson.Result, want string, each bool) bool {
	if each && res.IsArray() {
		for _, e := range res.Array() {
			if e.String() == want {
				return true
			}
		}
		return false
	}
	return res.Exists() && res.String() == want
}

// deletePath deletes path, expanding one "#" segment over an array.
func deletePath(body []byte, path string) ([]byte, error) {
	prefix, suffix, each := strings.Cut(path, ".#.")
	if !each {
		if !gjson.GetBytes(body, path).Exists() {
			return body, nil
		}
		return sjson.DeleteBytes(body, path)
	}
	n := int(gjson.GetBytes(body, prefix+".#").Int())
	var err error
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s.%d.%s", prefix, i, suffix)
		if !gjson.GetBytes(body, p).Exists() {
			continue
		}
		if body, err = sjson.DeleteBytes(body, p); err != nil {
			return nil, err
		}
	}
	return body, nil
}
