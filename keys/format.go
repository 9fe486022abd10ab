// Package keys owns caller keys: generation in a checkable format, keyed
// hashing for storage, verification with a cache, scopes and revocation.
package keys

import (
	"crypto/rand"
	"hash/crc32"
	"strings"
)

// CallerPrefix starts every caller key; secret scanners match on it.
const CallerPrefix = "xr-"

const (
	alphabet     = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	bodyLen      = 32 // 32 base62 characters = 190.5 bits of entropy
	checksumLen  = 6  // CRC32 fits in 6 base62 characters (62^6 > 2^32)
	callerKeyLen = len(CallerPrefix) + bodyLen + checksumLen
)

// randomBase62 returns n characters drawn uniformly from the alphabet.
// Bytes >= 248 are rejected so that every character is equally likely.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		rand.Read(buf) // crypto/rand.Read never fails on supported platforms
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}

func checksum(s string) string {
	c := crc32.ChecksumIEEE([]byte(s))
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[c%62]
		c /= 62
	}
	return string(out[:])
}

// Generate returns a new caller key: prefix, random body, checksum.
func Generate() string {
	s := CallerPrefix + randomBase62(bodyLen)
	return s + checksum(s)
}

// WellFormed reports whether s has the caller-key shape and a valid
// checksum. It runs before any cache or database lookup, so a mistyped or
// random key costs almost nothing.
func WellFormed(s string) bool {
	if len(s) != callerKeyLen || !strings.HasPrefix(s, CallerPrefix) {
		return false
	}
	for i := len(CallerPrefix); i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	split := len(s) - checksumLen
	return checksum(s[:split]) == s[split:]
}

// Hint is the display form of a key: enough to recognise it, useless to use.
func Hint(s string) string {
	if len(s) < len(CallerPrefix)+8 {
		return CallerPrefix + "…"
	}
	return s[:len(CallerPrefix)+4] + "…" + s[len(s)-4:]
}

// NewID returns a random identifier with the given prefix (e.g. "key_").
func NewID(prefix string) string { return prefix + randomBase62(16) }
