package httpapi_test

import (
	"bufio"
	"context"
	"flag"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// The churn run's size: small in CI, the figures by hand:
//
//	go test ./internal/httpapi -run TestHoleChurnReturnsToBaseline -v \
//	  -churn.callers=200 -churn.stalls=50 -churn.idle=2s
var (
	churnCallers = flag.Int("churn.callers", 16, "churn test: callers that disconnect at random points")
	churnStalls  = flag.Int("churn.stalls", 6, "churn test: requests whose upstreams stall")
	churnIdle    = flag.Duration("churn.idle", 300*time.Millisecond, "churn test: router.first_byte_timeout and router.stream_idle_timeout")
)

// TestHoleChurnReturnsToBaseline: callers that disconnect at random points
// and upstreams that stall (before their headers' first chunk or after it)
// left goroutines, sockets and credit holds behind until
// server.request_timeout. Once every caller is done, the goroutine count
// returns to its baseline within the idle timeout, and every request
// that reached the gateway has its usage record (a completed answer a
// 200 with its tokens).
func TestHoleChurnReturnsToBaseline(t *testing.T) {
	callers, stalls, idle := *churnCallers, *churnStalls, *churnIdle
	up := mock.Config{TokensPerSec: 400, CompletionTokens: 40}
	backup := up
	g := newGateway(t, gwOptions{mock: up, backup: &backup, mutate: func(c *config.Config) {
		priced(c)
		c.Router.FirstByteTimeout, c.Router.StreamIdleTimeout = idle, idle
		c.Server.StreamKeepAlive = idle / 3
		// One address opens every connection at once: the cap must allow
		// the burst (it is for connections that never authenticate).
		c.Server.PreAuthConns = 2 * (callers + stalls)
		c.Server.RequestTimeout = 30 * time.Second // without stream timeouts, stalls end here
	}})
	if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 1000*billing.NanoPerUSD, "t", "test"); err != nil {
		t.Fatal(err)
	}
	_, addr := serveReal(t, g, nil)
	base := "http://" + addr + "/v1/chat/completions"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	// A caller's plan: its message (with the upstream's directive), how
	// many lines it reads before it hangs up (-1: all) and after how long
	// it hangs up wherever it is (0: never).
	type plan struct {
		text   string
		lines  int
		hangUp time.Duration
	}
	type outcome struct {
		id        string
		completed bool
	}
	run := func(planOf func(i int) plan) []outcome {
		n := callers + stalls
		out := make([]outcome, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := planOf(i)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if p.hangUp > 0 {
					defer time.AfterFunc(p.hangUp, cancel).Stop()
				}
				body := `{"model":"gpt-4o-mini","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"` + p.text + `"}]}`
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+g.key)
				resp, err := client.Do(req)
				if err != nil {
					return // hung up before the answer began
				}
				defer resp.Body.Close()
				out[i].id = resp.Header.Get("x-request-id")
				r := bufio.NewReader(resp.Body)
				for read := 0; p.lines < 0 || read < p.lines; read++ {
					line, err := r.ReadString('\n')
					if line == "data: [DONE]\n" {
						out[i].completed = true
					}
					if err != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		return out
	}

	// Warm up (the first requests fill caches and pools), then measure
	// without the idle upstream connections the transport keeps.
	run(func(int) plan { return plan{text: "hello", lines: -1} })
	g.app.CloseIdleUpstreams()
	baseline, baseRSS := settle(t, -1, 0)

	var peak atomic.Int64
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			peak.Store(max(peak.Load(), int64(runtime.NumGoroutine())))
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	}()
	rng := rand.New(rand.NewPCG(17, 17))
	var mu sync.Mutex
	draw := func(n int) int { mu.Lock(); defer mu.Unlock(); return rng.IntN(n) }
	start := time.Now()
	outs := run(func(i int) plan {
		switch {
		case i < stalls && i%2 == 0:
			// Every deployment stalls after its headers: a 504 after two
			// first-byte timeouts.
			return plan{text: "hello #mock:stall=0", lines: -1}
		case i < stalls:
			// A stall after some text: an error event after the idle
			// timeout, the text billed.
			return plan{text: "hello #mock:stall=2", lines: -1}
		}
		switch draw(3) {
		case 0: // hangs up at a random moment, maybe before any answer
			return plan{text: "hello", lines: -1, hangUp: time.Duration(1+draw(100)) * time.Millisecond}
		case 1: // reads a random number of lines, then hangs up
			return plan{text: "hello", lines: draw(60)}
		default:
			return plan{text: "hello", lines: -1}
		}
	})
	busy := time.Since(start)
	close(sampling)
	<-sampled
	_, peakRSS := rss()
	g.app.CloseIdleUpstreams()
	after, afterRSS := settle(t, baseline, idle)
	settled := time.Since(start) - busy

	recs := g.usage()
	byID := map[string]books.UsageRecord{}
	for _, r := range recs {
		byID[r.RequestID] = r
	}
	completed, answered := 0, 0
	for i, o := range outs {
		if o.id == "" {
			continue
		}
		answered++
		rec, ok := byID[o.id]
		if !ok {
			t.Errorf("request %s has no usage record", o.id)
			continue
		}
		if i < stalls && rec.ErrorCode != "upstream_stalled" {
			t.Errorf("stalled upstream recorded as %+v", rec)
		}
		if o.completed {
			completed++
			if rec.Status != 200 || rec.CompletionTokens == 0 || rec.CostNano <= 0 {
				t.Errorf("completed answer recorded as %+v", rec)
			}
		}
	}
	t.Logf("%d callers + %d stalling upstreams, idle timeout %s: %d answered (%d completed), all with usage records",
		callers, stalls, idle, answered, completed)
	t.Logf("goroutines: baseline %d, peak %d, after %d (%s after the last caller, who ended %s after the first began)", baseline, peak.Load(), after, settled.Round(time.Millisecond), busy.Round(time.Millisecond))
	t.Logf("RSS: baseline %.1f MiB, peak %.1f MiB, after %.1f MiB (heap returned to the OS)", mib(baseRSS), mib(peakRSS), mib(afterRSS))
	if completed == 0 {
		t.Fatal("no answer completed: the run proves nothing")
	}
}

// settle waits until the goroutine count is at most baseline (baseline
// < 0: until it stops moving), failing after a generous bound, and
// returns it with the RSS after the heap is returned to the OS.
func settle(t *testing.T, baseline int, idle time.Duration) (int, int64) {
	t.Helper()
	deadline := time.Now().Add(hangGuard + 2*idle)
	last := -1
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if (baseline >= 0 && n <= baseline) || (baseline < 0 && n == last) {
			debug.FreeOSMemory()
			_, r := rss()
			return n, r
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines did not return to the baseline %d: %d left\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
		}
		last = n
		// Not Eventually: "stopped moving" is judged over this interval,
		// and its backoff would compare counts a millisecond apart.
		time.Sleep(20 * time.Millisecond)
	}
}

// rss is the process's resident set size, in pages and bytes.
func rss() (int64, int64) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages, pages * int64(os.Getpagesize())
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
