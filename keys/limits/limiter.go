// Package limits holds the request path's admission controls: the GCRA
// rate limiter (RPM, TPM), the concurrent-request cap and the
// failed-authentication throttle, each in memory per replica and, for the
// first two, shared through Redis when it is configured (falling back to
// the local copy while Redis does not answer).
package limits

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xroute/xroute/keys/internal/clientip"
	"github.com/xroute/xroute/keys/internal/shardmap"
)

// This file holds the per-replica admission controls of the request path:
// the GCRA rate limiter (RPM, TPM), the concurrent-request cap and the
// failed-authentication throttle per client IP. All three are in memory,
// sharded by a seeded hash of the key, bounded in size, free of goroutines
// (the owner calls Sweep periodically) and driven by an injected clock.

const (
	// DefaultLimiterEntries bounds a Limiter (all shards together).
	DefaultLimiterEntries = 1 << 18
	// DefaultThrottleEntries bounds an AuthThrottle (all shards together).
	DefaultThrottleEntries = 1 << 16
)

// ---------------------------------------------------------------------------
// GCRA rate limiter

// Rate is Limit units per Period, e.g. Rate{600, time.Minute}. Burst equals
// Limit: a key that has been idle for a full Period may spend the whole
// Period's worth at once, after which units come back one every
// Period/Limit. A Rate with Limit <= 0 or Period <= 0 is unlimited.
type Rate struct {
	Limit  int
	Period time.Duration
}

// PerMinute is n units a minute (RPM, TPM).
func PerMinute(n int) Rate { return Rate{Limit: n, Period: time.Minute} }

func (r Rate) unlimited() bool { return r.Limit <= 0 || r.Period <= 0 }

// interval is the emission interval T = Period/Limit in nanoseconds (at
// least 1). The bucket's capacity is Limit*T, which is Period rounded down
// to a multiple of T, so exactly Limit units fit in a full bucket.
func (r Rate) interval() int64 {
	t := int64(r.Period) / int64(r.Limit)
	if t < 1 {
		t = 1
	}
	return t
}

// Decision is the outcome of a limiter call, in the terms of OpenAI's
// x-ratelimit-* headers.
type Decision struct {
	Allowed bool
	// Limit is the rate's Limit (x-ratelimit-limit-*); 0 when unlimited.
	Limit int
	// Remaining is how many units would be allowed right now after this
	// call (x-ratelimit-remaining-*).
	Remaining int
	// ResetAfter is the time until the bucket is full again
	// (x-ratelimit-reset-*).
	ResetAfter time.Duration
	// RetryAfter, when denied, is the time until this cost would fit; round
	// it up to whole seconds for a Retry-After header. It is -1 when
	// Impossible.
	RetryAfter time.Duration
	// Impossible: the cost exceeds Limit, so it can never be allowed, however
	// long the caller waits (answer 429 saying the request is larger than
	// the key's per-minute limit).
	Impossible bool
}

// Limiter is an in-memory GCRA (generic cell rate algorithm) limiter. For
// each key it stores only the theoretical arrival time (TAT): the instant at
// which the key's bucket would be full again. It is safe for concurrent use.
//
// A Limiter does not remember which Rate a key was used with: use one
// Limiter per dimension (one for requests, one for tokens) and always pass
// the key's current rate. A changed rate applies from the next call.
//
// State is per replica: N replicas behind a load balancer admit up to N
// times a key's rate unless the rates are divided among them.
type Limiter struct {
	now      func() time.Time
	seed     maphash.Seed
	perShard int
	shards   [shardmap.Count]shardmap.Map[string, int64]
}

// NewLimiter returns a Limiter holding at most DefaultLimiterEntries keys.
func NewLimiter(now func() time.Time) *Limiter {
	l := &Limiter{now: now, seed: maphash.MakeSeed(), perShard: DefaultLimiterEntries / shardmap.Count}
	for i := range l.shards {
		l.shards[i].M = make(map[string]int64)
	}
	return l
}

func (l *Limiter) shard(key string) *shardmap.Map[string, int64] {
	return &l.shards[maphash.String(l.seed, key)&(shardmap.Count-1)]
}

