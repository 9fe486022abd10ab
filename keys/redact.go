package keys

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Redacted is what a secret is replaced with.
const Redacted = "[redacted]"

// minSecretLen is the shortest known secret Redact searches for: a demo
// key "test" must not blank out every "test" of every message. Real
// provider keys are far longer.
const minSecretLen = 8

// minTokenLen is the shortest credential taken for one after "Bearer " or
// "x-api-key: " (so "Bearer token" in prose stays readable).
const minTokenLen = 8

// Redactor removes secrets from text on its way to a caller or a log: every
// provider key it was told about (the config's and the vault's, kept up to
// date as keys are added, rotated or deleted), and every string shaped like
// a credential whoever owns it — Authorization and x-api-key echoes
// ("Bearer …", "x-api-key: …"), OpenAI and Anthropic keys (sk-…), Google
// API keys (AIza…), AWS access key ids (AKIA…, ASIA…), xroute's own keys
// (xr-…, xra-…). Invalid UTF-8 is replaced with U+FFFD at the same time.
//
// It is meant for error texts and log lines, not for every chunk of a
// successful stream: text with nothing to redact costs one scan per known
// secret plus one pass over its bytes, and allocates nothing. The zero
// value is not usable; a nil *Redactor redacts shapes only. Safe for
// concurrent use.
type Redactor struct {
	mu      sync.Mutex
	sources map[string][]string
	secrets atomic.Pointer[[]string] // longest first, deduplicated
}

// NewRedactor returns a redactor that knows no secret yet.
func NewRedactor() *Redactor {
	r := &Redactor{sources: map[string][]string{}}
	r.secrets.Store(&[]string{})
	return r
}

// Set replaces the secrets known under source (e.g. "config",
// "vault:openai"); an empty list forgets them. Secrets shorter than 8
// bytes are ignored, and a secret made of several credentials
// ("ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]", as Bedrock takes them)
// is searched for whole and part by part.
func (r *Redactor) Set(source string, secrets ...string) { r.update(source, false, secrets) }

// Add adds secrets to those known under source (a provider's vault keys:
// one disabled or deleted may still be in a request in flight, so it is
// kept until the process ends).
func (r *Redactor) Add(source string, secrets ...string) { r.update(source, true, secrets) }

