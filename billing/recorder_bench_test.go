package billing

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/requestid"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/vault"
)

// BenchmarkRecorderCommitSQLite measures the usage writer's sustained rate
// on SQLite as the request path uses it: concurrent requests each making
// their record durable (spool append) while the writer commits batches with
// ledger debits. Reports records/s, the store included: the run ends with a
// Flush.
//
// keyed is the ledger as the gateway runs it: every debit MACed and
// chained, the account's head rewritten per batch (store.KeyLedger).
func BenchmarkRecorderCommitSQLite(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprint("keyed=", keyed), func(b *testing.B) {
			db, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			keyBench(b, db, keyed)
			benchRecorderCommit(b, db)
		})
	}
}

// keyBench keys db's ledger with a fresh vault, as the gateway does.
func keyBench(b *testing.B, db *store.DB, keyed bool) {
	if !keyed {
		return
	}
	v, err := vault.Open(context.Background(), db, vault.GenerateMasterKey())
	if err != nil {
		b.Fatal(err)
	}
	db.KeyLedger(v.ChainKeys("ledger"))
}

// BenchmarkRecorderCommitPostgres is the same on PostgreSQL (skipped
// without XROUTE_TEST_POSTGRES_URL): the shared store of several replicas,
// where each batch's ledger debits lock their account rows.
func BenchmarkRecorderCommitPostgres(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprint("keyed=", keyed), func(b *testing.B) {
			db, err := store.OpenPostgres(context.Background(), storetest.Postgres(b))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			keyBench(b, db, keyed)
			benchRecorderCommit(b, db)
		})
	}
}

func benchRecorderCommit(b *testing.B, db *store.DB) {
	sp, err := OpenSpool(filepath.Join(b.TempDir(), "spool"))
	if err != nil {
		b.Fatal(err)
	}
	r := NewRecorder(db, zap.NewNop(), 256, 65536, 200*time.Millisecond, WithSpool(sp))
	defer r.Close(context.Background())
	var n atomic.Int64
	b.SetParallelism(64) // many requests in flight, as under load
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Add(1)
			// Ids as the gateway makes them: their order decides which
			// index pages a batch rewrites.
			rec := books.UsageRecord{RequestID: requestid.New(), AccountID: keys.DefaultAccountID, KeyID: "key_bench",
				Model: "m", Provider: "p", PromptTokens: 10, CompletionTokens: 20, Status: 200, CreatedAt: time.Now(), CostNano: 1234}
			if err := r.Commit(context.Background(), rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "records/s")
}

// BenchmarkRecorderCommitSequential is the light-load case: one request at
// a time, so every commit is a transaction of one record.
func BenchmarkRecorderCommitSequential(b *testing.B) {
	for _, tc := range []struct {
		cost  int64
		spool bool
		keyed bool
	}{{0, false, false}, {1234, false, false}, {1234, false, true}, {1234, true, false}, {1234, true, true}} {
		b.Run(fmt.Sprintf("cost=%d/spool=%v/keyed=%v", tc.cost, tc.spool, tc.keyed), func(b *testing.B) {
			cost := tc.cost
			db, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			keyBench(b, db, tc.keyed)
			var opts []RecorderOption
			if tc.spool {
				sp, err := OpenSpool(filepath.Join(b.TempDir(), "spool"))
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, WithSpool(sp))
			}
			r := NewRecorder(db, zap.NewNop(), 256, 65536, 200*time.Millisecond, opts...)
			defer r.Close(context.Background())
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				rec := books.UsageRecord{RequestID: requestid.New(), AccountID: keys.DefaultAccountID, KeyID: "k", Model: "m",
					Status: 200, CreatedAt: time.Now(), CostNano: cost}
				if err := r.Commit(context.Background(), rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDebitUsageBatch is the usage writer's ledger part alone: one
// batch of 256 debits over 4 accounts on SQLite, plain and keyed (an HMAC
// per debit, a head per account). Reports the cost per debit.
func BenchmarkDebitUsageBatch(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprint("keyed=", keyed), func(b *testing.B) {
			ctx := context.Background()
			db, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			accts := []string{"acct_0", "acct_1", "acct_2", "acct_3"}
			for _, id := range accts {
				if err := db.CreateAccount(ctx, keys.Account{ID: id, Name: id, CreatedAt: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			keyBench(b, db, keyed)
			batch := make([]books.UsageDebit, 256)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = books.UsageDebit{AccountID: accts[i%4], RequestID: requestid.New(), Amount: 1234, KeyID: "k", At: time.Now()}
				}
				if err := db.DebitUsage(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/debit")
		})
	}
}
