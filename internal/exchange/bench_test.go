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
// audit row) and write the token.exchanged audit row, on SQLite, from 8
// concurrent callers. It reports exchanges per second and the p50/p99
// latency of one exchange.
func BenchmarkExchange(b *testing.B) {
	f := newFixture(b, nil)
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))
	}
	// Warm the JWKS cache, as a running gateway has it.
	if _, err := f.svc.Exchange(context.Background(), req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference")))); err != nil {
		b.Fatal(err)
	}
	const workers = 8
	lat := make([]time.Duration, b.N)
	next := make(chan int, b.N)
	for i := range b.N {
		next <- i
	}
	close(next)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				if _, err := f.svc.Exchange(context.Background(), req(toks[i])); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "exchanges/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
