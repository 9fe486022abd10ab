package loadtest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

func TestSimHostDiesAndComesBack(t *testing.T) {
	h, err := StartSimHost("a", mock.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	get := func() error {
		resp, err := http.Get(h.BaseURL() + "/models")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(); err != nil || !h.Up() {
		t.Fatal(err)
	}
	url := h.BaseURL()
	h.Kill()
	if err := get(); err == nil || h.Up() {
		t.Fatal("a killed host still answers")
	}
	if err := h.Revive(); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil || h.BaseURL() != url {
		t.Fatalf("revived on %s (was %s): %v", h.BaseURL(), url, err)
	}
}

func TestSimTally(t *testing.T) {
	tl := NewSimTally("p")
	t0 := time.Unix(100, 0)
	tl.Add(SimOutcome{At: t0, Provider: "a", Latency: 10 * time.Millisecond, Spend: 110, Cheapest: 100, Attempts: 1})
	tl.Add(SimOutcome{At: t0.Add(time.Second), Provider: "b", Latency: 30 * time.Millisecond, Spend: 100, Cheapest: 100, Attempts: 2})
	tl.Add(SimOutcome{At: t0.Add(2 * time.Second), Provider: "a", Latency: 20 * time.Millisecond, Spend: 100, Cheapest: 100, Attempts: 1})
	tl.Add(SimOutcome{At: t0.Add(3 * time.Second), Err: errors.New("boom"), Attempts: 3})
	s := tl.Summary()
	if s.Requests != 4 || s.Failed != 1 || s.SuccessRate() != 0.75 || s.Attempts != 7 {
		t.Fatalf("%+v", s)
	}
	if over := s.Overspend(); over < 0.0333 || over > 0.0334 {
		t.Fatalf("overspend %v", over)
	}
	if s.Share["a"] < 0.66 || s.Share["a"] > 0.67 || s.P50 < 19*time.Millisecond || s.P50 > 21*time.Millisecond {
		t.Fatalf("share %v p50 %v", s.Share, s.P50)
	}
	if o, ok := tl.FirstAfter("a", t0); !ok || !o.At.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("first a after t0: %+v %v", o, ok)
	}
	if _, ok := tl.FirstAfter("b", t0.Add(time.Second)); ok {
		t.Fatal("strictly after")
	}
	if tl.Errors()["boom"] != 1 {
		t.Fatal(tl.Errors())
	}
	md := SimMarkdown([]SimCheck{{"x", "1", "2", true}, {"y", "3", "4", false}})
	if !strings.Contains(md, "| x | 1 | 2 | pass |") || !strings.Contains(md, "| y | 3 | 4 | **FAIL** |") {
		t.Fatal(md)
	}
	if tr := SimTrafficMarkdown([]SimSummary{s}, []string{"a", "b"}); !strings.Contains(tr, "| p | 4 | 1 | 1.750 | 20.0 ms") || !strings.Contains(tr, "66.7% | 33.3% |") {
		t.Fatal(tr)
	}
}

func TestRunWorkersStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	done := make(chan struct{})
	go func() {
		RunWorkers(ctx, 1, time.Hour, func(context.Context, int) { n++; cancel() })
		close(done)
	}()
	<-done
	if n != 1 {
		t.Fatalf("%d calls after cancel", n)
	}
}
