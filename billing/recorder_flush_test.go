package billing

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/testutil"
)

// replaySlowed is a store whose writes take 30 ms, and 300 ms for a batch
// holding r5: one the replay writes (a slow pass, still in flight when
// Flush or Close is called).
// begun counts the writes started (before their delay).
type replaySlowed struct {
	*flakyWriter
	begun *atomic.Int32
}

func (w replaySlowed) InsertUsage(ctx context.Context, recs []books.UsageRecord) error {
	w.begun.Add(1)
	d := 30 * time.Millisecond
	for _, r := range recs {
		if r.RequestID == "r5" {
			d = 300 * time.Millisecond
		}
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	return w.flakyWriter.InsertUsage(ctx, recs)
}

// overflowing commits n spooled records while the writer is busy with a
// queue of one: most skip the queue and are left to the replay. It
// returns when they are committed (durable in the spool), not stored.
func overflowing(t *testing.T, r *Recorder, w replaySlowed, n int) {
	t.Helper()
	ctx := context.Background()
	if err := r.Commit(ctx, books.UsageRecord{RequestID: "r0", AccountID: "a", CostNano: 7}); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan struct{})
	go func() { defer close(flushed); r.Flush(ctx) }() // the writer is busy writing r0
	t.Cleanup(func() { <-flushed })
	testutil.Eventually(t, "the writer busy writing r0", func() bool { return w.begun.Load() > 0 })
	for i := 1; i < n; i++ {
		if err := r.Commit(ctx, books.UsageRecord{RequestID: fmt.Sprint("r", i), AccountID: "a", CostNano: 7}); err != nil {
			t.Fatal(err)
		}
	}
}

// Records that overflowed the queue (spooled, left to the replay) are
// written by Flush and by a graceful Close like any other, and their
// replay is no outage.
func TestFlushAndCloseWriteOverflowedRecords(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 10
	tests := []struct {
		name  string
		flush bool
		close bool
	}{
		{"flush", true, false},
		{"close", false, true},
		{"flush then close", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, err := OpenSpool(dir)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.WarnLevel)
			w := &flakyWriter{}
			var outages atomic.Int32
			slowed := replaySlowed{w, new(atomic.Int32)}
			r := NewRecorder(slowed, zap.New(core), 16, 1, time.Hour, WithSpool(sp), WithOnOutage(func() { outages.Add(1) }))
			defer r.Close(context.Background())
			overflowing(t, r, slowed, n)
			ctx := context.Background()
			if tt.flush {
				if err := r.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if got := w.stored(); got != n {
					t.Fatalf("Flush returned with %d of %d committed records stored", got, n)
				}
			}
			if tt.close {
				if err := r.Close(ctx); err != nil {
					t.Fatal(err)
				}
				if got := w.stored(); got != n {
					t.Fatalf("Close returned with %d of %d committed records stored", got, n)
				}
				if files := segmentFiles(t, dir); len(files) != 0 {
					t.Fatalf("segments left after a graceful Close: %v", files)
				}
			}
			if r.Outage() || outages.Load() != 0 {
				t.Fatalf("outage %v (%d reported) with a store that took every write", r.Outage(), outages.Load())
			}
			if logs.Len() != 0 {
				t.Fatalf("logged %v", logs.All())
			}
		})
	}
}

// Close against a hung store ends with its ctx, cancelling the writes in
// flight: that is a shutdown, neither an outage nor logged as one, and the
// records stay in the spool for the next start.
func TestCloseOnAHungStoreKeepsRecords(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	w := &flakyWriter{}
	var outages atomic.Int32
	r := NewRecorder(w, zap.New(core), 16, 1, time.Hour, WithSpool(sp), withBackoff(time.Millisecond, 5*time.Millisecond),
		WithOnOutage(func() { outages.Add(1) }))
	hang := make(chan struct{})
	defer close(hang)
	w.hang.Store(&hang)
	const n = 10
	for i := range n {
		if err := r.Commit(context.Background(), books.UsageRecord{RequestID: fmt.Sprint("h", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close on a hung store: %v, want its ctx's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %v past its ctx", d)
	}
	if err := r.Close(context.Background()); err != nil { // waits for the writer to end
		t.Fatal(err)
	}
	if r.Outage() || outages.Load() != 0 {
		t.Fatalf("outage %v (%d reported): a shutdown is no outage", r.Outage(), outages.Load())
	}
	if lines := errorLines(logs); len(lines) != 0 {
		t.Fatalf("logged at Error on shutdown: %v", lines)
	}
	if w.stored() != 0 {
		t.Fatalf("a hung store stored %d", w.stored())
	}
	sp2, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	w2 := &flakyWriter{}
	if got, err := sp2.Replay(context.Background(), w2, 100); err != nil || got < n {
		t.Fatalf("the next start replayed %d records (%v), want the %d", got, err, n)
	}
	for i := range n {
		if !w2.has(fmt.Sprint("h", i)) {
			t.Fatalf("h%d lost", i)
		}
	}
	sp2.Close()
}
