package billing

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/requestid"
)

// BenchmarkSpoolAppend is the durable write every answer waits for: one
// usage record's line appended to the current segment, from as many
// goroutines as the benchmark runs with (-cpu), across segment rotations.
func BenchmarkSpoolAppend(b *testing.B) {
	s, err := OpenSpool(b.TempDir(), WithSpoolLimit(0))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := books.UsageRecord{
		KeyID: "key_01HZX3P7Q2", AccountID: "acct_01HZX3P7Q2", Model: "gpt-4o-mini", Deployment: "openai-east",
		Provider: "openai", UpstreamModel: "gpt-4o-mini-2024-07-18", Endpoint: "chat", PromptTokens: 1200, CompletionTokens: 300, CostNano: 123456, Status: 200,
		CreatedAt: time.Unix(1_700_000_000, 0).UTC(),
	}
	var done atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := rec
		for pb.Next() {
			r.RequestID = requestid.New()
			seg, err := s.Append(r)
			if err != nil {
				b.Error(err)
				return
			}
			// Committed at once, as the writer does in batches: sealed
			// segments are deleted and the spool stays small.
			s.Committed(seg, 1)
			done.Add(1)
		}
	})
	b.ReportMetric(float64(done.Load())/b.Elapsed().Seconds(), "records/s")
}
