// Package shardmap is the sharded, bounded map the in-memory admission
// controls (keys/limits) and the anomaly detector (keys/audit) share: one
// lock and one map per shard, so that hot keys on different shards never
// contend, and a sampling eviction that keeps a full shard's insert cost
// constant.
package shardmap

import "sync"

// Count is how many shards a sharded structure has (a power of two, so a
// hash picks one with a mask).
const Count = 64

// sample is how many entries a full shard inspects to pick a victim.
const sample = 16

// Map is one lock and one map, padded so that neighbouring shards do not
// share a cache line. The owner locks Mu around every use of M.
type Map[K comparable, V any] struct {
	Mu sync.Mutex
	M  map[K]V
	_  [48]byte
}

// Sweep deletes every entry for which done reports true and returns how
// many went.
func Sweep[K comparable, V any](shards []Map[K, V], done func(V) bool) int {
	removed := 0
	for i := range shards {
		s := &shards[i]
		s.Mu.Lock()
		for k, v := range s.M {
			if done(v) {
				delete(s.M, k)
				removed++
			}
		}
		s.Mu.Unlock()
	}
	return removed
}

// Len counts the entries of every shard.
func Len[K comparable, V any](shards []Map[K, V]) int {
	n := 0
	for i := range shards {
		s := &shards[i]
		s.Mu.Lock()
		n += len(s.M)
		s.Mu.Unlock()
	}
	return n
}

// EvictOldest makes room in a full map: it inspects a random sample of
// entries, deletes every one that has expired (score <= now) and, if none
// had, deletes the sampled entry with the oldest score. Sampling keeps the
// cost constant when a flood of new keys meets a full shard, where an exact
// oldest would cost a scan of the whole shard for every insert.
func EvictOldest[K comparable, V any](m map[K]V, now int64, score func(V) int64) {
	var (
		victim K
		oldest int64
		found  bool
		freed  bool
		n      int
	)
	for k, v := range m { // map iteration starts at a random position
		if sc := score(v); sc <= now {
			delete(m, k)
			freed = true
		} else if !found || sc < oldest {
			victim, oldest, found = k, sc, true
		}
		if n++; n == sample {
			break
		}
	}
	if !freed && found {
		delete(m, victim)
	}
}
