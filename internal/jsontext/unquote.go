package jsontext

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Unquote decodes a JSON string literal (quotes included) as encoding/json
// decodes it into a string, and reports whether it could: false for
// anything but a well-formed literal of valid UTF-8 (the caller then lets
// a decoder say what is wrong, or coerce what it coerces).
//
// Why: segmentio/encoding/json re-encodes every rune of a string that has
// an escape (it coerces invalid UTF-8 as it copies), ~250 MB/s on code with
// its \n and \t; an agent's turn is hundreds of kilobytes of such text.
// This copies the runs between escapes whole, ~1.2 GB/s.
func Unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	s := raw[1 : len(raw)-1]
	if !plainRun(s) {
		return "", false
	}
	i := bytes.IndexByte(s, '\\')
	if i < 0 {
		return string(s), true
	}
	out := make([]byte, 0, len(s))
	for {
		out = append(out, s[:i]...)
		s = s[i:]
		if len(s) < 2 {
			return "", false
		}
		n := 2
		switch c := s[1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[2:])
			if !ok {
				return "", false
			}
			n = 6
			if utf16.IsSurrogate(r) {
				// As encoding/json: a valid pair is one rune; anything else
				// is U+FFFD, and what follows is read on its own.
				r2, ok := rune(-1), false
				if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
					r2, ok = hex4(s[8:])
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r, n = dec, 12
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
		s = s[n:]
		if i = bytes.IndexByte(s, '\\'); i < 0 {
			out = append(out, s...)
			break
		}
	}
	return unsafe.String(unsafe.SliceData(out), len(out)), true // out is not written again
}

// plainRun reports whether s can be the inside of a literal that Unquote
// reads: valid UTF-8, no control byte, no quote that is not escaped.
func plainRun(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		// Eight bytes at a time while none is a control byte, a quote or
		// a backslash (the bytes of other runes pass).
		for i+8 <= len(s) {
			x := load8(unsafe.String(unsafe.SliceData(s), len(s)), i)
			if ((x-0x20*lsb)&^x|zero(x^'"'*lsb)|zero(x^'\\'*lsb))&msb != 0 {
				break
			}
			i += 8
		}
		if i >= len(s) {
			break
		}
		switch c := s[i]; {
		case c < 0x20:
			return false
		case c == '\\':
			i++ // the escaped byte: Unquote checks it
		case c == '"':
			return false
		}
	}
	return true
}

// hex4 reads four hex digits.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// String is a string field that can hold long text (a turn, a file a tool
// read): it decodes by Unquote, several times faster than either decoder
// on text with escapes, and by encoding/json where Unquote declines (a
// literal that is not a string, or not valid UTF-8), so that a decoder's
// result is encoding/json's either way.
type String string

// UnmarshalJSON implements json.Unmarshaler.
func (t *String) UnmarshalJSON(raw []byte) error {
	if s, ok := Unquote(raw); ok {
		*t = String(s)
		return nil
	}
	if string(raw) == "null" {
		return nil // as into a string: left as it is
	}
	return json.Unmarshal(raw, (*string)(t))
}
