package limits

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/keys/internal/shardmap"
)

// acquireScript takes one lease on a key's lease set if fewer than max are
// live. Expiry is on Redis's clock, so replicas with skewed clocks agree on
// which leases are dead. KEYS[1]: the key's lease set. ARGV: max, lease id,
// lease TTL (ms). Returns 1 when the lease was taken, 0 at the cap.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
-- The set lives as long as its longest lease (replicas may run other TTLs).
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(last[2]) - now, ttl) + 1000)
return 1
`)

// refreshScript pushes back the expiry of the leases one replica holds on
// one key. XX: a lease that is gone (released meanwhile, or expired) is not
// brought back, so a refresh racing a release cannot resurrect a slot.
// KEYS[1]: the key's lease set. ARGV: lease TTL (ms), then the lease ids.
var refreshScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', KEYS[1], math.max(tonumber(last[2]) - now, ttl) + 1000)
end
return 1
`)

const (
	// DefaultLeaseTTL is how long a lease outlives its last refresh: the
	// longest a dead replica's requests keep their key's slots.
	DefaultLeaseTTL = 30 * time.Second
	// maxOrphans bounds the leases waiting for a removal that failed; past
	// it they are left to expire on their own.
	maxOrphans = 4096
)

// redisHealth is the failure memory of a Redis-backed limiter: after a
// failure Redis is not asked again for a few seconds, so a dead Redis
// costs requests no time, and the warning is logged at most every 10 s.
type redisHealth struct {
	log       *zap.Logger
	msg       string
	lastWarn  atomic.Int64 // unix s
	skipUntil atomic.Int64 // unix ns
}

func (h *redisHealth) skipping() bool { return time.Now().UnixNano() < h.skipUntil.Load() }

func (h *redisHealth) failed(err error) {
	h.skipUntil.Store(time.Now().Add(5 * time.Second).UnixNano())
	now := time.Now().Unix()
	if last := h.lastWarn.Load(); now-last >= 10 && h.lastWarn.CompareAndSwap(last, now) {
		h.log.Warn(h.msg, zap.Error(err))
	}
}

