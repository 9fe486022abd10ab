package billing

import (
	"hash/maphash"
	"sync"
)

// The counts of long strings are remembered. A coding agent resends its
// whole conversation with every request: the same system prompt, tool
// schemas and earlier turns, hundreds of kilobytes, of which only the last
// turn is new. The credit hold counts the prompt of every paid request,
// and the tokenizer runs at about 60 MB/s, so a 400 KB prompt cost ~7 ms
// of CPU per request, most of a request's cost in the gateway. A string
// seen before is now a hash and a map lookup.
const (
	// countCacheMin is the shortest string whose count is remembered:
	// below it, counting costs about what a lookup does.
	countCacheMin = 256
	// countCacheGen is the number of counts in each of the two
	// generations (see countCache).
	countCacheGen = 1 << 14
)

// countCache remembers token counts by a string's 64-bit hash and length,
// in two generations: lookups read the current one, then the previous one
// (moving a hit forward); when the current one is full it becomes the
// previous one and the oldest is dropped. Memory stays bounded (about
// 2×countCacheGen entries) without a goroutine or per-entry bookkeeping.
// Two strings of one length whose hashes collide (odds about 2⁻⁶⁴ per
// pair) would share a count: an estimate off by the difference.
type countCache struct {
	seed      maphash.Seed
	mu        sync.Mutex
	cur, prev map[countKey]int
}

type countKey struct {
	hash uint64
	n    int
	kind countKind
}

// countKind says what a key's text is: the same bytes count differently
// as plain text and as a message's JSON.
type countKind uint8

const (
	kindText    countKind = iota // a string, counted as text
	kindMessage                  // a chat message object's JSON
)

func newCountCache() *countCache {
	return &countCache{seed: maphash.MakeSeed(), cur: make(map[countKey]int)}
}

func (c *countCache) key(kind countKind, s string) countKey {
	return countKey{maphash.String(c.seed, s), len(s), kind}
}

func (c *countCache) get(k countKey) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.cur[k]; ok {
		return n, true
	}
	n, ok := c.prev[k]
	if ok {
		c.putLocked(k, n)
	}
	return n, ok
}

func (c *countCache) put(k countKey, n int) {
	c.mu.Lock()
	c.putLocked(k, n)
	c.mu.Unlock()
}

func (c *countCache) putLocked(k countKey, n int) {
	if len(c.cur) >= countCacheGen {
		c.prev, c.cur = c.cur, make(map[countKey]int, countCacheGen)
	}
	c.cur[k] = n
}
