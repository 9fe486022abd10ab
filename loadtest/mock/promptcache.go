package mock

import (
	"container/list"
	"encoding/binary"
	"hash/fnv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// The simulated prompt cache, shared by the mocks: Anthropic's and
// Bedrock's explicit breakpoints (cache_control, cachePoint) use Prefix and
// PromptCache.Apply, OpenAI's automatic caching uses PromptCache.Auto. The
// cache is keyed by a scope (the provider key the request came with, and
// what else the provider partitions by) and the hash of a prefix; entries
// have a TTL from their last write or read.

// Cache TTLs of the providers.
const (
	// CacheTTL5m is the default lifetime of a cached prefix (Anthropic's
	// default, Bedrock's; OpenAI keeps prefixes 5 to 10 minutes of
	// inactivity).
	CacheTTL5m = 5 * time.Minute
	// CacheTTL1h is Anthropic's ttl "1h".
	CacheTTL1h = time.Hour
)

// CacheScope is the scope of a request's cache entries: the parts (the
// provider key, a prompt_cache_key, ...) hashed together. Requests of
// different scopes never share an entry.
func CacheScope(parts ...string) uint64 {
	f := fnv.New64a()
	for _, p := range parts {
		_, _ = f.Write([]byte(p))
		_, _ = f.Write([]byte{0})
	}
	return f.Sum64()
}

// HashChain hashes b onto seed (FNV-1a 64 over the seed's 8 bytes, then
// b), without allocating.
func HashChain[T string | []byte](seed uint64, b T) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < 8; i++ {
		h = (h ^ (seed >> (8 * i) & 0xff)) * prime
	}
	for i := 0; i < len(b); i++ {
		h = (h ^ uint64(b[i])) * prime
	}
	return h
}

// Prefix accumulates a prompt in cache order (Anthropic: tools, system,
// messages): the tokens and a running hash at every block boundary, and the
// breakpoints.
type Prefix struct {
	hashing bool     // whether to hash (the request has breakpoints)
	sum     uint64   // running hash, chained over the blocks
	Tokens  int      // tokens so far
	marks   []mark   // one per block
	bps     []bpoint // breakpoints, in order
}

type mark struct {
	tokens int
	hash   uint64
}

type bpoint struct {
	mark int           // index in marks
	ttl  time.Duration // CacheTTL5m or CacheTTL1h
}

// NewPrefix starts a prefix; model seeds its hash (each model has its own
// cache). hashing false only counts tokens (count_tokens, or a request
// without breakpoints).
func NewPrefix(model string, hashing bool) *Prefix {
	p := &Prefix{hashing: hashing}
	if hashing {
		p.sum = HashChain(0, []byte(model))
	}
	return p
}

// Add appends a block of tokens: canon is what identifies it (without its
// breakpoint marker); ttl > 0 puts a breakpoint at its end.
func (p *Prefix) Add(canon func() []byte, tokens int, ttl time.Duration) {
	p.Tokens += tokens
	if p.hashing {
		p.sum = HashChain(p.sum, canon())
	}
	p.marks = append(p.marks, mark{tokens: p.Tokens, hash: p.sum})
	if ttl > 0 {
		p.bps = append(p.bps, bpoint{mark: len(p.marks) - 1, ttl: ttl})
	}
}

// Hidden appends tokens that belong to the next block (a role marker, the
// framing): hashed and counted, but no block boundary of their own, so they
// take no place in the lookback and no breakpoint can end there.
func (p *Prefix) Hidden(canon func() []byte, tokens int) {
	p.Tokens += tokens
	if p.hashing {
		p.sum = HashChain(p.sum, canon())
	}
}

// MarkLast puts a breakpoint of ttl on the last block (Anthropic's
// top-level cache_control), unless one is there already.
func (p *Prefix) MarkLast(ttl time.Duration) {
	if len(p.marks) == 0 {
		return
	}
	last := len(p.marks) - 1
	if n := len(p.bps); n > 0 && p.bps[n-1].mark == last {
		return
	}
	p.bps = append(p.bps, bpoint{mark: last, ttl: ttl})
}