// gcra decides whether cost units fit a bucket whose TAT is tat (already
// clamped to now or later) and returns the TAT to store.
func gcra(r Rate, now, tat int64, cost int) (d Decision, newTAT int64) {
	t := r.interval()
	capacity := t * int64(r.Limit)
	d.Limit = r.Limit
	if cost > r.Limit {
		d.Impossible = true
		d.RetryAfter = -1
		d.Remaining, d.ResetAfter = remaining(tat-now, t, capacity), time.Duration(tat-now)
		return d, tat
	}
	newTAT = tat + int64(cost)*t
	if newTAT-now > capacity {
		d.RetryAfter = time.Duration(newTAT - capacity - now)
		d.Remaining, d.ResetAfter = remaining(tat-now, t, capacity), time.Duration(tat-now)
		return d, tat
	}
	d.Allowed = true
	d.Remaining, d.ResetAfter = remaining(newTAT-now, t, capacity), time.Duration(newTAT-now)
	return d, newTAT
}

func remaining(used, t, capacity int64) int {
	if used >= capacity {
		return 0
	}
	return int((capacity - used) / t)
}

// Allow spends cost units of key's budget under rate r if they fit, and
// reports the outcome. Use cost 1 for a request and, for tokens, the
// estimated prompt tokens plus max tokens (corrected later with Adjust). A
// cost above r.Limit is denied as Impossible without spending anything. An
// unlimited rate always allows.
func (l *Limiter) Allow(key string, r Rate, cost int) Decision {
	if r.unlimited() {
		return Decision{Allowed: true}
	}
	if cost < 0 {
		cost = 0
	}
	now := l.now().UnixNano()
	s := l.shard(key)
	s.Mu.Lock()
	tat, ok := s.M[key]
	if tat < now {
		tat = now
	}
	d, newTAT := gcra(r, now, tat, cost)
	if newTAT > now {
		if ok {
			s.M[key] = newTAT
		} else {
			l.insert(s, key, newTAT, now)
		}
	}
	s.Mu.Unlock()
	return d
}

// Peek reports key's state under rate r without spending anything: Allowed
// and RetryAfter say whether (and when) a cost of 1 would be allowed.
func (l *Limiter) Peek(key string, r Rate) Decision {
	if r.unlimited() {
		return Decision{Allowed: true}
	}
	now := l.now().UnixNano()
	s := l.shard(key)
	s.Mu.Lock()
	tat := s.M[key]
	s.Mu.Unlock()
	if tat < now {
		tat = now
	}
	d, _ := gcra(r, now, tat, 1)
	// Report the bucket as it is, not as it would be after one more unit.
	t := r.interval()
	d.Remaining, d.ResetAfter = remaining(tat-now, t, t*int64(r.Limit)), time.Duration(tat-now)
	return d
}

// Adjust corrects key's spending under rate r once the real cost is known
// (real tokens minus the estimate given to Allow). A negative delta refunds:
// the TAT moves back, never before now. A positive delta charges the
// difference without denying anything (the tokens are already spent): the
// key is allowed less until it has paid the debt. The debt is capped at one
// Period beyond a full bucket, so a wild estimate cannot lock a key out for
// longer than about one Period.
func (l *Limiter) Adjust(key string, r Rate, delta int) {
	if r.unlimited() || delta == 0 {
		return
	}
	// |delta| beyond 2*Limit changes nothing (clamps below) but could
	// overflow the multiplication.
	delta = max(-2*r.Limit, min(delta, 2*r.Limit))
	t := r.interval()
	capacity := t * int64(r.Limit)
	now := l.now().UnixNano()
	s := l.shard(key)
	s.Mu.Lock()
	defer s.Mu.Unlock()
	tat, ok := s.M[key]
	if tat < now {
		tat = now
	}
	tat += int64(delta) * t
	switch {
	case tat <= now:
		if ok {
			delete(s.M, key) // the bucket is full: nothing left to remember
		}
	case ok:
		s.M[key] = min(tat, now+2*capacity)
	default:
		l.insert(s, key, min(tat, now+2*capacity), now)
	}
}

// insert adds a new key to a locked shard, making room first when the
// shard is full. The key is cloned so the map never pins a larger buffer the
// caller's string may point into.
func (l *Limiter) insert(s *shardmap.Map[string, int64], key string, tat, now int64) {
	if len(s.M) >= l.perShard {
		shardmap.EvictOldest(s.M, now, func(v int64) int64 { return v })
	}
	s.M[strings.Clone(key)] = tat
}

