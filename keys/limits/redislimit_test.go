package limits

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// lateRedis is a client whose every command misses its deadline: a hook
// answers context.DeadlineExceeded without touching the network, after
// noting how long the caller had left (so the test reads the deadline each
// call was given without waiting for it).
type lateRedis struct {
	mu   sync.Mutex
	left []time.Duration // per command; -1h: no deadline
}

func newLateRedis(t *testing.T) (redis.UniversalClient, *lateRedis) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	h := &lateRedis{}
	rdb.AddHook(h)
	return rdb, h
}

func (h *lateRedis) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lateRedis) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		left := -time.Hour
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d)
		}
		h.mu.Lock()
		h.left = append(h.left, left)
		h.mu.Unlock()
		cmd.SetErr(context.DeadlineExceeded)
		return context.DeadlineExceeded
	}
}

func (h *lateRedis) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// calls returns the time left of each command seen so far.
func (h *lateRedis) calls() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.left...)
}

// TestRedisTimeout: each Redis call on the request path carries the
// deadline WithRedisTimeout sets (DefaultRedisTimeout without it, or when
// it is not positive); a call that misses it is decided locally and counted
// as a fallback, and Redis is then left alone for a while.
func TestRedisTimeout(t *testing.T) {
	type decider struct {
		decide    func() bool // one request; reports whether it was admitted
		fallbacks func() int64
	}
	kinds := []struct {
		name string
		make func(t *testing.T, rdb redis.UniversalClient, opt RedisOption) decider // opt may be nil
	}{
		{"rate limiter", func(t *testing.T, rdb redis.UniversalClient, opt RedisOption) decider {
			var opts []RedisLimiterOption
			if opt != nil {
				opts = append(opts, opt)
			}
			l := NewRedisLimiter(rdb, "t:", NewLimiter(time.Now), zap.NewNop(), opts...)
			return decider{
				decide:    func() bool { return l.Allow("k", Rate{Limit: 10, Period: time.Minute}, 1).Allowed },
				fallbacks: l.Fallbacks,
			}
		}},
		{"concurrency cap", func(t *testing.T, rdb redis.UniversalClient, opt RedisOption) decider {
			var opts []RedisConcurrencyOption
			if opt != nil {
				opts = append(opts, opt)
			}
			c := NewRedisConcurrency(rdb, "t:", zap.NewNop(), opts...)
			t.Cleanup(c.Close)
			return decider{
				decide:    func() bool { return c.TryAcquire("k", 10) },
				fallbacks: c.Fallbacks,
			}
		}},
	}
	timeouts := []struct {
		name string
		opt  RedisOption
		want time.Duration
	}{
		{"default", nil, DefaultRedisTimeout},
		{"an hour", WithRedisTimeout(time.Hour), time.Hour},
		{"zero keeps the default", WithRedisTimeout(0), DefaultRedisTimeout},
		{"negative keeps the default", WithRedisTimeout(-time.Second), DefaultRedisTimeout},
	}
	for _, k := range kinds {
		for _, tm := range timeouts {
			t.Run(k.name+"/"+tm.name, func(t *testing.T) {
				noLeaks(t)
				rdb, h := newLateRedis(t)
				d := k.make(t, rdb, tm.opt)
				if !d.decide() {
					t.Fatal("refused: a late Redis must not fail requests")
				}
				calls := h.calls()
				if len(calls) == 0 {
					t.Fatal("Redis was not asked")
				}
				// The lower bound leaves 10 s between the deadline's start
				// and the hook, however loaded the machine: it tells an hour
				// from the default, and is no timing assertion.
				for i, left := range calls {
					if left == -time.Hour || left > tm.want || left <= tm.want-10*time.Second {
						t.Errorf("call %d had %v left, want a deadline of %v", i, left, tm.want)
					}
				}
				if f := d.fallbacks(); f != 1 {
					t.Errorf("fallbacks = %d after a late Redis, want 1", f)
				}
				if !d.decide() {
					t.Fatal("second request refused")
				}
				if n := len(h.calls()); n != len(calls) {
					t.Errorf("Redis asked again right after it was late (%d calls, then %d)", len(calls), n)
				}
				if f := d.fallbacks(); f != 2 {
					t.Errorf("fallbacks = %d, want 2", f)
				}
			})
		}
	}
}

// WithRedisTimeout suits both constructors; WithLeaseTTL only
// NewRedisConcurrency.
var (
	_ RedisLimiterOption     = WithRedisTimeout(time.Second)
	_ RedisConcurrencyOption = WithRedisTimeout(time.Second)
	_ RedisConcurrencyOption = WithLeaseTTL(time.Second)
)
