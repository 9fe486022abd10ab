package billing

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

// captureSink records the batches it is given; while gate is set, each
// write first signals entered and waits for the gate to open.
type captureSink struct {
	mu      sync.Mutex
	batches [][]books.RequestCapture
	entered chan struct{}
	gate    chan struct{}
}

func (s *captureSink) InsertCaptures(_ context.Context, caps []books.RequestCapture) error {
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, append([]books.RequestCapture(nil), caps...))
	return nil
}

func (s *captureSink) all() []books.RequestCapture {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []books.RequestCapture
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

// redactSecret stands in for keys.Redactor.RedactBytes.
func redactSecret(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("sk-secret-0123456789"), []byte("[redacted]"))
}

func TestCapturesRedactThenCut(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		req, resp     string
		max           int
		truncatedIn   bool
		wantReq, want string
		truncated     bool
	}{
		{"whole", `{"a":"sk-secret-0123456789"}`, "ok", 100, false, `{"a":"[redacted]"}`, "ok", false},
		// The secret straddles the cut: redacted first, so none of it is kept.
		{"secret at the cut", "0123456789sk-secret-0123456789", "ok", 15, false, "0123456789[reda", "ok", true},
		{"cut inside a character", "ééé", "ok", 3, false, "é", "ok", true},
		{"answer cut before", "{}", "data: x", 100, true, "{}", "data: x", true},
		{"answer cut here", "{}", "data: 0123456789", 8, false, "{}", "data: 01", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &captureSink{}
			c := NewCaptures(sink, redactSecret, zap.NewNop(), 8)
			c.Capture(Capture{RequestID: "req_1", AccountID: "acct", Request: []byte(tc.req), Response: []byte(tc.resp),
				Truncated: tc.truncatedIn, MaxBytes: tc.max, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
			if err := c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := sink.all()
			want := books.RequestCapture{RequestID: "req_1", AccountID: "acct", Request: tc.wantReq, Response: tc.want,
				Truncated: tc.truncated, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("stored %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestCapturesBatchAndDrop: captures queued while a write is under way go
// in the next batch together; one that finds the queue full is dropped
// (and counted), never waited for.
func TestCapturesBatchAndDrop(t *testing.T) {
	t.Parallel()
	sink := &captureSink{entered: make(chan struct{}), gate: make(chan struct{})}
	c := NewCaptures(sink, nil, zap.NewNop(), 4)
	c.Capture(Capture{RequestID: "req_first"})
	<-sink.entered // the writer holds the first; the queue is empty
	for i := range 5 {
		c.Capture(Capture{RequestID: "req_" + strings.Repeat("x", i+1)}) // the fifth finds the queue full
	}
	if n := c.Dropped(); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	go func() {
		for range sink.entered {
		}
	}()
	close(sink.gate)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	sizes := []int{}
	for _, b := range sink.batches {
		sizes = append(sizes, len(b))
	}
	sink.mu.Unlock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 4 {
		t.Errorf("batches of %v, want [1 4]", sizes)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(sink.entered)
	c.Capture(Capture{RequestID: "req_late"}) // after Close: ignored, no panic
	if err := c.Flush(context.Background()); err == nil {
		t.Error("Flush after Close: no error")
	}
}