// RedisConcurrency caps requests in flight per key across every replica
// sharing one Redis. Each admitted request holds a lease: a member of the
// key's sorted set scored with its expiry on Redis's clock. Leases expire
// after the lease TTL unless refreshed, and a goroutine owned by the
// RedisConcurrency refreshes this replica's leases every TTL/3, so the
// slots of a replica that dies come back within one TTL while a long
// stream keeps its slot. Call Close to stop that goroutine.
//
// When Redis cannot be reached, requests are admitted by a local
// Concurrency instead (the cap then holds per replica, counting the Redis
// leases this replica still holds), a warning is logged and Fallbacks
// counts it. No request fails because Redis is down.
//
// It has the contract of Concurrency: limit <= 0 is unlimited (counted
// locally, Redis is not asked) and every successful TryAcquire is paired
// with one Release(key). Leases of one key are interchangeable, so Release
// gives back any one of the leases this replica holds for the key,
// preferring one taken locally.
type RedisConcurrency struct {
	rdb     redis.UniversalClient
	prefix  string
	local   *Concurrency
	health  redisHealth
	timeout time.Duration
	ttl     time.Duration
	every   time.Duration

	// idBase makes lease ids unique across replicas; seq within one.
	idBase string
	seq    atomic.Uint64

	// held is this replica's live leases, which Release draws from and the
	// refresher renews.
	seed maphash.Seed
	held [shardmap.Count]shardmap.Map[string, *leaseSet]

	orphanMu sync.Mutex
	orphans  []orphan // leases to remove from Redis once it answers again

	fallbacks atomic.Int64

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// leaseSet is what this replica holds for one key.
type leaseSet struct {
	ids   []string // leases in Redis
	local int      // leases taken from the local Concurrency
}

type orphan struct{ key, id string }

// RedisConcurrencyOption configures a RedisConcurrency.
type RedisConcurrencyOption interface{ applyConcurrency(*RedisConcurrency) }

type concurrencyOption func(*RedisConcurrency)

func (f concurrencyOption) applyConcurrency(c *RedisConcurrency) { f(c) }

// WithLeaseTTL sets the lease TTL (DefaultLeaseTTL when not given or not
// positive); leases are refreshed every ttl/3.
func WithLeaseTTL(ttl time.Duration) RedisConcurrencyOption {
	return concurrencyOption(func(c *RedisConcurrency) {
		if ttl > 0 {
			c.ttl = ttl
		}
	})
}

// NewRedisConcurrency returns a cap shared through rdb, keeping its lease
// sets under prefix, and starts its lease refresher (stop it with Close).
// Each Redis call on the request path is bounded by a context deadline
// (DefaultRedisTimeout, or WithRedisTimeout), which go-redis applies to
// socket reads and writes only when rdb's options set
// ContextTimeoutEnabled; without it a hung Redis stalls requests for the
// client's ReadTimeout instead.
func NewRedisConcurrency(rdb redis.UniversalClient, prefix string, log *zap.Logger, opts ...RedisConcurrencyOption) *RedisConcurrency {
	c := &RedisConcurrency{
		rdb:     rdb,
		prefix:  prefix,
		local:   NewConcurrency(),
		timeout: DefaultRedisTimeout,
		ttl:     DefaultLeaseTTL,
		idBase:  fmt.Sprintf("%016x:", rand.Uint64()),
		seed:    maphash.MakeSeed(),
		done:    make(chan struct{}),
	}
	c.health.log = log
	c.health.msg = "Redis unreachable: concurrency caps are enforced per replica until it returns"
	for _, o := range opts {
		o.applyConcurrency(c)
	}
	c.every = max(c.ttl/3, time.Millisecond)
	for i := range c.held {
		c.held[i].M = make(map[string]*leaseSet)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.refreshLoop(ctx)
	return c
}

// Fallbacks counts acquisitions decided locally because Redis failed or
// had failed within the last few seconds.
func (c *RedisConcurrency) Fallbacks() int64 { return c.fallbacks.Load() }

// Close stops the lease refresher and waits for it. Leases still held are
// not released: they expire within one TTL. Close it after the server has
// drained; TryAcquire and Release keep working after Close, but leases are
// no longer refreshed.
func (c *RedisConcurrency) Close() {
	c.closeOnce.Do(func() {
		c.cancel()
		<-c.done
	})
}

func (c *RedisConcurrency) shard(key string) *shardmap.Map[string, *leaseSet] {
	return &c.held[maphash.String(c.seed, key)&(shardmap.Count-1)]
}

func (c *RedisConcurrency) newID() string {
	var b [40]byte
	n := copy(b[:], c.idBase)
	return string(strconv.AppendUint(b[:n], c.seq.Add(1), 36))
}

// TryAcquire takes one of key's limit slots across all replicas and
// reports whether it got one; limit <= 0 means unlimited (the request is
// still counted locally). It costs one Redis round trip, none when limit
// <= 0 or while Redis is being skipped after a failure.
func (c *RedisConcurrency) TryAcquire(key string, limit int) bool {
	if limit <= 0 {
		return c.acquireLocal(key, limit)
	}
	if c.health.skipping() {
		c.fallbacks.Add(1)
		return c.acquireLocal(key, limit)
	}
	id := c.newID()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	got, err := acquireScript.Run(ctx, c.rdb, []string{c.prefix + key}, limit, id, c.ttl.Milliseconds()).Int64()
	cancel()
	if err != nil {
		c.health.failed(fmt.Errorf("acquire lease: %w", err))
		// The script may have run before the reply was lost.
		c.orphan(key, id)
		c.fallbacks.Add(1)
		return c.acquireLocal(key, limit)
	}
	if got != 1 {
		return false
	}
	s := c.shard(key)
	s.Mu.Lock()
	h := c.leases(s, key)
	h.ids = append(h.ids, id)
	s.Mu.Unlock()
	return true
}

// leases returns key's entry in a locked shard, creating it if need be.
func (c *RedisConcurrency) leases(s *shardmap.Map[string, *leaseSet], key string) *leaseSet {
	h := s.M[key]
	if h == nil {
		h = &leaseSet{}
		s.M[strings.Clone(key)] = h
	}
	return h
}

// acquireLocal admits through the local Concurrency. The Redis leases this
// replica holds for key count against the cap, so that during an outage
// this replica alone never exceeds it.
func (c *RedisConcurrency) acquireLocal(key string, limit int) bool {
	s := c.shard(key)
	s.Mu.Lock()
	defer s.Mu.Unlock()
	h := s.M[key]
	if limit > 0 && h != nil {
		if limit -= len(h.ids); limit <= 0 {
			return false
		}
	}
	if !c.local.TryAcquire(key, limit) {
		return false
	}
	if h == nil {
		h = c.leases(s, key)
	}
	h.local++
	return true
}

// Release gives back one slot of key taken by TryAcquire: a local lease if
// this replica holds one (released locally, whatever Redis's state now),
// otherwise a Redis lease, in one round trip. Releasing a key with nothing
// held does nothing. A removal that fails is retried by the refresher; the
// lease expires within one TTL anyway.
func (c *RedisConcurrency) Release(key string) {
	s := c.shard(key)
	s.Mu.Lock()
	h := s.M[key]
	if h == nil {
		s.Mu.Unlock()
		return
	}
	var id string
	if h.local > 0 {
		h.local--
		c.local.Release(key)
	} else {
		last := len(h.ids) - 1
		id = h.ids[last]
		h.ids[last] = ""
		h.ids = h.ids[:last]
	}
	if h.local == 0 && len(h.ids) == 0 {
		delete(s.M, key)
	}
	s.Mu.Unlock()
	if id == "" {
		return
	}
	if c.health.skipping() {
		c.orphan(key, id)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	err := c.rdb.ZRem(ctx, c.prefix+key, id).Err()
	cancel()
	if err != nil {
		c.health.failed(fmt.Errorf("release lease: %w", err))
		c.orphan(key, id)
	}
}

// orphan queues a lease for removal by the refresher.
func (c *RedisConcurrency) orphan(key, id string) {
	c.orphanMu.Lock()
	if len(c.orphans) < maxOrphans {
		c.orphans = append(c.orphans, orphan{strings.Clone(key), id})
	}
	c.orphanMu.Unlock()
}

func (c *RedisConcurrency) refreshLoop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The refresher ignores the skip window: it is off the request
			// path, and leases must not lapse while Redis is merely flaky.
			if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
				c.health.failed(err)
			}
		}
	}
}

