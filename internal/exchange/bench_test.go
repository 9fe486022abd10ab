package exchange_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkExchange mints keys as POST /v1/auth/token does, minus the
// HTTP: verify an RS256 token against the cached JWKS, match the rules,
// record the jti, create the key (account check, insert, key.created
// audit row) and write the token.exchanged audit row, on SQLite.
//
//   - closed-8: 8 callers, each exchanging as soon as its last answer
//     came: the most this machine mints (exchanges/s), and the latency
//     when the store is the queue.
//   - open-200: one exchange started every 5 ms whatever the answers
//     (200/s, the floor): the latency a caller sees at that rate.
//
// Both report exchanges per second and the p50/p99 latency of one
// exchange.
func BenchmarkExchange(b *testing.B) {
	b.Run("closed-8", func(b *testing.B) { benchExchange(b, 8, 0) })
	b.Run("open-200", func(b *testing.B) { benchExchange(b, 0, 5*time.Millisecond) })
}

func benchExchange(b *testing.B, workers int, every time.Duration) {
	f := newFixture(b, nil)
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))
	}
	// Warm the JWKS cache, as a running gateway has it.
	if _, err := f.svc.Exchange(context.Background(), req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference")))); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	one := func(i int) {
		t0 := time.Now()
		if _, err := f.svc.Exchange(context.Background(), req(toks[i])); err != nil {
			b.Error(err)
			return
		}
		lat[i] = time.Since(t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	if workers > 0 {
		next := make(chan int, b.N)
		for i := range b.N {
			next <- i
		}
		close(next)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					one(i)
				}
			}()
		}
	} else {
		// Each start has its time (start + i × every); a late one goes at
		// once, so a stalled scheduler does not lower the offered rate.
		for i := range b.N {
			time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
			wg.Add(1)
			go func() { defer wg.Done(); one(i) }()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "exchanges/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