// Breakpoints returns the TTLs of the breakpoints, in order.
func (p *Prefix) Breakpoints() []time.Duration {
	out := make([]time.Duration, len(p.bps))
	for i, b := range p.bps {
		out[i] = b.ttl
	}
	return out
}

// CacheUsage is the prompt split a provider reports.
type CacheUsage struct {
	Input, Read, Write int // Input: the uncached rest
	Write5m, Write1h   int // Write by TTL
}

// PromptCache is an LRU of cached prefixes (by scope and hash) with a TTL
// each; safe for concurrent use. Like the real caches, two concurrent
// requests of one new prefix both write it.
type PromptCache struct {
	mu      sync.Mutex
	max     int
	ll      *list.List // front: most recent
	entries map[uint64]*list.Element
}

type cacheEntry struct {
	key     uint64
	ttl     time.Duration
	expires time.Time
}

// NewPromptCache returns a cache of at most n prefixes.
func NewPromptCache(n int) *PromptCache {
	return &PromptCache{max: max(n, 1), ll: list.New(), entries: map[uint64]*list.Element{}}
}

func entryKey(scope, hash uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], hash)
	return HashChain(scope, b[:])
}

// live reports whether key is cached and unexpired at now, refreshing its
// TTL and recency (a read refreshes an entry for free). c.mu is held.
func (c *PromptCache) live(key uint64, now time.Time) bool {
	el, ok := c.entries[key]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.entries, key)
		return false
	}
	e.expires = now.Add(e.ttl)
	c.ll.MoveToFront(el)
	return true
}

