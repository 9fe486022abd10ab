package anthropic

import (
	"container/list"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"sync"
	"time"
)

const (
	cacheEntries   = 1 << 14 // prefixes the LRU keeps
	cacheLookback  = 20      // blocks before a breakpoint checked for a hit, as the API does
	maxBreakpoints = 4
	ttl5m          = 5 * time.Minute
	ttl1h          = time.Hour
)

// prefix accumulates the prompt in cache order (tools, system, messages):
// the tokens and a running hash at every block boundary, and the
// cache_control breakpoints.
type prefix struct {
	hashing bool     // whether to hash (the request has cache_control)
	sum     uint64   // running hash (fnv-64a chained over the blocks)
	tokens  int      // tokens so far
	marks   []mark   // one per block
	bps     []bpoint // breakpoints, in order
}

type mark struct {
	tokens int
	hash   uint64
}

type bpoint struct {
	mark int           // index in marks
	ttl  time.Duration // 5m or 1h
}

// newPrefix starts a prefix; its hash is per model (each model has its own
// cache).
func newPrefix(model string, hashing bool) *prefix {
	p := &prefix{hashing: hashing}
	if hashing {
		p.sum = hashBytes(0, []byte(model))
	}
	return p
}

func hashBytes(seed uint64, b []byte) uint64 {
	f := fnv.New64a()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	_, _ = f.Write(s[:])
	_, _ = f.Write(b)
	return f.Sum64()
}

// add appends a unit of the prompt of tokens: canon is what identifies it
// (cache_control aside); a breakpoint at its end when cc is set.
func (p *prefix) add(canon func() []byte, tokens int, cc *cacheControl) {
	p.tokens += tokens
	if p.hashing {
		p.sum = hashBytes(p.sum, canon())
	}
	p.marks = append(p.marks, mark{tokens: p.tokens, hash: p.sum})
	if cc != nil {
		p.bps = append(p.bps, bpoint{mark: len(p.marks) - 1, ttl: cc.duration()})
	}
}

// markLast puts a breakpoint on the last block (top-level cache_control),
// unless one is there already.
func (p *prefix) markLast(cc *cacheControl) {
	if len(p.marks) == 0 {
		return
	}
	last := len(p.marks) - 1
	if n := len(p.bps); n > 0 && p.bps[n-1].mark == last {
		return
	}
	p.bps = append(p.bps, bpoint{mark: last, ttl: cc.duration()})
}

func (c *cacheControl) duration() time.Duration {
	if c != nil && c.TTL == "1h" {
		return ttl1h
	}
	return ttl5m
}

// check validates a cache_control object at field at.
func (c *cacheControl) check(at string) *apiError {
	if c == nil {
		return nil
	}
	if c.Type != "ephemeral" {
		return invalid(at + ".cache_control.type: Input tag '" + c.Type + "' found using 'type' does not match any of the expected tags: 'ephemeral'")
	}
	switch c.TTL {
	case "", "5m", "1h":
		return nil
	}
	return invalid(at + ".cache_control.ephemeral.ttl: Input should be '5m' or '1h'")
}

// checkBreakpoints applies the API's limits: at most 4 breakpoints, and
// no 1h breakpoint after a 5m one.
func (p *prefix) checkBreakpoints() *apiError {
	if len(p.bps) > maxBreakpoints {
		return invalid("A maximum of " + strconv.Itoa(maxBreakpoints) + " blocks with cache_control may be provided. Found " + strconv.Itoa(len(p.bps)) + ".")
	}
	seen5m := false
	for _, b := range p.bps {
		if b.ttl == ttl5m {
			seen5m = true
		} else if seen5m {
			return invalid("cache_control: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
		}
	}
	return nil
}

// canonJSON is raw without its cache_control member, with sorted keys.
func canonJSON(raw json.RawMessage) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, "cache_control")
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return b
}

// cacheUsage is the prompt split the API reports.
type cacheUsage struct {
	input, read, write int
	write5m, write1h   int
}

// promptCache is an LRU of cached prefixes (by hash) with TTLs; safe for
// concurrent use.
type promptCache struct {
	mu      sync.Mutex
	max     int
	ll      *list.List // front: most recent
	entries map[uint64]*list.Element
}

type cacheEntry struct {
	hash    uint64
	ttl     time.Duration
	expires time.Time
}

func newPromptCache(n int) *promptCache {
	return &promptCache{max: n, ll: list.New(), entries: map[uint64]*list.Element{}}
}

// live returns the entry of hash when it has not expired (refreshing its
// TTL and recency), else nil.
func (c *promptCache) live(hash uint64, now time.Time) *cacheEntry {
	el, ok := c.entries[hash]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.entries, hash)
		return nil
	}
	e.expires = now.Add(e.ttl)
	c.ll.MoveToFront(el)
	return e
}

func (c *promptCache) put(hash uint64, ttl time.Duration, now time.Time) {
	if el, ok := c.entries[hash]; ok {
		e := el.Value.(*cacheEntry)
		e.ttl = max(e.ttl, ttl)
		e.expires = now.Add(e.ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.entries[hash] = c.ll.PushFront(&cacheEntry{hash: hash, ttl: ttl, expires: now.Add(ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).hash)
	}
}

// apply looks the breakpoints of p up and writes them: the longest cached
// prefix at a breakpoint, or up to cacheLookback blocks before one, is
// read; the rest up to the last breakpoint is written. Prefixes shorter
// than minTokens are neither read nor written.
func (c *promptCache) apply(p *prefix, minTokens int, now time.Time) cacheUsage {
	u := cacheUsage{input: p.tokens}
	if len(p.bps) == 0 {
		return u
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hit := -1 // mark index of the longest hit
	for i := len(p.bps) - 1; i >= 0 && hit < 0; i-- {
		bp := p.bps[i].mark
		for m := bp; m >= 0 && m > bp-cacheLookback && m > hit; m-- {
			if p.marks[m].tokens >= minTokens && p.marks[m].tokens > 0 && c.live(p.marks[m].hash, now) != nil {
				hit = m
				break
			}
		}
	}
	from := 0
	if hit >= 0 {
		u.read = p.marks[hit].tokens
		from = u.read
	}
	for _, bp := range p.bps {
		m := p.marks[bp.mark]
		if m.tokens < minTokens || m.tokens == 0 {
			continue
		}
		if m.tokens > from {
			seg := m.tokens - from
			if bp.ttl == ttl1h {
				u.write1h += seg
			} else {
				u.write5m += seg
			}
			from = m.tokens
		}
		c.put(m.hash, bp.ttl, now)
	}
	u.write = u.write5m + u.write1h
	u.input = p.tokens - u.read - u.write
	return u
}
