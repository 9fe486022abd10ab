package app

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// invalidationChannel carries what a replica changed that others cache:
// the hashes of keys it revoked, suspended, resumed or rotated (hashes,
// never keys), accountChanged+id for an account's price multiplier, budgetsChanged,
// providerKeysChanged (a stored provider key or the vault's keyring),
// IssuersChanged (the token exchange's trusted issuers), cachePurged+target
// (a response cache purge: respcache.ParsePurge) and cacheModelsChanged.
const invalidationChannel = "xroute:keys:invalidate"

const (
	accountChanged      = "acct:"
	budgetsChanged      = "budgets"
	providerKeysChanged = "provider-keys"
	cachePurged         = "rcache-purge:" // respcache's purge announcement prefix
	cacheModelsChanged  = "rcache-models" // a model's cache policy set through the admin API
)

// fanout spreads key invalidations between replicas through Redis
// pub/sub, so every replica refuses a revoked key on its next request
// instead of when its cache entry expires. It owns one subscriber
// goroutine. Redis being down costs only the fan-out: each replica still
// invalidates its own cache, and the cache TTL bounds the rest.
type fanout struct {
	rdb    *redis.Client
	log    *zap.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newFanout delivers every other replica's invalidations to onRemote.
func newFanout(rdb *redis.Client, log *zap.Logger, onRemote func(hexHash string)) *fanout {
	f := &fanout{rdb: rdb, log: log}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	sub := f.rdb.Subscribe(ctx, invalidationChannel)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				onRemote(msg.Payload)
			}
		}
	}()
	return f
}

// newPublisher returns what announces a local change to the other
// replicas (the fanout's other half, built before everything that
// announces, while the subscriber is built after everything it reloads).
// Without Redis (rdb nil) there is no one to tell: it does nothing.
func newPublisher(rdb *redis.Client, log *zap.Logger) func(msg string) {
	if rdb == nil {
		return func(string) {}
	}
	return publisher{rdb: rdb, log: log}.publish
}

type publisher struct {
	rdb *redis.Client
	log *zap.Logger
}

// publish announces a local invalidation; it never blocks a request for
// long and only logs when Redis is unreachable.
func (p publisher) publish(hexHash string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.rdb.Publish(ctx, invalidationChannel, hexHash).Err(); err != nil {
		p.log.Warn("key invalidation not fanned out (Redis unreachable); other replicas rely on their cache TTL", zap.Error(err))
	}
}

func (f *fanout) close() {
	f.cancel()
	f.wg.Wait()
}

// reloader runs the store reloads other replicas ask for (budgets,
// provider keys) on its own goroutine, off the pub/sub subscriber: a slow
// database must not hold up key revocations queued behind them. Requests
// for the same reload coalesce while one is pending. With every > 0 it
// also asks for each registered reload on a timer, which bounds how long
// a missed message (a Redis blip) keeps stale state.
type reloader struct {
	log   *zap.Logger
	every time.Duration
	named map[string]func(context.Context) error // fixed after newReloader

	mu      sync.Mutex
	pending map[string]bool
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newReloader(log *zap.Logger, every time.Duration, named map[string]func(context.Context) error) *reloader {
	r := &reloader{log: log, every: every, named: named, pending: map[string]bool{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	r.wg.Add(1)
	go r.run()
	return r
}

// ask schedules the named reload; it never blocks.
func (r *reloader) ask(name string) {
	if r.named[name] == nil {
		return
	}
	r.mu.Lock()
	r.pending[name] = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *reloader) run() {
	defer r.wg.Done()
	var tick <-chan time.Time
	if r.every > 0 {
		t := time.NewTicker(r.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-r.stop:
			return
		case <-tick:
			for name := range r.named {
				r.ask(name)
			}
		case <-r.kick:
			r.mu.Lock()
			names := r.pending
			r.pending = map[string]bool{}
			r.mu.Unlock()
			for name := range names {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := r.named[name](ctx); err != nil {
					r.log.Warn("reload of state changed by another replica failed; retried on the next change or timer", zap.String("what", name), zap.Error(err))
				}
				cancel()
			}
		}
	}
}

func (r *reloader) close() {
	close(r.stop)
	r.wg.Wait()
}
