// Package respcache is the gateway's exact-match response cache: an
// answer to a request is kept, in neutral form, under a hash of the
// canonical request, and an identical later request is answered from it
// instead of going upstream.
//
// Entries live in process memory (ristretto, bounded by bytes, a TTL per
// entry) and, when Redis is configured, in Redis too, shared by every
// replica: a lookup reads memory, then Redis; an answer is written to
// both. Redis failing degrades to memory alone (counted and logged),
// never to an error. Concurrent identical misses on one replica wait for
// the first one's answer instead of each calling the upstream (Acquire).
//
// The package knows nothing of HTTP, accounts or billing: the caller
// decides whether a request may be cached (Policy) and in which scope,
// and what a hit costs.
package respcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
)

// Scope names who may read an entry.
const (
	// ScopeAccount: only requests of the account whose request stored it
	// (the default).
	ScopeAccount = "account"
	// ScopeGlobal: every account (an operator's choice per model).
	ScopeGlobal = "global"
)

// Policy is one model's cache settings (or one key's override of them).
type Policy struct {
	Enabled bool
	TTL     time.Duration
	// Scope is ScopeAccount or ScopeGlobal.
	Scope string
	// Sampled allows caching requests with temperature > 0.
	Sampled bool
	// MaxEntryBytes bounds one entry's encoded size (0: DefaultMaxEntry).
	MaxEntryBytes int
}

// Defaults of a Policy and a Config.
const (
	DefaultTTL      = time.Hour
	DefaultMaxEntry = 1 << 20
	DefaultMaxBytes = 256 << 20
)

// Entry is a cached answer in neutral form: the ingress that serves it
// renders it in the caller's format, streamed or not. It holds no key and
// nothing of the caller but the answer.
type Entry struct {
	Completion providers.Completion `json:"completion"`
	// Vectors are an embeddings answer (nil for a chat answer).
	Vectors [][]float32 `json:"vectors,omitempty"`
	// Prompt and Output are the tokens the original request was billed.
	Prompt int `json:"prompt"`
	Output int `json:"output"`
	// Provider and Upstream name the deployment that answered.
	Provider string    `json:"provider"`
	Upstream string    `json:"upstream"`
	Stored   time.Time `json:"stored"`
}

// Config builds a Cache.
type Config struct {
	// MaxBytes bounds the memory the entries take (0: DefaultMaxBytes).
	MaxBytes int64
	// Redis, when set, is the layer shared by replicas.
	Redis redis.UniversalClient
	// Log receives the Redis outage lines (nil: none).
	Log *zap.Logger
	// Metrics receives the cache's counters (nil: none).
	Metrics Metrics
	Now     func() time.Time
	// Announce, when set, tells the other replicas of a purge (the app
	// publishes it through Redis; they call PurgeLocal with the Target
	// ParsePurge reads back), so their memory drops its copies at once
	// instead of at TTL.
	Announce func(msg string)
}

// Metrics is what the cache reports; every method must be cheap and safe
// for concurrent use.
type Metrics interface {
	Evicted()
	RedisError()
	Lookup(d time.Duration)
}

type noMetrics struct{}

func (noMetrics) Evicted()               {}
func (noMetrics) RedisError()            {}
func (noMetrics) Lookup(d time.Duration) {}

// Cache is safe for concurrent use.
type Cache struct {
	local *ristretto.Cache[string, []byte]
	rdb   redis.UniversalClient
	log   *zap.Logger
	m     Metrics
	now   func() time.Time
	// announce tells the other replicas of a purge (nil: none).
	announce func(msg string)

	mu     sync.Mutex
	gens   map[string]uint64 // purge generations: "", "m:"+model, "s:"+scope
	flight map[string]*Flight

	redisDown atomic.Bool  // the last Redis call failed (log once per outage)
	retryAt   atomic.Int64 // unix nanos: Redis is left alone until then
}

// redisBackoff is how long a replica serves from memory alone after a
// Redis call failed, so that an outage does not add Redis's timeout to
// every lookup.
const redisBackoff = 5 * time.Second

// shared reports whether Redis is to be asked now.
func (c *Cache) shared() bool {
	return c.rdb != nil && c.now().UnixNano() >= c.retryAt.Load()
}

// New builds a cache.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{rdb: cfg.Redis, log: cfg.Log, m: cfg.Metrics, now: cfg.Now, announce: cfg.Announce,
		gens: map[string]uint64{}, flight: map[string]*Flight{}}
	// Ten counters per entry, as ristretto advises, for entries of about
	// 4 KiB; the cost of an entry is its encoded size.
	counters := max(cfg.MaxBytes/4096*10, 1000)
	local, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: counters,
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
		Metrics:     true,
		OnEvict:     func(*ristretto.Item[[]byte]) { c.m.Evicted() },
	})
	if err != nil {
		return nil, fmt.Errorf("respcache: %w", err)
	}
	c.local = local
	return c, nil
}

