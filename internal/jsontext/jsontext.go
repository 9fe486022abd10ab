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
	html := safe == &htmlSafe
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a look: message text is
		// mostly such runs, and a byte at a time was ~175 MB/s.
		for i+8 <= len(s) && !needsLook(load8(s, i), html) {
			i += 8
		}
		if i >= len(s) {
			break
		}
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

const (
	lsb = 0x0101010101010101 // 1 in every byte
	msb = 0x8080808080808080 // the high bit of every byte
)

// load8 is the eight bytes of s at i, the first in the low byte (one load
// where the compiler can).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// needsLook reports whether any byte of x is one appendEscaped does not
// copy as it is: a control byte, '"', '\', the start of a multi-byte
// rune (not ASCII), and with html '<', '>' or '&'. Each term is the exact
// any-byte test of "Bit Twiddling Hacks" (a byte less than n: (x - n·lsb)
// &^ x has its high bit set; a zero byte of x^c·lsb: one equal to c), so
// no such byte goes unseen; a false alarm only costs the byte-wise path.
func needsLook(x uint64, html bool) bool {
	m := x | (x-0x20*lsb)&^x
	m |= zero(x^'"'*lsb) | zero(x^'\\'*lsb)
	if html {
		m |= zero(x^'<'*lsb) | zero(x^'>'*lsb) | zero(x^'&'*lsb)
	}
	return m&msb != 0
}

// zero has the high bit of a byte set where v has a zero byte (exactly
// when v has any).
func zero(v uint64) uint64 { return (v - lsb) &^ v }