// put writes key with ttl (a longer TTL on a cached entry wins). c.mu is
// held.
func (c *PromptCache) put(key uint64, ttl time.Duration, now time.Time) {
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		e.ttl = max(e.ttl, ttl)
		e.expires = now.Add(e.ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.entries[key] = c.ll.PushFront(&cacheEntry{key: key, ttl: ttl, expires: now.Add(ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).key)
	}
}

// Apply looks the breakpoints of p up in scope and writes them, as
// Anthropic documents it: at each breakpoint (the last first) the longest
// live prefix at that block or up to lookback blocks before it is read;
// the rest up to the last breakpoint is written (at every breakpoint, by
// its TTL); what follows the last breakpoint is Input. Prefixes shorter
// than minTokens are neither read nor written.
func (c *PromptCache) Apply(p *Prefix, scope uint64, minTokens, lookback int, now time.Time) CacheUsage {
	u := CacheUsage{Input: p.Tokens}
	if len(p.bps) == 0 || !p.hashing {
		return u
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hit := -1 // mark index of the longest hit
	for i := len(p.bps) - 1; i >= 0 && hit < 0; i-- {
		bp := p.bps[i].mark
		for m := bp; m >= 0 && m > bp-lookback && m > hit; m-- {
			if p.marks[m].tokens >= minTokens && p.marks[m].tokens > 0 && c.live(entryKey(scope, p.marks[m].hash), now) {
				hit = m
				break
			}
		}
	}
	from := 0
	if hit >= 0 {
		u.Read = p.marks[hit].tokens
		from = u.Read
	}
	for _, bp := range p.bps {
		m := p.marks[bp.mark]
		if m.tokens < minTokens || m.tokens == 0 {
			continue
		}
		if m.tokens > from {
			seg := m.tokens - from
			if bp.ttl == CacheTTL1h {
				u.Write1h += seg
			} else {
				u.Write5m += seg
			}
			from = m.tokens
		}
		c.put(entryKey(scope, m.hash), bp.ttl, now)
	}
	u.Write = u.Write5m + u.Write1h
	u.Input = p.Tokens - u.Read - u.Write
	return u
}

// Automatic caching (OpenAI): a prompt of at least AutoCacheMin tokens is
// cached by prefixes of AutoCacheMin, then every AutoCacheStep more tokens;
// a request reads the longest of its prefixes that is cached.
const (
	AutoCacheMin  = 1024
	AutoCacheStep = 128
)

// AutoHasher hashes a prompt as a token stream and keeps the running hash at
// every cacheable length (AutoCacheMin, then each AutoCacheStep more). The
// zero value is ready; hash the tokens in prompt order with Token or Words.
type AutoHasher struct {
	sum    uint64
	n      int      // tokens so far
	Hashes []uint64 // Hashes[i]: the prefix of AutoCacheMin + i*AutoCacheStep tokens
}

// Tools hashes what precedes the messages and counts no tokens (the
// mocks count none for tool definitions): a request with other tools has
// other prefixes, as OpenAI's prompt puts the tools first. Call it first.
func (h *AutoHasher) Tools(b []byte) {
	if len(b) > 0 {
		h.sum = HashChain(h.sum, b)
	}
}

// Token adds one token identified by b.
func (h *AutoHasher) Token(b string) {
	h.sum = HashChain(h.sum, b)
	h.n++
	if h.n >= AutoCacheMin && (h.n-AutoCacheMin)%AutoCacheStep == 0 {
		h.Hashes = append(h.Hashes, h.sum)
	}
}

// Words adds the words of s, split as CountWords splits them (a word
// counts as a token in the mocks), and returns their number.
func (h *AutoHasher) Words(s string) int {
	n, start := 0, -1
	for i := 0; i < len(s); {
		c := s[i]
		var space bool
		size := 1
		if c < utf8.RuneSelf {
			space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			space = unicode.IsSpace(r)
		}
		switch {
		case space && start >= 0:
			h.Token(s[start:i])
			n, start = n+1, -1
		case !space && start < 0:
			start = i
		}
		i += size
	}
	if start >= 0 {
		h.Token(s[start:])
		n++
	}
	return n
}

// Tokens is the number of tokens hashed.
func (h *AutoHasher) Tokens() int { return h.n }

// Auto reads and writes the prefixes of h in scope with ttl: it returns the
// cached tokens (the longest cached prefix; 0 below AutoCacheMin) and
// caches every prefix of h.
func (c *PromptCache) Auto(h *AutoHasher, scope uint64, ttl time.Duration, now time.Time) int {
	if len(h.Hashes) == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cached := 0
	for i := len(h.Hashes) - 1; i >= 0; i-- {
		if c.live(entryKey(scope, h.Hashes[i]), now) {
			cached = AutoCacheMin + i*AutoCacheStep
			break
		}
	}
	for _, hash := range h.Hashes {
		c.put(entryKey(scope, hash), ttl, now)
	}
	return cached
}

// ClaudeMinCacheTokens is a Claude model's minimum cacheable prompt
// length, as Anthropic's prompt-caching reference lists it: 4096 tokens for
// Claude Opus 4.5 and 4.6 and Haiku 4.5, 2048 for Claude Opus 4.7 and the
// Haiku 3 models, 1024 for the others (Sonnet, Opus 4 to 4.1, Opus 4.8 and
// the later models). model may be a Bedrock id
// ("us.anthropic.claude-haiku-4-5-20251001-v1:0").
func ClaudeMinCacheTokens(model string) int {
	has := func(names ...string) bool {
		for _, n := range names {
			if strings.Contains(model, n) {
				return true
			}
		}
		return false
	}
	switch {
	case has("claude-opus-4-5", "claude-opus-4-6", "claude-haiku-4-5"):
		return 4096
	case has("claude-opus-4-7", "claude-3-haiku", "claude-3-5-haiku", "claude-haiku-3"):
		return 2048
	}
	return 1024
}

// ClaudeCacheMin is the minimum cacheable length of a Claude model under a
// cache-min-tokens knob (the Anthropic and Bedrock mocks'
// Config.CacheMinTokens): the knob when positive, none when negative,
// else the model's (ClaudeMinCacheTokens).
func ClaudeCacheMin(knob int, model string) int {
	switch {
	case knob > 0:
		return knob
	case knob < 0:
		return 0
	}
	return ClaudeMinCacheTokens(model)
}
