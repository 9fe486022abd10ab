package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSinkLeaseAndCursor: one owner ships a sink at a time; the cursor
// only moves forward, only for the owner, and another owner gets the
// lease once it is released or runs out.
func TestSinkLeaseAndCursor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.UnixMilli(1_700_000_000_000)
		acked, ok, err := db.LeaseSink(ctx, "siem", "a", now, time.Minute)
		if err != nil || !ok || acked != 0 {
			t.Fatalf("first lease: acked=%d ok=%v err=%v", acked, ok, err)
		}
		if _, ok, err := db.LeaseSink(ctx, "siem", "b", now.Add(time.Second), time.Minute); err != nil || ok {
			t.Fatalf("b took a running lease: ok=%v err=%v", ok, err)
		}
		if err := db.AckSink(ctx, "siem", "a", 7, now); err != nil {
			t.Fatal(err)
		}
		if err := db.AckSink(ctx, "siem", "a", 3, now); err != nil { // back: no change, no error
			t.Fatal(err)
		}
		if err := db.AckSink(ctx, "siem", "b", 9, now); !errors.Is(err, ErrSinkLease) {
			t.Fatalf("ack by a non-owner: %v, want ErrSinkLease", err)
		}
		if got, _ := db.SinkAcked(ctx, "siem"); got != 7 {
			t.Fatalf("acked %d, want 7", got)
		}
		// The lease runs out: b takes over from a's cursor.
		acked, ok, err = db.LeaseSink(ctx, "siem", "b", now.Add(2*time.Minute), time.Minute)
		if err != nil || !ok || acked != 7 {
			t.Fatalf("takeover: acked=%d ok=%v err=%v", acked, ok, err)
		}
		if err := db.ReleaseSink(ctx, "siem", "b"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := db.LeaseSink(ctx, "siem", "a", now.Add(2*time.Minute), time.Minute); err != nil || !ok {
			t.Fatalf("lease after release: ok=%v err=%v", ok, err)
		}
		if got, _ := db.SinkAcked(ctx, "other"); got != 0 {
			t.Fatalf("unknown sink acked %d", got)
		}
		if seq, err := db.LastAuditSeq(ctx); err != nil || seq != 0 {
			t.Fatalf("last seq of an empty log: %d %v", seq, err)
		}
	})
}
