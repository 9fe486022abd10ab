package jsontext

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain text", "a\"b\\c", "\n\r\t\b\f\x00\x1f\x7f", "<script>&amp;</script>",
		"\u2028\u2029", "é 😀 日本", "bad\xffutf8\xc3", "\xed\xa0\x80 surrogate half"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// FuzzAppendStringMatchesEncodingJSON holds both escapers to encoding/json
// (with and without its HTML escaping) on any string, the eight-byte skip
// included: strings of every length around it, each byte at each offset.
func FuzzAppendStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "plain text of some length", "0123456\"89abcdef", "abcdefgh<ijklmnop&", "\x00\x7f\x80\xff", "é 😀 \u2028 x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		plain := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := AppendEscaped(nil, s); !bytes.Equal(got, plain[1:len(plain)-1]) {
			t.Fatalf("AppendEscaped(%q) = %s, want %s", s, got, plain[1:len(plain)-1])
		}
	})
}

// BenchmarkAppendString is the escaper over message text: prose and code.
func BenchmarkAppendString(b *testing.B) {
	text := strings.Repeat("func (s *Server) handle(w http.ResponseWriter, r *http.Request) {\n\tif err := s.check(r); err != nil {\n\t\thttp.Error(w, err.Error(), 400)\n\t}\n}\n"+
		"The quick brown fox jumps over the lazy dog, and then it writes a paragraph of ordinary prose about it. ", 200)
	b.SetBytes(int64(len(text)))
	buf := make([]byte, 0, 2*len(text))
	for b.Loop() {
		buf = AppendString(buf[:0], text)
	}
}

// FuzzUnquoteMatchesEncodingJSON holds Unquote to encoding/json's decode
// of a string: where Unquote says it read the literal, the same string;
// and it reads every literal encoding/json writes.
func FuzzUnquoteMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`""`, `"plain"`, `"a\nb\t\"c\"\\ \/ \b\f\r"`, `"\u00e9\u2028\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d\ude00"`,
		`"\ud83d\u0041"`, `"\u12"`, `"\x"`, "\"a\x01b\"", `"a"b"`, "\"\xff\"", `"é 日本 \\u"`, `"0123456789abcdef\n0123456789abcdef"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := Unquote(raw)
		var want string
		err := json.Unmarshal(raw, &want)
		if ok && (err != nil || got != want) {
			t.Fatalf("Unquote(%q) = %q, encoding/json %q (%v)", raw, got, want, err)
		}
		// Every literal encoding/json writes is read.
		if err == nil {
			lit, _ := json.Marshal(want)
			if got, ok := Unquote(lit); !ok || got != want {
				t.Fatalf("Unquote(%s) = %q, %v; want %q", lit, got, ok, want)
			}
		}
	})
}
