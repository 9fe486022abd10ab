package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSimSmoke runs the whole simulation in miniature: it must run, kill
// and revive its upstream, and render every table. The verdict itself is
// not asserted here (short phases on a busy machine are noisy); the
// router's own simulation test asserts the numbers deterministically.
func TestSimSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mock servers")
	}
	var out bytes.Buffer
	_, err := run(context.Background(), &out, 400*time.Millisecond, 4, 150*time.Millisecond, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| success rate, all routed phases |", "| cost: spend vs cheapest possible |", "| recovery: revival to first answer from cheap |", "| outage (cost) |", "| cheap/gpt-sim |"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
}