// Sweep forgets every key whose bucket is full again (TAT in the past):
// such an entry says nothing a missing one would not. Call it periodically
// (e.g. every minute); it returns how many entries it removed.
func (l *Limiter) Sweep() int {
	now := l.now().UnixNano()
	return shardmap.Sweep(l.shards[:], func(tat int64) bool { return tat <= now })
}

// Len is the number of keys held.
func (l *Limiter) Len() int {
	return shardmap.Len(l.shards[:])
}

// ---------------------------------------------------------------------------
// Concurrent-request cap

// Concurrency counts requests in flight per key and caps them. Only keys
// with requests in flight take memory: a key's entry goes when its count
// returns to zero. The zero value is not usable; call NewConcurrency.
type Concurrency struct {
	seed   maphash.Seed
	shards [shardmap.Count]concShard
}

type concShard struct {
	Mu sync.Mutex
	M  map[string]int
	// slab hands out release tokens; see Acquire.
	slab []concToken
	_    [24]byte
}

type concToken struct {
	c    *Concurrency
	key  string
	done atomic.Bool
}

func (t *concToken) release() {
	if t.done.CompareAndSwap(false, true) {
		t.c.Release(t.key)
	}
}

// NewConcurrency returns an empty Concurrency.
func NewConcurrency() *Concurrency {
	c := &Concurrency{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].M = make(map[string]int)
	}
	return c
}

func (c *Concurrency) shard(key string) *concShard {
	return &c.shards[maphash.String(c.seed, key)&(shardmap.Count-1)]
}

// TryAcquire takes one of key's limit slots and reports whether it got
// one; limit <= 0 means unlimited (the request is still counted). Every true must
// be followed by exactly one Release(key); `defer c.Release(key)` is the
// natural pairing. It does not allocate.
func (c *Concurrency) TryAcquire(key string, limit int) bool {
	s := c.shard(key)
	s.Mu.Lock()
	n := s.M[key]
	if limit > 0 && n >= limit {
		s.Mu.Unlock()
		return false
	}
	s.M[key] = n + 1
	s.Mu.Unlock()
	return true
}

// Release gives back a slot taken by TryAcquire. Releasing a key with
// nothing in flight does nothing.
func (c *Concurrency) Release(key string) {
	s := c.shard(key)
	s.Mu.Lock()
	switch n := s.M[key]; {
	case n > 1:
		s.M[key] = n - 1
	case n == 1:
		delete(s.M, key)
	}
	s.Mu.Unlock()
}

// Acquire is TryAcquire returning an idempotent release function: calling
// it twice releases once. It costs one small allocation (the function
// value); the per-acquire state comes from a per-shard slab, never reused,
// which is what makes a late second call harmless.
func (c *Concurrency) Acquire(key string, limit int) (release func(), ok bool) {
	s := c.shard(key)
	s.Mu.Lock()
	n := s.M[key]
	if limit > 0 && n >= limit {
		s.Mu.Unlock()
		return func() {}, false
	}
	s.M[key] = n + 1
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]concToken, 0, 64)
	}
	s.slab = s.slab[:len(s.slab)+1]
	t := &s.slab[len(s.slab)-1]
	t.c, t.key = c, key
	s.Mu.Unlock()
	return t.release, true
}

// InFlight is the number of key's requests in flight.
func (c *Concurrency) InFlight(key string) int {
	s := c.shard(key)
	s.Mu.Lock()
	n := s.M[key]
	s.Mu.Unlock()
	return n
}

// ---------------------------------------------------------------------------
// Failed-authentication throttle

// throttleWindow is the window of the failed-auth rule: Burst failures
// within it start blocking; an IP quiet for a whole window after its last
// block is forgiven.
const throttleWindow = time.Minute

