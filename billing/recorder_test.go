package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/testutil"
)

type memWriter struct {
	mu       sync.Mutex
	byID     map[string]books.UsageRecord
	batches  []int
	failNext int
	before   func() // if set, runs before each write, outside mu
}

func (m *memWriter) InsertUsage(_ context.Context, recs []books.UsageRecord) error {
	if m.before != nil {
		m.before()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return errors.New("database is locked")
	}
	if m.byID == nil {
		m.byID = map[string]books.UsageRecord{}
	}
	for _, r := range recs {
		m.byID[r.RequestID] = r
	}
	m.batches = append(m.batches, len(recs))
	return nil
}

func TestRecorderFlushesEverythingOnClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name     string
		n        int
		batch    int
		failNext int
	}{
		{"fewer than a batch", 3, 100, 0},
		{"many batches", 1000, 64, 0},
		{"transient write failures", 50, 16, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &memWriter{failNext: tt.failNext}
			r := NewRecorder(w, zap.NewNop(), tt.batch, tt.batch, time.Hour) // interval never fires
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := g; i < tt.n; i += 4 {
						if err := r.Record(books.UsageRecord{RequestID: fmt.Sprint(i)}); err != nil {
							t.Error(err)
						}
					}
				}(g)
			}
			wg.Wait()
			if err := r.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(w.byID) != tt.n {
				t.Fatalf("written %d records, want %d", len(w.byID), tt.n)
			}
			for _, b := range w.batches {
				if b > tt.batch {
					t.Fatalf("batch of %d exceeds limit %d", b, tt.batch)
				}
			}
			if err := r.Record(books.UsageRecord{RequestID: "late"}); !errors.Is(err, ErrClosed) {
				t.Fatalf("record after close: %v", err)
			}
		})
	}
}

func TestCommitWaitsForTheWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := &memWriter{}
	r := NewRecorder(w, zap.NewNop(), 64, 1024, time.Hour)
	defer r.Close(context.Background())
	// The first write waits for every other commit to queue up behind it,
	// as they do behind a real transaction: an instant store could else
	// keep up with them one at a time, and the test would prove nothing.
	var first sync.Once
	w.before = func() {
		first.Do(func() {
			testutil.Wait(5*time.Second, func() bool { return r.Pending() >= 199 })
		})
	}
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprint("c", i)
			if err := r.Commit(context.Background(), books.UsageRecord{RequestID: id}); err != nil {
				t.Error(err)
				return
			}
			w.mu.Lock()
			_, ok := w.byID[id]
			w.mu.Unlock()
			if !ok {
				t.Errorf("Commit returned before %s was written", id)
			}
		}(i)
	}
	wg.Wait()
	if len(w.batches) >= 200 {
		t.Fatalf("200 concurrent commits took %d transactions: no group commit", len(w.batches))
	}
}

func TestCommitReportsWriteFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := &memWriter{failNext: 100}
	r := NewRecorder(w, zap.NewNop(), 8, 8, time.Hour)
	defer r.Close(context.Background())
	if err := r.Commit(context.Background(), books.UsageRecord{RequestID: "x"}); err == nil {
		t.Fatal("a record that could not be written must not be acknowledged")
	}
}
