package billing

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/singleflight"
)

// TestSharedReadSurvivesTheFirstCallersCancellation: the caller whose
// read the others joined goes away (its client disconnected); the read
// goes on and the others get its result.
func TestSharedReadSurvivesTheFirstCallersCancellation(t *testing.T) {
	var g singleflight.Group
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var once sync.Once
	read := func(ctx context.Context) (int, error) {
		calls.Add(1)
		once.Do(func() { close(started) })
		select {
		case <-release:
			return 42, ctx.Err()
		case <-time.After(5 * time.Second):
			return 0, context.DeadlineExceeded
		}
	}
	first, cancelFirst := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var firstErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, firstErr = sharedRead(first, &g, "acct", read)
	}()
	<-started
	var got int
	var shared bool
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, shared, err = sharedRead(context.Background(), &g, "acct", read)
	}()
	time.Sleep(100 * time.Millisecond) // let the second caller join
	cancelFirst()
	close(release)
	wg.Wait()
	if firstErr == nil {
		t.Error("the cancelled caller must stop waiting with its ctx's error")
	}
	if err != nil || got != 42 || !shared || calls.Load() != 1 {
		t.Fatalf("second caller: %d shared=%v err=%v after %d reads; want 42 from the one shared read", got, shared, err, calls.Load())
	}
}