// AuthThrottle slows down key guessing from one client address. Burst
// failed authentications within a minute block the address for 1 s; every
// further failure doubles the block (2 s, 4 s, ... up to the maximum backoff).
// Failures below the burst decay at Burst per minute; an address that stays
// quiet for a minute after its last block ended starts over. A success
// changes nothing: a scanner that mixes in one valid key is not forgiven
// its guesses. A block refuses the unknown keys an address presents, never
// a key that verifies (the caller checks the key first): one client's
// guesses behind a shared NAT must not lock out its neighbours.
//
// Addresses are grouped: an IPv4-mapped IPv6 address counts as its IPv4
// address and an IPv6 address as its /64, since one client controls a whole
// /64. Strings that are not IP addresses share one bucket. Memory is bounded
// (DefaultThrottleEntries); when full, the entries closest to being
// forgotten go first, so a flood of fresh addresses does not free an address
// that is blocked.
type AuthThrottle struct {
	now        func() time.Time
	burst      int
	interval   int64 // window / burst
	maxBackoff time.Duration
	seed       uint64
	perShard   int
	shards     [shardmap.Count]shardmap.Map[netip.Addr, throttleEntry]
}

type throttleEntry struct {
	tat   int64 // GCRA arrival time of failures: burst per window
	until int64 // blocked until
	level int   // blocks so far in this episode
}

// forgetAt is when the entry carries no more information.
func (e throttleEntry) forgetAt() int64 {
	if e.level > 0 {
		return max(e.tat, e.until+int64(throttleWindow))
	}
	return e.tat
}

// NewAuthThrottle returns a throttle that blocks after burst failures within
// a minute, with backoff doubling from 1 s up to maxBackoff.
func NewAuthThrottle(burst int, maxBackoff time.Duration, now func() time.Time) *AuthThrottle {
	burst = max(burst, 1)
	maxBackoff = max(maxBackoff, time.Second)
	a := &AuthThrottle{
		now: now, burst: burst, interval: int64(throttleWindow) / int64(burst),
		maxBackoff: maxBackoff, seed: rand.Uint64(),
		perShard: DefaultThrottleEntries / shardmap.Count,
	}
	for i := range a.shards {
		a.shards[i].M = make(map[netip.Addr]throttleEntry)
	}
	return a
}

func (a *AuthThrottle) shard(addr netip.Addr) *shardmap.Map[netip.Addr, throttleEntry] {
	b := addr.As16()
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(b[:8])^a.seed, binary.LittleEndian.Uint64(b[8:])^0x9e3779b97f4a7c15)
	return &a.shards[((hi^lo)>>32)&(shardmap.Count-1)]
}

// Check reports whether ip is blocked now and for how long; call it before
// verifying a key and answer 429 with Retry-After (rounded up to seconds)
// when blocked.
func (a *AuthThrottle) Check(ip string) (retryAfter time.Duration, blocked bool) {
	addr := clientip.Group(ip)
	now := a.now().UnixNano()
	s := a.shard(addr)
	s.Mu.Lock()
	e, ok := s.M[addr]
	s.Mu.Unlock()
	if ok && now < e.until {
		return time.Duration(e.until - now), true
	}
	return 0, false
}

// Failed records a failed authentication from ip. It reports whether
// this failure started a blocking episode: a burst of guesses, worth an
// anomaly alert once.
func (a *AuthThrottle) Failed(ip string) (burst bool) {
	addr := clientip.Group(ip)
	now := a.now().UnixNano()
	s := a.shard(addr)
	s.Mu.Lock()
	defer s.Mu.Unlock()
	e, ok := s.M[addr]
	if ok && e.level > 0 && now-e.until >= int64(throttleWindow) {
		e = throttleEntry{} // quiet for a window after the last block: forgiven
	}
	e.tat = max(e.tat, now) + a.interval
	if e.level > 0 || e.tat-now >= int64(a.burst)*a.interval {
		backoff := a.maxBackoff
		if e.level < 32 { // 1 s << 32 still fits an int64
			backoff = min(time.Second<<e.level, a.maxBackoff)
		}
		e.until = now + int64(backoff)
		e.level++
		burst = e.level == 1
	}
	if !ok && len(s.M) >= a.perShard {
		shardmap.EvictOldest(s.M, now, throttleEntry.forgetAt)
	}
	s.M[addr] = e
	return burst
}

// Sweep forgets addresses whose failures no longer matter; call it
// periodically. It returns how many entries it removed.
func (a *AuthThrottle) Sweep() int {
	now := a.now().UnixNano()
	return shardmap.Sweep(a.shards[:], func(e throttleEntry) bool { return e.forgetAt() <= now })
}

// Len is the number of addresses held.
func (a *AuthThrottle) Len() int {
	return shardmap.Len(a.shards[:])
}
