package router

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
)

// Session affinity. A provider sells a cached prompt prefix at a tenth of
// the input price, but only on the deployment and provider key that cached
// it: a session whose turns are spread over several deployments rewrites
// its cache instead of reading it. After a request of a session read or
// wrote a provider's cache (or went to a deployment that caches on its
// own), the router remembers where it went — a pin: deployment and pool
// key — and puts that deployment first for the session's next request of
// the same model, with that key. It is a preference, not a pin in the hard
// sense: an open breaker, a cooldown, a key gone from the pool or the
// caller's provider.order wins, and the session is pinned where it landed.
// The cost-aware strategies (cost, balanced) do not move the pin first:
// they price the warm deployment with the expected cache reads at the
// cached-input price and the others with a cache write, so a warm
// deployment wins over a cold one only when it is really cheaper.
//
// Pins live in a bounded LRU per replica and, when Redis is configured, in
// Redis too, so replicas share them; Redis failing only costs a cache
// write upstream (the replica's own pins are used), never an error.

// Pin is where a session's cache is warm.
type Pin struct {
	Deployment string // provider/model
	Credential string // pool key id ("": the config's key)
	// Tokens is the prefix the provider cached or read last time: what
	// the next request may read from the cache.
	Tokens int
}

// AffinityStats counts affinity outcomes of served requests: Hits went to
// their pin, Misses had none (a new session, or one idle past its TTL),
// Repins had one but were served elsewhere (breaker, cooldown, a cheaper
// cold deployment, the caller's order) and were pinned there.
type AffinityStats struct {
	Hits, Misses, Repins uint64
	// RedisErrors counts Redis calls that failed (the replica's own pins
	// served).
	RedisErrors uint64
}

// affinity is the pin table of a router.
type affinity struct {
	ttl  time.Duration
	now  func() time.Time
	log  *zap.Logger
	lru  *pinLRU
	rdb  redis.UniversalClient
	pfx  string
	wait time.Duration // bound of each Redis call

	hits, misses, repins, redisErrors atomic.Uint64
	retryAt                           atomic.Int64 // Redis is skipped until then after a failure (unix ns)
	down                              atomic.Bool  // logged once per outage
}

// affinityRedisBackoff is how long a replica keeps to its own pins after
// a Redis failure.
const affinityRedisBackoff = 5 * time.Second

// WithAffinityRedis shares the session pins of replicas through rdb, each
// call bounded by timeout (redis.timeout).
func WithAffinityRedis(rdb redis.UniversalClient, timeout time.Duration) Option {
	return func(r *Router) { r.affRedis, r.affWait = rdb, timeout }
}

func newAffinity(entries int, ttl time.Duration, now func() time.Time, log *zap.Logger, rdb redis.UniversalClient, wait time.Duration) *affinity {
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	return &affinity{ttl: ttl, now: now, log: log, lru: newPinLRU(entries), rdb: rdb, pfx: "xroute:affinity:", wait: wait}
}

