package keys

// The HMAC peppers keys are hashed with: loading them (config, the pepper
// file) and hashing with one without allocating.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"

	"github.com/xroute/xroute/config"
)

// pepper is one HMAC secret and its stable version (a fingerprint, so the
// list of peppers can change without renumbering).
type pepper struct {
	version int
	pool    sync.Pool // of *hasher
}

type hasher struct {
	mac hash.Hash
	buf [64]byte
	sum [sha256.Size]byte
}

func newPepper(secret []byte) *pepper {
	fp := sha256.Sum256(secret)
	p := &pepper{version: int(binary.BigEndian.Uint32(fp[:4]) >> 1)}
	p.pool.New = func() any { return &hasher{mac: hmac.New(sha256.New, secret)} }
	return p
}

// sum computes HMAC-SHA256(pepper, key) without allocating.
func (p *pepper) sum(key string) [sha256.Size]byte {
	h := p.pool.Get().(*hasher)
	h.mac.Reset()
	n := copy(h.buf[:], key)
	h.mac.Write(h.buf[:n])
	if n < len(key) { // keys are short; longer input is malformed anyway
		h.mac.Write([]byte(key[n:]))
	}
	out := [sha256.Size]byte(h.mac.Sum(h.sum[:0]))
	p.pool.Put(h)
	return out
}

// LoadPeppers returns the HMAC peppers, current first: XROUTE_AUTH_PEPPER
// (via config) wins over the pepper file, which is created with a fresh
// random secret (mode 0600) when it does not exist yet; then
// auth.previous_peppers (comma-separated) in order.
func LoadPeppers(a config.Auth) ([][]byte, error) {
	cur, err := LoadPepper(a)
	if err != nil {
		return nil, err
	}
	out := [][]byte{cur}
	for _, p := range strings.Split(a.PreviousPeppers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if len(p) < 32 {
				return nil, errors.New("keys: every previous pepper must be at least 32 characters")
			}
			out = append(out, []byte(p))
		}
	}
	return out, nil
}

// LoadPepper returns the current HMAC pepper.
func LoadPepper(a config.Auth) ([]byte, error) {
	if a.Pepper != "" {
		return []byte(a.Pepper), nil
	}
	data, err := os.ReadFile(a.PepperFile)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		rand.Read(raw)
		secret := base64.RawURLEncoding.EncodeToString(raw)
		f, err := os.OpenFile(a.PepperFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadPepper(a) // another process created it first
		}
		if err != nil {
			return nil, fmt.Errorf("keys: create pepper file %s: %w", a.PepperFile, err)
		}
		if _, err := f.WriteString(secret + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("keys: write pepper file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("keys: write pepper file: %w", err)
		}
		return []byte(secret), nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: read pepper file %s: %w", a.PepperFile, err)
	}
	p := strings.TrimSpace(string(data))
	if len(p) < 32 {
		return nil, fmt.Errorf("keys: pepper file %s holds fewer than 32 characters", a.PepperFile)
	}
	return []byte(p), nil
}