// Close stops the in-process cache's goroutines.
func (c *Cache) Close() { c.local.Close() }

// Bytes is what the entries in memory take now.
func (c *Cache) Bytes() int64 {
	m := c.local.Metrics
	return int64(m.CostAdded()) - int64(m.CostEvicted())
}

// Key is the key of a request: scope is the account id (or ScopeGlobal),
// format the ingress, body the caller's body. The body is canonicalised:
// object keys sorted, insignificant space dropped, and the fields that do
// not change the answer (stream, stream_options, user) removed, so that
// the same question streamed or not, from any user, is the same entry.
// The model name stays as the caller gave it (it is in the body).
func (c *Cache) Key(scope, model, format string, body []byte) (Key, error) {
	canon, err := Canonical(body)
	if err != nil {
		return Key{}, err
	}
	// The scope is hashed in whole (not only into the prefix) so that no
	// two accounts' keys can meet, however short the prefix.
	h := sha256.New()
	for _, p := range [...]string{scope, model, format} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	h.Write(canon)
	sum := hex.EncodeToString(h.Sum(nil))
	// Scope and model are hashed into the Redis key's prefix so that a
	// purge can match them with SCAN without any caller text in a glob.
	return Key{
		Shared: "xroute:rc:" + short(scope) + ":" + short(model) + ":" + sum,
		scope:  scope, model: model,
	}, nil
}

// Key names one entry.
type Key struct {
	// Shared is the entry's name in Redis (and, with the purge
	// generations, in memory).
	Shared       string
	scope, model string
}

func short(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// local is the in-memory name: the shared one with the purge generations
// that cover it, so that a purge is one counter bumped, not a scan.
func (c *Cache) localKey(k Key) string {
	c.mu.Lock()
	g, gm, gs := c.gens[""], c.gens["m:"+k.model], c.gens["s:"+k.scope]
	c.mu.Unlock()
	return k.Shared + "#" + strconv.FormatUint(g, 36) + "." + strconv.FormatUint(gm, 36) + "." + strconv.FormatUint(gs, 36)
}

// dropped are the top-level fields that do not change the answer.
var dropped = [...]string{"stream", "stream_options", "user"}

// Canonical is body with sorted object keys and without the fields that
// do not change the answer. Numbers keep their text.
func Canonical(body []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("respcache: canonical body: %w", err)
	}
	for _, k := range dropped {
		delete(v, k)
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil { // encoding/json sorts map keys
		return nil, fmt.Errorf("respcache: canonical body: %w", err)
	}
	return buf.Bytes(), nil
}

// Get looks k up: memory, then Redis (an entry found there is kept in
// memory for the rest of its life). Redis failing is a miss.
func (c *Cache) Get(ctx context.Context, k Key) (*Entry, bool) {
	start := c.now()
	defer func() { c.m.Lookup(c.now().Sub(start)) }()
	lk := c.localKey(k)
	if b, ok := c.local.Get(lk); ok {
		return decode(b)
	}
	if !c.shared() {
		return nil, false
	}
	b, err := c.rdb.Get(ctx, k.Shared).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		c.redisUp()
		return nil, false
	case err != nil:
		c.redisFailed("get", err)
		return nil, false
	}
	c.redisUp()
	e, ok := decode(b)
	if !ok {
		return nil, false
	}
	if ttl, err := c.rdb.PTTL(ctx, k.Shared).Result(); err == nil && ttl > 0 {
		c.local.SetWithTTL(lk, b, int64(len(b)), ttl)
		c.local.Wait()
	}
	return e, true
}

func decode(b []byte) (*Entry, bool) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, false
	}
	return &e, true
}

// ErrTooLarge is Put's refusal of an entry over the policy's size.
var ErrTooLarge = errors.New("respcache: entry larger than max_entry_bytes")

// Put stores e under k for ttl, in memory and in Redis. It is visible to
// the next Get on this replica when Put returns.
func (c *Cache) Put(ctx context.Context, k Key, e *Entry, ttl time.Duration, maxEntry int) error {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if maxEntry <= 0 {
		maxEntry = DefaultMaxEntry
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("respcache: encode entry: %w", err)
	}
	if len(b) > maxEntry {
		return ErrTooLarge
	}
	c.local.SetWithTTL(c.localKey(k), b, int64(len(b)), ttl)
	c.local.Wait()
	if c.shared() {
		if err := c.rdb.Set(ctx, k.Shared, b, ttl).Err(); err != nil {
			c.redisFailed("set", err)
		} else {
			c.redisUp()
		}
	}
	return nil
}

