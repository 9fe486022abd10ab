package jsontext

import (
	"encoding/json"
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
