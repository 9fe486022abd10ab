package testutil

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	if !Wait(time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition that holds on the third poll was not seen")
	}
	if Wait(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds was reported as held")
	}
}

// fakeT records a Fatalf and ends its goroutine, as testing.T does.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = format
	runtime.Goexit()
}

func TestEventuallyFailsNamingWhat(t *testing.T) {
	t.Parallel()
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventuallyWithin(ft, 20*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if ft.msg == "" {
		t.Fatal("Eventually did not fail on a condition that never holds")
	}
}
