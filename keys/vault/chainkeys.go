package vault

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
	"time"
)

// ChainKeys authenticate the rows of an append-only table (the audit log,
// the credits ledger) with keys derived from the vault's data keys. The
// data keys live in the database only sealed under the master key, so
// someone who can write the database but has not got the master key can
// neither forge a row nor recompute a chain after editing one. Every row
// names the term of its key: a vault rotation moves new rows to the new
// term, and old rows keep verifying under theirs.
//
// One purpose, one family of keys: the audit log's keys cannot MAC a
// ledger entry. Safe for concurrent use.
type ChainKeys struct {
	v       *Vault
	purpose string

	mu   sync.RWMutex
	macs map[uint32]*sync.Pool         // term -> HMAC hashes under its key
	sigs map[uint32]ed25519.PrivateKey // term -> signing key
}

// ChainKeys returns the keys of one purpose ("audit", "ledger").
func (v *Vault) ChainKeys(purpose string) *ChainKeys {
	return &ChainKeys{v: v, purpose: purpose, macs: map[uint32]*sync.Pool{}, sigs: map[uint32]ed25519.PrivateKey{}}
}

// ActiveTerm is the term new rows are authenticated under.
func (c *ChainKeys) ActiveTerm() uint32 { return c.v.ActiveTerm() }

// MAC returns HMAC-SHA256 of msg under the key of term (term > 0). A term
// this process does not know yet (another replica rotated the vault) is
// looked for once in the stored keyring.
func (c *ChainKeys) MAC(term uint32, msg []byte) ([]byte, error) {
	c.mu.RLock()
	p := c.macs[term]
	c.mu.RUnlock()
	if p == nil {
		k, err := c.key(term, "")
		if err != nil {
			return nil, err
		}
		// Every row of the hot path takes an HMAC: keep them, reset.
		p = &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}
		c.mu.Lock()
		if q := c.macs[term]; q != nil {
			p = q
		} else {
			c.macs[term] = p
		}
		c.mu.Unlock()
	}
	m := p.Get().(hash.Hash)
	m.Reset()
	m.Write(msg)
	out := m.Sum(nil)
	p.Put(m)
	return out, nil
}

// SigningKey is the Ed25519 key of term (0: the active term) that signs
// statements meant to be kept outside the database (the audit chain's
// head); its public half can be published. It returns the term used.
func (c *ChainKeys) SigningKey(term uint32) (ed25519.PrivateKey, uint32, error) {
	if term == 0 {
		term = c.ActiveTerm()
	}
	c.mu.RLock()
	sk := c.sigs[term]
	c.mu.RUnlock()
	if sk != nil {
		return sk, term, nil
	}
	seed, err := c.key(term, "/ed25519")
	if err != nil {
		return nil, term, err
	}
	sk = ed25519.NewKeyFromSeed(seed)
	c.mu.Lock()
	c.sigs[term] = sk
	c.mu.Unlock()
	return sk, term, nil
}

// key derives the key of term for purpose+suffix. A term this process
// does not know yet (another replica rotated the vault) is looked for once
// in the stored keyring.
func (c *ChainKeys) key(term uint32, suffix string) ([]byte, error) {
	if term == 0 {
		return nil, errors.New("chain keys: a row's key term must be above 0")
	}
	k, _, err := c.v.DeriveKey(c.purpose+suffix, term)
	if errors.Is(err, ErrUnknownTerm) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rerr := c.v.Reload(ctx)
		cancel()
		if rerr == nil {
			k, _, err = c.v.DeriveKey(c.purpose+suffix, term)
		}
	}
	return k, err
}

// Epoch is where the chain became keyed, as recorded in the sealed keyring
// (out of reach of someone who can only write the database), and whether
// it is recorded: for the audit log the seq of its first keyed row, for
// the ledger the newest entry id written before keying. From the epoch
// on, every row must be keyed: a plain one is forged.
func (c *ChainKeys) Epoch() (int64, bool) { return c.v.Mark("epoch:" + c.purpose) }

// SetEpoch records the epoch once; the value already recorded wins.
func (c *ChainKeys) SetEpoch(ctx context.Context, at int64) (int64, error) {
	return c.v.SetMark(ctx, "epoch:"+c.purpose, at)
}