// get finds the pin of key: this replica's, then Redis's.
func (a *affinity) get(ctx context.Context, key string) (Pin, bool) {
	now := a.now().UnixNano()
	if p, ok := a.lru.get(key, now); ok {
		return p, true
	}
	if !a.shared(now) {
		return Pin{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	v, err := a.rdb.Get(ctx, a.pfx+key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		a.redisUp()
		return Pin{}, false
	case err != nil:
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			a.redisFailed("get", err)
		}
		return Pin{}, false
	}
	a.redisUp()
	p, ok := decodePin(v)
	if ok {
		a.lru.put(key, p, now, int64(a.ttl))
	}
	return p, ok
}

// set pins key for ttl, here and in Redis. A pin Redis holds already, and
// written less than half its TTL ago, is only refreshed here: a session's
// every turn does not cost a Redis write.
func (a *affinity) set(ctx context.Context, key string, p Pin, ttl time.Duration) {
	now := a.now().UnixNano()
	if a.lru.put(key, p, now, int64(ttl)) || !a.shared(now) {
		return
	}
	// The caller may have left with the answer: the pin is still worth
	// writing, within the Redis bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.wait)
	defer cancel()
	if err := a.rdb.Set(ctx, a.pfx+key, encodePin(p), ttl).Err(); err != nil {
		a.redisFailed("set", err)
		return
	}
	a.redisUp()
}

func (a *affinity) shared(now int64) bool {
	return a.rdb != nil && now >= a.retryAt.Load()
}

func (a *affinity) redisFailed(op string, err error) {
	a.redisErrors.Add(1)
	a.retryAt.Store(a.now().Add(affinityRedisBackoff).UnixNano())
	if !a.down.Swap(true) {
		a.log.Warn("session affinity: Redis failed; this replica keeps to its own pins", zap.String("op", op), zap.Error(err))
	}
}

func (a *affinity) redisUp() {
	if a.down.Swap(false) {
		a.log.Info("session affinity: Redis answers again")
	}
}

// encodePin is "deployment\x00credential\x00tokens".
func encodePin(p Pin) string {
	return p.Deployment + "\x00" + p.Credential + "\x00" + strconv.Itoa(p.Tokens)
}

func decodePin(s string) (Pin, bool) {
	d, rest, ok := strings.Cut(s, "\x00")
	if !ok {
		return Pin{}, false
	}
	c, t, ok := strings.Cut(rest, "\x00")
	if !ok {
		return Pin{}, false
	}
	n, err := strconv.Atoi(t)
	if err != nil || d == "" {
		return Pin{}, false
	}
	return Pin{Deployment: d, Credential: c, Tokens: n}, true
}

// pinLRU is a bounded LRU of pins with an expiry each. (ristretto, used
// for the auth and response caches, may refuse to admit a new key, and a
// refused pin is a session sent to a cold cache; an LRU keeps the newest.)
type pinLRU struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type pinEntry struct {
	key     string
	pin     Pin
	expires int64 // unix ns
	shared  int64 // when the same pin was last written to Redis (unix ns)
}

func newPinLRU(max int) *pinLRU {
	return &pinLRU{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (l *pinLRU) get(key string, now int64) (Pin, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.items[key]
	if !ok {
		return Pin{}, false
	}
	pe := e.Value.(*pinEntry)
	if pe.expires <= now {
		l.order.Remove(e)
		delete(l.items, key)
		return Pin{}, false
	}
	l.order.MoveToFront(e)
	return pe.pin, true
}

// put stores p under key until now+ttl. It reports whether the same pin
// (deployment and key) was stored less than half ttl ago, and is so
// still in Redis; otherwise it counts the pin as written there now.
func (l *pinLRU) put(key string, p Pin, now, ttl int64) (fresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		pe := e.Value.(*pinEntry)
		same := pe.pin.Deployment == p.Deployment && pe.pin.Credential == p.Credential
		fresh = same && pe.expires > now && now-pe.shared < ttl/2
		pe.pin, pe.expires = p, max(pe.expires, now+ttl)
		if !fresh {
			pe.shared = now
		}
		l.order.MoveToFront(e)
		return fresh
	}
	l.items[key] = l.order.PushFront(&pinEntry{key: key, pin: p, expires: now + ttl, shared: now})
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*pinEntry).key)
	}
	return false
}

func (l *pinLRU) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