// Target is what a purge removes: everything (both empty), one model's
// entries, or one account's (scope) entries.
type Target struct {
	Model string
	Scope string
}

// Purge removes the entries of t: at once from this replica's memory (a
// generation bumped: the old entries are unreachable and age out), from
// Redis, and then from the other replicas' memory (Config.Announce: they
// call PurgeLocal). It returns the Redis entries deleted (0 without
// Redis). The announcement goes out after the Redis delete, so that a
// replica that has dropped its copy cannot read the old one back from
// Redis; it goes out also when the delete failed (memory at least).
func (c *Cache) Purge(ctx context.Context, t Target) (int, error) {
	c.PurgeLocal(t)
	n, err := c.purgeShared(ctx, t)
	if c.announce != nil {
		c.announce(purgePrefix + t.Model + "\x00" + t.Scope)
	}
	return n, err
}

// purgePrefix starts a purge announcement: the model, a NUL, the scope.
const purgePrefix = "rcache-purge:"

// ParsePurge reads an announcement Purge made (ok false: not one).
func ParsePurge(msg string) (t Target, ok bool) {
	rest, ok := strings.CutPrefix(msg, purgePrefix)
	if !ok {
		return Target{}, false
	}
	t.Model, t.Scope, ok = strings.Cut(rest, "\x00")
	return t, ok
}

// PurgeLocal drops t's entries from this replica's memory only: one
// generation bumped.
func (c *Cache) PurgeLocal(t Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case t.Model == "" && t.Scope == "":
		c.gens[""]++
	case t.Scope == "":
		c.gens["m:"+t.Model]++
	case t.Model == "":
		c.gens["s:"+t.Scope]++
	default:
		c.gens["m:"+t.Model]++ // both: the model's entries of every scope go; fine for a purge
	}
}

// purgeShared deletes t's entries from Redis.
func (c *Cache) purgeShared(ctx context.Context, t Target) (int, error) {
	pattern := "xroute:rc:"
	switch {
	case t.Model == "" && t.Scope == "":
		pattern += "*"
	case t.Scope == "":
		pattern += "*:" + short(t.Model) + ":*"
	case t.Model == "":
		pattern += short(t.Scope) + ":*"
	default:
		pattern += short(t.Scope) + ":" + short(t.Model) + ":*"
	}
	if c.rdb == nil {
		return 0, nil
	}
	n := 0
	iter := c.rdb.Scan(ctx, 0, pattern, 512).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		d, err := c.rdb.Del(ctx, batch...).Result()
		n += int(d)
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 512 {
			if err := flush(); err != nil {
				c.redisFailed("purge", err)
				return n, fmt.Errorf("respcache: purge redis: %w", err)
			}
		}
	}
	err := iter.Err()
	if err == nil {
		err = flush()
	}
	if err != nil {
		c.redisFailed("purge", err)
		return n, fmt.Errorf("respcache: purge redis: %w", err)
	}
	return n, nil
}

func (c *Cache) redisFailed(op string, err error) {
	c.m.RedisError()
	c.retryAt.Store(c.now().Add(redisBackoff).UnixNano())
	if !c.redisDown.Swap(true) {
		c.log.Warn("response cache: Redis unavailable, serving from this replica's memory only", zap.String("op", op), zap.Error(err))
	}
}

func (c *Cache) redisUp() {
	if c.redisDown.Swap(false) {
		c.log.Info("response cache: Redis answers again")
	}
}

// Flight is the first of concurrent identical misses on this replica:
// the others wait for it to end (Done) and look again.
type Flight struct {
	c    *Cache
	key  string
	done chan struct{}
}

// Acquire looks k up; on a miss it returns a Flight when this request is
// the first to miss k (it must call Done once its answer is stored or it
// failed), or waits for the request that is and looks again (then a
// miss returns no Flight: the request goes upstream on its own). ctx
// bounds the wait.
func (c *Cache) Acquire(ctx context.Context, k Key) (*Entry, *Flight) {
	if e, ok := c.Get(ctx, k); ok {
		return e, nil
	}
	c.mu.Lock()
	f, waiting := c.flight[k.Shared]
	if !waiting {
		f = &Flight{c: c, key: k.Shared, done: make(chan struct{})}
		c.flight[k.Shared] = f
	}
	c.mu.Unlock()
	if !waiting {
		return nil, f
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, nil
	}
	e, _ := c.Get(ctx, k)
	return e, nil
}

// Done ends the flight; safe on nil and more than once.
func (f *Flight) Done() {
	if f == nil {
		return
	}
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.c.flight[f.key] == f {
		delete(f.c.flight, f.key)
		close(f.done)
	}
}