// refresh renews the expiry of every Redis lease this replica holds and
// removes the orphans, in one pipelined round trip.
func (c *RedisConcurrency) refresh(ctx context.Context) error {
	type keyLeases struct {
		key string
		ids []string
	}
	var live []keyLeases
	for i := range c.held {
		s := &c.held[i]
		s.Mu.Lock()
		for k, h := range s.M {
			if len(h.ids) > 0 {
				live = append(live, keyLeases{k, append([]string(nil), h.ids...)})
			}
		}
		s.Mu.Unlock()
	}
	c.orphanMu.Lock()
	orphans := c.orphans
	c.orphans = nil
	c.orphanMu.Unlock()
	if len(live) == 0 && len(orphans) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.every)
	defer cancel()
	ttl := c.ttl.Milliseconds()
	exec := func() error {
		pipe := c.rdb.Pipeline()
		for _, l := range live {
			args := make([]any, 0, 1+len(l.ids))
			args = append(args, ttl)
			for _, id := range l.ids {
				args = append(args, id)
			}
			refreshScript.EvalSha(ctx, pipe, []string{c.prefix + l.key}, args...)
		}
		for _, o := range orphans {
			pipe.ZRem(ctx, c.prefix+o.key, o.id)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := exec()
	if redis.HasErrorPrefix(err, "NOSCRIPT") { // first refresh since Redis started
		if err = refreshScript.Load(ctx, c.rdb).Err(); err == nil {
			err = exec()
		}
	}
	if err != nil {
		c.orphanMu.Lock()
		c.orphans = append(orphans, c.orphans...)
		if len(c.orphans) > maxOrphans {
			c.orphans = c.orphans[:maxOrphans]
		}
		c.orphanMu.Unlock()
		return fmt.Errorf("refresh leases: %w", err)
	}
	return nil
}
