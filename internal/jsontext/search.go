package jsontext

import "bytes"

// IndexQuoted is bytes.Index(data, quoted) for a quoted word such as
// `"model"`, found by its letters: '"', its first byte, is the commonest
// byte of JSON text, and a search led by it stops at every string. For a
// word whose first letter is rare in JSON (model, usage) this is several
// times faster; for one led by a common letter (error) it is not.
func IndexQuoted(data, quoted []byte) int {
	word := quoted[1:]
	for off := 0; ; {
		j := bytes.Index(data[off:], word)
		if j < 0 {
			return -1
		}
		if k := off + j; k > 0 && data[k-1] == '"' {
			return k - 1
		}
		off += j + 1
	}
}
