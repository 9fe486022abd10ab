package limits

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// gcraScript is GCRA done atomically in Redis with Redis's own clock, so
// that every replica spends one budget per key. KEYS[1]: the key's TAT
// (microseconds). ARGV: emission interval (µs), capacity (µs), cost.
// Returns {allowed, retry_after_us (-1: impossible), tat_after_us, now_us}.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local inc = T * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if inc > cap then return {0, -1, tat, now} end
local newtat = tat + inc
if newtat - now > cap then return {0, newtat - cap - now, tat, now} end
redis.call('SET', KEYS[1], newtat, 'PX', math.floor((newtat - now) / 1000) + 1000)
return {1, 0, newtat, now}
`)

// adjustScript moves a key's TAT by delta units (the TPM correction): a
// refund never goes before now, an extra charge at most one period ahead.
var adjustScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newtat = tat + tonumber(ARGV[1]) * tonumber(ARGV[3])
if newtat < now then newtat = now end
local cap = tonumber(ARGV[2])
if newtat > now + 2 * cap then newtat = now + 2 * cap end
redis.call('SET', KEYS[1], newtat, 'PX', math.floor((newtat - now) / 1000) + 1000)
return 1
`)

// RedisLimiter is a GCRA limiter shared by every replica through Redis.
// When Redis cannot be reached it falls back to a local limiter, so
// requests keep flowing (each replica then enforces the limit alone) and
// says so in the log and in Fallbacks.
type RedisLimiter struct {
	rdb      redis.UniversalClient
	prefix   string
	local    *Limiter
	log      *zap.Logger
	timeout  time.Duration
	fallback atomic.Int64
	lastWarn atomic.Int64
	// skipUntil (unix ns): after a failure Redis is not asked again for a
	// few seconds, so a dead Redis costs requests no time.
	skipUntil atomic.Int64
}

// DefaultRedisTimeout is the deadline of each Redis call on the request
// path when WithRedisTimeout does not set one.
const DefaultRedisTimeout = 200 * time.Millisecond

// RedisLimiterOption configures a RedisLimiter.
type RedisLimiterOption interface{ applyLimiter(*RedisLimiter) }

// RedisOption configures a RedisLimiter and a RedisConcurrency alike.
type RedisOption interface {
	RedisLimiterOption
	RedisConcurrencyOption
}

// WithRedisTimeout sets the deadline of each Redis call on the request
// path (DefaultRedisTimeout when not given or not positive). It is short
// because every request waits for it: a slow Redis must not slow every
// request. A call that misses it is decided by the local fallback (the
// limit then holds per replica), Redis is not asked again for 5 s, and
// each such decision is counted by Fallbacks (xroute_redis_fallbacks_total).
// Raise it only where a healthy Redis misses it, e.g. on a CPU-starved host.
func WithRedisTimeout(d time.Duration) RedisOption { return redisTimeout(d) }

type redisTimeout time.Duration

func (d redisTimeout) applyLimiter(l *RedisLimiter) {
	if d > 0 {
		l.timeout = time.Duration(d)
	}
}

func (d redisTimeout) applyConcurrency(c *RedisConcurrency) {
	if d > 0 {
		c.timeout = time.Duration(d)
	}
}

// NewRedisLimiter returns a limiter storing its state under prefix. Each
// Redis call is bounded by DefaultRedisTimeout or WithRedisTimeout; see
// NewRedisConcurrency for the client option that deadline needs.
func NewRedisLimiter(rdb redis.UniversalClient, prefix string, local *Limiter, log *zap.Logger, opts ...RedisLimiterOption) *RedisLimiter {
	l := &RedisLimiter{rdb: rdb, prefix: prefix, local: local, log: log, timeout: DefaultRedisTimeout}
	for _, o := range opts {
		o.applyLimiter(l)
	}
	return l
}

// Fallbacks counts decisions taken locally because Redis failed.
func (l *RedisLimiter) Fallbacks() int64 { return l.fallback.Load() }

func (l *RedisLimiter) degraded(err error) {
	l.fallback.Add(1)
	l.skipUntil.Store(time.Now().Add(5 * time.Second).UnixNano())
	now := time.Now().Unix()
	if last := l.lastWarn.Load(); now-last >= 10 && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("Redis unreachable: rate limits are enforced per replica until it returns", zap.Error(err))
	}
}

// Allow implements the limiter contract of Limiter.Allow.
func (l *RedisLimiter) Allow(key string, r Rate, cost int) Decision {
	if r.unlimited() {
		return Decision{Allowed: true}
	}
	if time.Now().UnixNano() < l.skipUntil.Load() {
		l.fallback.Add(1)
		return l.local.Allow(key, r, cost)
	}
	T := r.interval() / 1000 // µs
	if T < 1 {
		T = 1
	}
	capacity := T * int64(r.Limit)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	res, err := gcraScript.Run(ctx, l.rdb, []string{l.prefix + key}, T, capacity, cost).Int64Slice()
	if err != nil || len(res) != 4 {
		l.degraded(err)
		return l.local.Allow(key, r, cost)
	}
	allowed, retry, tat, now := res[0] == 1, res[1], res[2], res[3]
	d := Decision{Allowed: allowed, Limit: r.Limit}
	used := tat - now
	d.Remaining = int((capacity - used) / T)
	if d.Remaining < 0 {
		d.Remaining = 0
	}
	d.ResetAfter = time.Duration(used) * time.Microsecond
	switch {
	case retry < 0:
		d.Impossible, d.RetryAfter = true, -1
	case !allowed:
		d.RetryAfter = time.Duration(retry) * time.Microsecond
	}
	return d
}

// Adjust implements the limiter contract of Limiter.Adjust.
func (l *RedisLimiter) Adjust(key string, r Rate, delta int) {
	if r.unlimited() || delta == 0 {
		return
	}
	if time.Now().UnixNano() < l.skipUntil.Load() {
		l.local.Adjust(key, r, delta)
		return
	}
	T := r.interval() / 1000
	if T < 1 {
		T = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := adjustScript.Run(ctx, l.rdb, []string{l.prefix + key}, delta, T*int64(r.Limit), T).Err(); err != nil {
		l.degraded(err)
		l.local.Adjust(key, r, delta)
	}
}

// Sweep sweeps the local fallback (Redis expires its own keys).
func (l *RedisLimiter) Sweep() int { return l.local.Sweep() }
