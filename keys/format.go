// Package keys owns caller and admin keys: generation in a checkable
// format, keyed hashing for storage, verification with a cache, scopes,
// expiry, suspension, revocation and rotation; and, beside them, the
// provider-key vault, the audit log, rate limits and anomaly detection.
package keys

import (
	"crypto/rand"
	"crypto/subtle"
	"hash/crc32"
	"strings"
)

// Key prefixes; secret scanners match on them.
const (
	CallerPrefix = "xr-"
	AdminPrefix  = "xra-"
)

const (
	alphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	bodyLen     = 32 // 32 base62 characters = 190.5 bits of entropy
	checksumLen = 6  // CRC32 fits in 6 base62 characters (62^6 > 2^32)
)

var (
	crcTable = crc32.MakeTable(crc32.IEEE)
	inAlpha  = func() (t [256]bool) {
		for i := 0; i < len(alphabet); i++ {
			t[alphabet[i]] = true
		}
		return
	}()
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

// checksum encodes the CRC32 of s in base62, without allocating.
func checksum(s string) [checksumLen]byte {
	c := ^uint32(0)
	for i := 0; i < len(s); i++ {
		c = crcTable[byte(c)^s[i]] ^ (c >> 8)
	}
	c = ^c
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[c%62]
		c /= 62
	}
	return out
}

func generate(prefix string) string {
	s := prefix + randomBase62(bodyLen)
	sum := checksum(s)
	return s + string(sum[:])
}

// Generate returns a new caller key: prefix, random body, checksum.
func Generate() string { return generate(CallerPrefix) }

// GenerateAdmin returns a new admin key.
func GenerateAdmin() string { return generate(AdminPrefix) }

// kindOf returns the key kind a well-formed key's prefix announces.
func kindOf(s string) string {
	if strings.HasPrefix(s, AdminPrefix) {
		return KindAdmin
	}
	return KindCaller
}

// WellFormed reports whether s has a key's shape (either prefix) and a
// valid checksum. It runs before any cache or database lookup, so a
// mistyped or random key costs almost nothing; it does not allocate.
func WellFormed(s string) bool {
	var prefix string
	switch {
	case strings.HasPrefix(s, AdminPrefix):
		prefix = AdminPrefix
	case strings.HasPrefix(s, CallerPrefix):
		prefix = CallerPrefix
	default:
		return false
	}
	if len(s) != len(prefix)+bodyLen+checksumLen {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if !inAlpha[s[i]] {
			return false
		}
	}
	split := len(s) - checksumLen
	sum := checksum(s[:split])
	return subtle.ConstantTimeCompare(sum[:], []byte(s[split:])) == 1
}

// Hint is the display form of a key: enough to recognise it, useless to use.
func Hint(s string) string {
	prefix := CallerPrefix
	if strings.HasPrefix(s, AdminPrefix) {
		prefix = AdminPrefix
	}
	if len(s) < len(prefix)+8 {
		return prefix + "…"
	}
	return s[:len(prefix)+4] + "…" + s[len(s)-4:]
}

// NewID returns a random identifier with the given prefix (e.g. "key_").
func NewID(prefix string) string { return prefix + randomBase62(16) }
