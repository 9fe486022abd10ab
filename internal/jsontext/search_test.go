package jsontext

import (
	"bytes"
	"testing"
)

func TestIndexQuoted(t *testing.T) {
	for _, tt := range []struct{ data, quoted string }{
		{`{"model":"x"}`, `"model"`},
		{`{"a":"model","model":1}`, `"model"`}, // a value first
		{`{"amodel":1,"model":2}`, `"model"`},  // the letters without the quote
		{`model":1`, `"model"`},                // no quote before the first match
		{`{"usage":null}`, `"usage"`},
		{`{"x":1}`, `"usage"`},
		{``, `"usage"`},
		{`""usage"`, `"usage"`},
	} {
		if got, want := IndexQuoted([]byte(tt.data), []byte(tt.quoted)), bytes.Index([]byte(tt.data), []byte(tt.quoted)); got != want {
			t.Errorf("IndexQuoted(%s, %s) = %d, want %d", tt.data, tt.quoted, got, want)
		}
	}
}

func FuzzIndexQuoted(f *testing.F) {
	f.Add([]byte(`{"model":"x","usage":null}`), "model")
	f.Fuzz(func(t *testing.T, data []byte, word string) {
		quoted := []byte(`"` + word + `"`)
		if got, want := IndexQuoted(data, quoted), bytes.Index(data, quoted); got != want {
			t.Fatalf("IndexQuoted(%q, %q) = %d, want %d", data, quoted, got, want)
		}
	})
}
