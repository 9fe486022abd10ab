package billing

import (
	"strings"
	"sync"
	"testing"
)

// TestRememberedCountsAreTheCounts: a count served from the cache is the
// count the tokenizer makes, for text and for whole prompts resent with a
// new turn, and the same bytes are not confused between a message's JSON
// and plain text.
func TestRememberedCountsAreTheCounts(t *testing.T) {
	e := testEstimator(t)
	o, c := *e.o200k, *e.cl100k
	o.counts, c.counts = nil, nil
	uncached := &Estimator{o200k: &o, cl100k: &c}

	text := strings.Repeat("Remembered counts must equal fresh ones, 12345! ", 20)
	for range 3 {
		if got, want := e.o200k.Count(text), e.o200k.count(text); got != want {
			t.Fatalf("Count = %d, the tokenizer %d", got, want)
		}
	}
	for turn := 10; turn < 14; turn++ {
		body := agentBody(turn)
		for range 2 {
			if got, want := e.PromptTokens(body), uncached.PromptTokens(body); got != want {
				t.Fatalf("turn %d: PromptTokens = %d, uncached %d", turn, got, want)
			}
		}
	}
	// A message object, then a string holding exactly its JSON text.
	msg := `{"role":"user","content":"` + strings.Repeat("hello there ", 30) + `"}`
	body := `{"model":"gpt-4o","messages":[` + msg + `]}`
	e.PromptTokens([]byte(body))
	if got, want := e.o200k.Count(msg), e.o200k.count(msg); got != want {
		t.Fatalf("the message's JSON as text: Count = %d, want %d (a message's count served as text)", got, want)
	}
}

// TestCountCacheIsBounded: the cache keeps at most two generations, and a
// count in use is carried into the new generation.
func TestCountCacheIsBounded(t *testing.T) {
	c := newCountCache()
	hot := c.key(kindText, "hot")
	c.put(hot, 7)
	for i := range 3 * countCacheGen {
		c.put(countKey{hash: uint64(i), n: 1, kind: kindText}, i)
		if i%(countCacheGen/2) == 0 {
			if n, ok := c.get(hot); !ok || n != 7 {
				t.Fatalf("after %d puts the hot count is %d, %v", i, n, ok)
			}
		}
	}
	if n := len(c.cur) + len(c.prev); n > 2*countCacheGen {
		t.Fatalf("%d counts kept, want at most %d", n, 2*countCacheGen)
	}
	if _, ok := c.get(countKey{hash: 0, n: 1, kind: kindText}); ok {
		t.Fatal("the oldest count survived two generations")
	}
}

// TestCountCacheConcurrent runs under -race in CI.
func TestCountCacheConcurrent(t *testing.T) {
	e := testEstimator(t)
	want := e.PromptTokens(agentBody(6))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if got := e.PromptTokens(agentBody(6)); got != want {
					t.Errorf("goroutine %d, round %d: %d, want %d", g, i, got, want)
					return
				}
				e.PromptTokens(agentBody(7 + g))
			}
		}()
	}
	wg.Wait()
}
