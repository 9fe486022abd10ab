package billing

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
)

// BenchmarkRecorderCommitSQLite measures the usage writer's sustained rate
// on SQLite: concurrent requests each waiting for their record (and its
// ledger debit) to be committed, as the request path does. Reports
// records/s.
func BenchmarkRecorderCommitSQLite(b *testing.B) {
	db, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r := NewRecorder(db, zap.NewNop(), 256, 65536, time.Hour)
	defer r.Close(context.Background())
	var n atomic.Int64
	b.SetParallelism(64) // many requests in flight, as under load
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			rec := store.UsageRecord{RequestID: fmt.Sprint("req_", i), AccountID: store.DefaultAccountID, KeyID: "key_bench",
				Model: "m", Provider: "p", PromptTokens: 10, CompletionTokens: 20, Status: 200, CreatedAt: time.Now(), CostNano: 1234}
			if err := r.Commit(context.Background(), rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "records/s")
}
