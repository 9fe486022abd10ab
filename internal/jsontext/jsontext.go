// Package jsontext writes JSON text by hand where encoding/json's
// reflection is too dear for the hot path (a spool line per request, an
// event per stream chunk), byte for byte as encoding/json writes it. The
// mock upstreams (loadtest/mock) use the same escaper without the HTML
// escapes, as the providers' own APIs write their JSON.
package jsontext

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// safe tables: the ASCII bytes written as they are, with and without
// encoding/json's HTML escaping of <, > and &. A table lookup keeps the
// per-byte loop as cheap as one comparison chain.
var htmlSafe, plainSafe = safeTables()

func safeTables() (html, plain [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
		html[c] = plain[c] && c != '<' && c != '>' && c != '&'
	}
	return html, plain
}

// AppendString appends s quoted as encoding/json quotes it: HTML
// characters and U+2028/U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s, &htmlSafe)
	return append(b, '"')
}

// AppendEscaped appends s escaped for the inside of a JSON string literal,
// as AppendString but without quotes and leaving <, > and & as they are
// (how most upstream APIs write JSON).
func AppendEscaped(b []byte, s string) []byte {
	return appendEscaped(b, s, &plainSafe)
}

func appendEscaped(b []byte, s string, safe *[utf8.RuneSelf]bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
