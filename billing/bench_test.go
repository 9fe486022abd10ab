package billing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// benchLedger is a ledger over a real store with one funded, loaded account.
func benchLedger(b *testing.B) *Ledger {
	b.Helper()
	ctx := context.Background()
	l := NewLedger(ledgerStore(b, "acct_a"), fixedClock)
	if _, _, err := l.TopUp(ctx, "acct_a", MaxAmount, "seed", "bench"); err != nil {
		b.Fatal(err)
	}
	if _, _, _, err := l.Balance(ctx, "acct_a"); err != nil { // load it
		b.Fatal(err)
	}
	return l
}

// BenchmarkReserveSettle is the hot path's cost: hold the max cost before
// routing, settle the real cost after (the store write is the usage
// writer's, off this path).
func BenchmarkReserveSettle(b *testing.B) {
	l := benchLedger(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := l.Reserve(ctx, "acct_a", 5000)
		if err != nil {
			b.Fatal(err)
		}
		r.Settle(1234)
	}
}

// BenchmarkReserveSettleParallel: every goroutine on the same account (the
// most contended case).
func BenchmarkReserveSettleParallel(b *testing.B) {
	l := benchLedger(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := l.Reserve(ctx, "acct_a", 5000)
			if err != nil {
				b.Error(err)
				return
			}
			r.Settle(1234)
		}
	})
}

func BenchmarkReserveRefused(b *testing.B) {
	l := benchLedger(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Reserve(ctx, "acct_a", MaxAmount+1); err != ErrInsufficientCredits {
			b.Fatal(err)
		}
	}
}

func BenchmarkBudgetCheckAdd(b *testing.B) {
	ctx := context.Background()
	clock := &testClock{t: ledgerNow}
	for _, withBudget := range []bool{false, true} {
		name := "none"
		if withBudget {
			name = "account+key"
		}
		b.Run(name, func(b *testing.B) {
			db := ledgerStore(b)
			budgetScopes(b, db)
			bs := NewBudgets(db, clock.Now, nil)
			if withBudget {
				for _, bd := range []Budget{{Scope: ScopeAccount, ScopeID: "acct_a", Period: Monthly, Limit: MaxAmount}, {Scope: ScopeKey, ScopeID: "key_1", Period: Daily, Limit: MaxAmount}} {
					if _, err := bs.Set(ctx, bd); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := bs.Check(ctx, "acct_a", "key_1", 5000); err != nil {
					b.Fatal(err)
				}
				if err := bs.Add(ctx, "acct_a", "key_1", 1234); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// chatBody1K is a typical chat request of about 1 KB.
const chatBody1K = `{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":512,"messages":[` +
	`{"role":"system","content":"You are a concise assistant for a developer tools company. Answer in plain English, use short paragraphs, and include code only when the user asks for it. If you are unsure, say so instead of guessing."},` +
	`{"role":"user","content":"We run a Go service behind a load balancer and see p99 latency spikes every few minutes. GC pauses look small in the traces."},` +
	`{"role":"assistant","content":"Spikes on a regular interval often come from periodic work: cache refreshes, connection pool churn, or a cron-like job. Can you share what runs on a timer in the service, and whether the spikes line up with deploys or with traffic peaks?"},` +
	`{"role":"user","content":"There is a cache refresh every 5 minutes that reloads about 200k entries from Postgres. How would you smooth that out without serving stale data for long? Please list three options and their trade-offs."}]}`

func BenchmarkPromptTokens(b *testing.B) {
	e := testEstimator(b)
	body := []byte(chatBody1K)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		e.PromptTokens(body)
	}
}

// BenchmarkTextTokens is the tokenizer itself (Count without the cache of
// long strings).
func BenchmarkTextTokens(b *testing.B) {
	e := testEstimator(b)
	text := strings.Repeat("Streaming deltas add up to text like this, with numbers 12345 and punctuation! ", 13)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		e.o200k.count(text)
	}
}

// agentBody is a coding agent's request of about 330 KB: a system prompt,
// tool schemas and turns earlier requests sent too, then one new turn.
func agentBody(turn int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"model":"gpt-4o","max_tokens":8192,"messages":[{"role":"system","content":`)
	sb.WriteString(strconv.Quote(strings.Repeat("You are a coding agent. Read files before you edit them; run the tests after. ", 400)))
	sb.WriteString(`}`)
	for i := range turn {
		role := [2]string{"user", "assistant"}[i%2]
		fmt.Fprintf(&sb, `,{"role":%q,"content":%q}`, role, fmt.Sprintf("turn %d: ", i)+strings.Repeat("func handler(w http.ResponseWriter, r *http.Request) { if err := r.ParseForm(); err != nil { return } }\n", 25))
	}
	sb.WriteString(`],"tools":[`)
	for i := range 40 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"type":"function","function":{"name":"tool_%d","description":%q,"parameters":{"type":"object","properties":{"path":{"type":"string"}}}}}`, i, strings.Repeat("Reads or writes a file in the workspace. ", 20))
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// BenchmarkPromptTokensAgent is the credit hold's count of an agent's
// prompt: seen for the first time (no cache), and resent with one new
// turn, as the agent's next request is.
func BenchmarkPromptTokensAgent(b *testing.B) {
	e := testEstimator(b)
	o, c := *e.o200k, *e.cl100k
	o.counts, c.counts = nil, nil
	uncached := &Estimator{o200k: &o, cl100k: &c}
	prev, next := agentBody(120), agentBody(121)
	e.PromptTokens(prev)
	if uncached.PromptTokens(next) != e.PromptTokens(next) {
		b.Fatal("the cache changed the count")
	}
	for _, tc := range []struct {
		name string
		e    *Estimator
	}{{"first-sight", uncached}, {"resent", e}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(next)))
			b.ReportAllocs()
			for b.Loop() {
				tc.e.PromptTokens(next)
			}
		})
	}
}

// BenchmarkTextTokensTiktokenGo is the reference implementation on the
// same text, for comparison.
func BenchmarkTextTokensTiktokenGo(b *testing.B) {
	enc := reference(b)["o200k_base"]
	text := strings.Repeat("Streaming deltas add up to text like this, with numbers 12345 and punctuation! ", 13)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		enc.EncodeOrdinary(text)
	}
}
