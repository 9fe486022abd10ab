// Package testutil holds the helpers every test package shares. It is
// imported only from _test.go files.
package testutil

import (
	"testing"
	"time"
)

// Timeout is how long Eventually waits before it fails the test: long
// enough for a loaded 2-core CI machine running -race, short enough that
// a real hang fails fast.
const Timeout = 15 * time.Second

// Eventually waits until cond returns true and fails the test (naming
// what it waited for) when Timeout passes first. It polls with a backoff
// from 1 ms to 50 ms, so a condition that holds soon costs almost
// nothing. Use it only for a condition another goroutine makes true;
// "nothing happened" checks want a hook or an injected clock instead.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, Timeout, what, cond)
}

func eventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// Wait polls cond like Eventually until it holds or d passes, and reports
// whether it held; for callers that need to do their own failing (from a
// goroutine that is not the test's, with t.Errorf).
func Wait(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(pause)
		if pause < 50*time.Millisecond {
			pause *= 2
		}
	}
	return true
}