func (r *Redactor) update(source string, add bool, secrets []string) {
	var list []string
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		list = appendSecret(list, s)
		if strings.Contains(s, ":") {
			for _, part := range strings.Split(s, ":") {
				list = appendSecret(list, part)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		list = append(list, r.sources[source]...)
	}
	if len(list) == 0 {
		delete(r.sources, source)
	} else {
		r.sources[source] = list
	}
	var all []string
	for _, l := range r.sources {
		all = append(all, l...)
	}
	// Longest first, so that a secret containing another is replaced
	// whole.
	slices.SortFunc(all, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	all = slices.Compact(all)
	r.secrets.Store(&all)
}

func appendSecret(list []string, s string) []string {
	if len(s) < minSecretLen {
		return list
	}
	return append(list, s)
}

// Redact returns s without secrets (see Redactor). It returns s itself
// when there was nothing to change.
func (r *Redactor) Redact(s string) string {
	if r != nil {
		for _, sec := range *r.secrets.Load() {
			if len(sec) <= len(s) && strings.Contains(s, sec) {
				s = strings.ReplaceAll(s, sec, Redacted)
			}
		}
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return redactShapes(s)
}

// RedactBytes is Redact for a byte slice (a JSON body relayed as it came);
// it returns b itself when there was nothing to change. Replacements never
// contain a quote or a backslash, so valid JSON stays valid.
func (r *Redactor) RedactBytes(b []byte) []byte {
	s := string(b)
	if out := r.Redact(s); out != s {
		return []byte(out)
	}
	return b
}

// redactShapes replaces every credential-shaped run in s.
func redactShapes(s string) string {
	var b strings.Builder
	last := 0 // s[last:i] is not written yet
	for i := 0; i < len(s); {
		if !trigger[s[i]] {
			i++
			continue
		}
		start, end := matchShape(s, i)
		if end <= start {
			i++
			continue
		}
		if b.Len() == 0 && last == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:start])
		b.WriteString(Redacted)
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// trigger marks the bytes a credential shape can start with.
var trigger = func() (t [256]bool) {
	for _, c := range "sAaXxBb" {
		t[c] = true
	}
	return
}()

// matchShape reports the secret part [start, end) of a credential shape
// that begins at s[i], or end <= start when none does.
func matchShape(s string, i int) (start, end int) {
	if i > 0 && isWord(s[i-1]) {
		return 0, 0 // inside a word: "disk-…", "TASKS"
	}
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, "sk-"):
		// OpenAI (sk-proj-…, sk-svcacct-…), Anthropic (sk-ant-api03-…),
		// DeepSeek, and the many compatible APIs that copied the prefix.
		if n := span(rest[3:], isKeyChar); n >= 20 {
			return i, i + 3 + n
		}
	case strings.HasPrefix(rest, "AIza"):
		if n := span(rest[4:], isKeyChar); n >= 30 {
			return i, i + 4 + n
		}
	case strings.HasPrefix(rest, "AKIA"), strings.HasPrefix(rest, "ASIA"):
		if n := span(rest[4:], isUpperAlnum); n >= 16 {
			return i, i + 4 + n
		}
	case strings.HasPrefix(rest, AdminPrefix):
		if n := span(rest[len(AdminPrefix):], isAlnum); n >= bodyLen {
			return i, i + len(AdminPrefix) + n
		}
	case strings.HasPrefix(rest, CallerPrefix):
		if n := span(rest[len(CallerPrefix):], isAlnum); n >= bodyLen {
			return i, i + len(CallerPrefix) + n
		}
	}
	// "Bearer <token>" and "x-api-key: <token>" (also api-key, api_key,
	// apikey, x-goog-api-key), in any case.
	if n := prefixFold(rest, "bearer"); n > 0 {
		return credentialAfter(s, i+n, true)
	}
	for _, name := range [...]string{"x-goog-api-key", "x-api-key", "api-key", "api_key", "apikey"} {
		if n := prefixFold(rest, name); n > 0 {
			return credentialAfter(s, i+n, false)
		}
	}
	return 0, 0
}

// credentialAfter finds the credential following a scheme or header name
// that ends at s[i]: blanks (a scheme), or blanks, quotes, ':' and '='
// (a header or parameter), then a token of at least minTokenLen.
func credentialAfter(s string, i int, scheme bool) (start, end int) {
	j := i
	for j < len(s) && (s[j] == ' ' || s[j] == '\t' || (!scheme && (s[j] == ':' || s[j] == '=' || s[j] == '"' || s[j] == '\''))) {
		j++
	}
	if j == i || j-i > 8 {
		return 0, 0
	}
	n := span(s[j:], isTokenChar)
	if n < minTokenLen {
		return 0, 0
	}
	return j, j + n
}

// prefixFold returns len(p) when s starts with p, ASCII case folded.
func prefixFold(s, p string) int {
	if len(s) < len(p) {
		return 0
	}
	for k := 0; k < len(p); k++ {
		c := s[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[k] {
			return 0
		}
	}
	return len(p)
}

func span(s string, ok func(byte) bool) int {
	n := 0
	for n < len(s) && ok(s[n]) {
		n++
	}
	return n
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isUpperAlnum(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' }

func isWord(c byte) bool { return isAlnum(c) || c == '_' }

func isKeyChar(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// isTokenChar is RFC 6750's b64token, plus ':' (an AWS key pair).
func isTokenChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' || c == ':'
}

// RedactCore wraps a zap core so that every entry's message and every
// string, error and stringer field pass through r before they are
// written: a provider's words quoting a key, or a caller's key pasted into
// a model name, never reach a log. Other field types (numbers, objects)
// are written as they are.
func RedactCore(core zapcore.Core, r *Redactor) zapcore.Core {
	return &redactCore{Core: core, r: r}
}

type redactCore struct {
	zapcore.Core
	r *Redactor
}

func (c *redactCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactCore{Core: c.Core.With(c.fields(fields)), r: c.r}
}

func (c *redactCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *redactCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = c.r.Redact(e.Message)
	return c.Core.Write(e, c.fields(fields))
}

// fields returns fields with their text redacted, copied only when one
// changes.
func (c *redactCore) fields(fields []zapcore.Field) []zapcore.Field {
	out := fields
	set := func(i int, f zapcore.Field) {
		if &out[0] == &fields[0] {
			out = slices.Clone(fields)
		}
		out[i] = f
	}
	for i, f := range fields {
		switch f.Type {
		case zapcore.StringType:
			if s := c.r.Redact(f.String); s != f.String {
				f.String = s
				set(i, f)
			}
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok && err != nil {
				msg, ok := safeText(err.Error)
				if s := c.r.Redact(msg); ok && s != msg {
					set(i, zap.NamedError(f.Key, redactedError(s)))
				}
			}
		case zapcore.StringerType:
			if v, ok := f.Interface.(fmt.Stringer); ok && v != nil {
				msg, ok := safeText(v.String)
				if s := c.r.Redact(msg); ok && s != msg {
					set(i, zap.String(f.Key, s))
				}
			}
		}
	}
	return out
}

// safeText calls text, which may panic (a nil pointer behind an
// interface): zap itself would recover and print the panic, so the field
// is left to it then.
func safeText(text func() string) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return text(), true
}

// redactedError is an error's text after redaction.
type redactedError string

func (e redactedError) Error() string { return string(e) }