// sessionKey names a session of one account for one public model: the
// first of the caller's x-session-id, the request's prompt_cache_key, the
// agent's session header, else a hash of the stable prefix (tools, system
// prompt, the messages up to the first user turn) — each kind apart, so
// that a header value never meets a hash. The key is a hash: account and
// session ids never reach Redis in clear.
func sessionKey(c Caller, model string, req *providers.ChatRequest) string {
	kind, id := "h", c.Session
	switch {
	case id != "":
	case req.CacheKey != "":
		kind, id = "k", req.CacheKey
	case c.AgentSession != "":
		kind, id = "a", c.AgentSession
	}
	h := sha256.New()
	for _, s := range [...]string{c.Account, model, kind} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if id != "" {
		h.Write([]byte(id))
	} else {
		h.Write([]byte("p\x00"))
		stablePrefix(h, req.Body)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// stablePrefix writes what stays the same over a session's turns in a chat
// body: its tools, then its messages up to and including the first user
// message (system and developer prompts before it). gjson reads only
// those parts of the body, with no decode.
func stablePrefix(w interface{ Write([]byte) (int, error) }, body []byte) {
	w.Write([]byte(gjson.GetBytes(body, "tools").Raw))
	w.Write([]byte{0})
	gjson.GetBytes(body, "messages").ForEach(func(_, m gjson.Result) bool {
		w.Write([]byte(m.Raw))
		return m.Get("role").Str != "user"
	})
}

// ttlRe finds the cache lifetimes a body asks for: cache_control's "ttl"
// (Anthropic: "5m", "1h") and prompt_cache_retention (OpenAI: "24h").
var ttlRe = regexp.MustCompile(`"(?:ttl|prompt_cache_retention)"\s*:\s*"(\d+)([smh])"`)

// askedTTL is the longest cache lifetime a request asks for (0: none).
func askedTTL(req *providers.ChatRequest) time.Duration {
	var best time.Duration
	for _, b := range [...][]byte{req.Native, req.Body} {
		if !bytes.Contains(b, []byte(`"ttl"`)) && !bytes.Contains(b, []byte(`"prompt_cache_retention"`)) {
			continue
		}
		for _, m := range ttlRe.FindAllSubmatch(b, 16) {
			n, err := strconv.Atoi(string(m[1]))
			if err != nil || n <= 0 || n > 1000 {
				continue
			}
			unit := time.Second
			switch m[2][0] {
			case 'm':
				unit = time.Minute
			case 'h':
				unit = time.Hour
			}
			best = max(best, time.Duration(n)*unit)
		}
	}
	return min(best, 24*time.Hour)
}

// session is one request's affinity: its key, the pin it found, and what
// the request needs to pin itself once served.
type session struct {
	a      *affinity
	key    string
	pin    Pin
	pinned bool
	ttl    time.Duration
}

// lookupSession finds the pin of req's session on model m (nil when m has
// affinity off or there is no pin table).
func (r *Router) lookupSession(ctx context.Context, m *Model, req *providers.ChatRequest) *session {
	if r.aff == nil || !m.affinity || req == nil || !m.caches() {
		return nil
	}
	s := &session{a: r.aff, key: sessionKey(callerFrom(ctx), m.Name, req), ttl: max(r.aff.ttl, askedTTL(req))}
	s.pin, s.pinned = r.aff.get(ctx, s.key)
	return s
}

// served records where the session's request was served, with the usage
// the upstream reported (nil: unknown yet): the session is pinned there
// when the request read or wrote the provider's cache, or when the
// deployment caches on its own. It counts the outcome once.
func (s *session) served(ctx context.Context, d *Deployment, cred string, u *providers.Usage) {
	if s == nil {
		return
	}
	cached := 0
	if u != nil {
		cached = u.CachedTokens + u.CacheWriteTokens
	}
	if cached == 0 && d.cachesAutomatically() && u != nil {
		cached = u.PromptTokens
	}
	same := s.pinned && s.pin.Deployment == d.name && s.pin.Credential == cred
	switch {
	case !s.pinned:
		s.a.misses.Add(1)
	case same:
		s.a.hits.Add(1)
	default:
		s.a.repins.Add(1)
	}
	if cached == 0 && !same {
		return // nothing cached there: keep the pin (if any) where the cache is
	}
	if cached == 0 {
		cached = s.pin.Tokens
	}
	s.a.set(ctx, s.key, Pin{Deployment: d.name, Credential: cred, Tokens: cached}, s.ttl)
}

// caches reports whether some deployment of m has a prompt cache (its
// own, or one xroute marks breakpoints for): for the others a session is
// not worth a lookup.
func (m *Model) caches() bool {
	for _, d := range m.Deployments {
		if d.cachesAutomatically() || d.cacheMin(m) > 0 {
			return true
		}
		if _, ok := d.adapter.(providers.BreakpointCacher); ok {
			return true // marked by the caller, when breakpoints are off
		}
	}
	return false
}

// cachesAutomatically reports whether d's provider caches prompt prefixes
// without markers: it prices cached input below input and its adapter does
// not ask for breakpoints (Anthropic's and Bedrock's do).
func (d *Deployment) cachesAutomatically() bool {
	if d.Info == nil || d.Info.CachedInput <= 0 || d.Info.CachedInput >= d.Info.Input {
		return false
	}
	_, marks := d.adapter.(providers.BreakpointCacher)
	return !marks
}

// cacheMin is the prefix length from which an attempt at d may get cache
// breakpoints added (0: none): the catalog's minimum, else the adapter's.
func (d *Deployment) cacheMin(m *Model) int {
	if m == nil || !m.breakpoints {
		return 0
	}
	bc, ok := d.adapter.(providers.BreakpointCacher)
	if !ok {
		return 0
	}
	if d.Info != nil && d.Info.MinCacheTokens > 0 {
		return d.Info.MinCacheTokens
	}
	return bc.MinCacheTokens(d.Model)
}

// AffinityStats returns the affinity counters of this replica.
func (r *Router) AffinityStats() AffinityStats {
	if r.aff == nil {
		return AffinityStats{}
	}
	return AffinityStats{Hits: r.aff.hits.Load(), Misses: r.aff.misses.Load(), Repins: r.aff.repins.Load(), RedisErrors: r.aff.redisErrors.Load()}
}

// won hands the winner of a request to its session: a stream's usage comes
// later (peeked tells it), any other answer's is known now.
func (s *session) won(ctx context.Context, v any, d *Deployment, cred string, u *providers.Usage) {
	if s == nil {
		return
	}
	if pk, ok := v.(*peeked); ok {
		pk.sess, pk.cred = s, cred
		return
	}
	s.served(ctx, d, cred, u)
}
