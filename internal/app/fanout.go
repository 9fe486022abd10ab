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
// and providerKeysChanged (a stored provider key or the vault's keyring).
const invalidationChannel = "xroute:keys:invalidate"

const (
	accountChanged      = "acct:"
	budgetsChanged      = "budgets"
	providerKeysChanged = "provider-keys"
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

// publish announces a local invalidation; it never blocks a request for
// long and only logs when Redis is unreachable.
func (f *fanout) publish(hexHash string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.rdb.Publish(ctx, invalidationChannel, hexHash).Err(); err != nil {
		f.log.Warn("key invalidation not fanned out (Redis unreachable); other replicas rely on their cache TTL", zap.Error(err))
	}
}

func (f *fanout) close() {
	f.cancel()
	f.wg.Wait()
}
