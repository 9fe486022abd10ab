package billing

// The pre-tokenizer: the split regexes of cl100k_base and o200k_base
// written out by hand (see tokens.go for why), one pre-token at a time.

import (
	"unicode"
	"unicode/utf8"
)

// Character classes of the split regexes.
const (
	cLetter   uint8 = 1 << iota // \p{L}
	cNumber                     // \p{N}
	cSpace                      // \s (unicode.IsSpace, as regexp2)
	cNewline                    // \r or \n
	cUpperish                   // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cLowerish                   // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
)

func classOf(r rune) uint8 {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z':
			return cLetter | cLowerish
		case 'A' <= r && r <= 'Z':
			return cLetter | cUpperish
		case '0' <= r && r <= '9':
			return cNumber
		case r == '\n' || r == '\r':
			return cSpace | cNewline
		case r == ' ' || ('\t' <= r && r <= '\f'):
			return cSpace
		}
		return 0
	}
	var c uint8
	if unicode.IsSpace(r) {
		c = cSpace
	}
	switch {
	case unicode.IsUpper(r), unicode.IsTitle(r):
		c |= cLetter | cUpperish
	case unicode.IsLower(r):
		c |= cLetter | cLowerish
	case unicode.IsLetter(r): // Lm, Lo
		c |= cLetter | cUpperish | cLowerish
	case unicode.IsMark(r):
		c |= cUpperish | cLowerish
	case unicode.IsNumber(r):
		c |= cNumber
	}
	return c
}

// at decodes the rune at i of a valid UTF-8 string.
func at(s string, i int) (rune, int, uint8) {
	if b := s[i]; b < utf8.RuneSelf {
		return rune(b), 1, classOf(rune(b))
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, w, classOf(r)
}

// run returns the end of the run of runes from i whose class has a bit of mask.
func run(s string, i int, mask uint8) int {
	for i < len(s) {
		_, w, c := at(s, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

// runNot returns the end of the run of runes from i whose class has no bit of mask.
func runNot(s string, i int, mask uint8) int {
	for i < len(s) {
		_, w, c := at(s, i)
		if c&mask != 0 {
			break
		}
		i += w
	}
	return i
}

// numbers matches \p{N}{1,3} after the first number rune (ending at j).
func numbers(s string, j int) int {
	for k := 1; k < 3 && j < len(s); k++ {
		_, w, c := at(s, j)
		if c&cNumber == 0 {
			break
		}
		j += w
	}
	return j
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) at i; it returns the
// length matched, 0 for none.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2]|0x20 == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2]|0x20 == 'l' {
			return 3
		}
	}
	return 0
}

// punct matches ` ?[^\s\p{L}\p{N}]+[\r\n]*` (slash: `[\r\n/]*`) at i
// (whose rune is r, w bytes, class c); 0 when it does not match.
func punct(s string, i int, r rune, w int, c uint8, slash bool) int {
	const word = cSpace | cLetter | cNumber
	k := i
	if r == ' ' {
		if k = i + w; k >= len(s) {
			return 0
		}
		if _, _, c2 := at(s, k); c2&word != 0 {
			return 0
		}
	} else if c&word != 0 {
		return 0
	}
	end := runNot(s, k, word)
	for end < len(s) && (s[end] == '\r' || s[end] == '\n' || (slash && s[end] == '/')) {
		end++
	}
	return end
}

// spaces matches, at whitespace i, `\s*[\r\n]+|\s+(?!\S)|\s+`.
func spaces(s string, i int) int {
	end := run(s, i, cSpace)
	for k := end - 1; k >= i; k-- { // \r and \n never occur inside a multi-byte rune
		if s[k] == '\n' || s[k] == '\r' {
			return k + 1
		}
	}
	if end == len(s) {
		return end
	}
	if _, w := utf8.DecodeLastRuneInString(s[i:end]); end-w > i {
		return end - w // leave the last space to prefix the next word
	}
	return end
}

// nextCL100k returns the end of the pre-token at i for
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func nextCL100k(s string, i int) int {
	r, w, c := at(s, i)
	if r == '\'' {
		if k := contraction(s, i); k > 0 {
			return i + k
		}
	}
	j := i + w
	if c&(cLetter|cNumber|cNewline) == 0 && j < len(s) {
		if _, _, c2 := at(s, j); c2&cLetter != 0 {
			return run(s, j, cLetter)
		}
	}
	if c&cLetter != 0 {
		return run(s, j, cLetter)
	}
	if c&cNumber != 0 {
		return numbers(s, j)
	}
	if end := punct(s, i, r, w, c, false); end > 0 {
		return end
	}
	return spaces(s, i)
}

// nextO200k returns the end of the pre-token at i for o200k_base's
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	\p{N}{1,3}
//	 ?[^\s\p{L}\p{N}]+[\r\n/]*
//	\s*[\r\n]+ | \s+(?!\S) | \s+
func nextO200k(s string, i int) int {
	r, w, c := at(s, i)
	j := i + w
	pre := c&(cLetter|cNumber|cNewline) == 0 && j < len(s)
	if pre {
		if end := lowerWord(s, j); end > 0 {
			return end + contraction(s, end)
		}
	}
	if end := lowerWord(s, i); end > 0 {
		return end + contraction(s, end)
	}
	if pre {
		if end := upperWord(s, j); end > 0 {
			return end + contraction(s, end)
		}
	}
	if end := upperWord(s, i); end > 0 {
		return end + contraction(s, end)
	}
	if c&cNumber != 0 {
		return numbers(s, j)
	}
	if end := punct(s, i, r, w, c, true); end > 0 {
		return end
	}
	return spaces(s, i)
}

// lowerWord matches [U]*[Lw]+ at st with the regex engine's backtracking:
// the greedy U-run gives back runes until an Lw rune can start Lw+. 0 when
// it does not match.
func lowerWord(s string, st int) int {
	k, lastEnd := st, 0
	for k < len(s) {
		_, w, c := at(s, k)
		if c&cUpperish == 0 {
			break
		}
		if c&cLowerish != 0 {
			lastEnd = k + w
		}
		k += w
	}
	if k < len(s) {
		if _, _, c := at(s, k); c&cLowerish != 0 {
			return run(s, k, cLowerish)
		}
	}
	return lastEnd // the last Lw rune inside the U-run, alone (its successors are Lu/Lt)
}

// upperWord matches [U]+[Lw]* at st; 0 when it does not match.
func upperWord(s string, st int) int {
	if _, _, c := at(s, st); c&cUpperish == 0 {
		return 0
	}
	return run(s, run(s, st, cUpperish), cLowerish)
}
