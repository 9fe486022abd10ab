package billing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
)

func TestSpoolReplaysWhatWasNotCommitted(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.Stats(); recs != 0 {
		t.Fatalf("fresh spool holds %d records", recs)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Append(store.UsageRecord{RequestID: fmt.Sprint("r", i), CostNano: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The process dies here: no Committed, no Close. A torn line follows.
	f, _ := os.OpenFile(s.path(s.seg), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"RequestID":"torn","Co`)
	f.Close()

	s2, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if recs, bytes := s2.Stats(); recs != 5 || bytes == 0 {
		t.Fatalf("left by the dead process: %d records, %d bytes; want 5", recs, bytes)
	}
	w := &memWriter{}
	n, err := s2.Replay(context.Background(), w, 2)
	if err != nil || n != 5 {
		t.Fatalf("replayed %d, %v", n, err)
	}
	if len(w.byID) != 5 || w.byID["r4"].CostNano != 4 {
		t.Fatalf("stored %+v", w.byID)
	}
	segs, _ := s2.listFiles()
	if len(segs) != 1 || segs[0] != s2.seg {
		t.Fatalf("old segments must be gone after replay: %v (current %d)", segs, s2.seg)
	}
	if recs, _ := s2.Stats(); recs != 0 {
		t.Fatalf("%d records still counted after replay", recs)
	}
}

func TestSpoolReplayKeepsSegmentsWhenTheStoreIsDown(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Append(store.UsageRecord{RequestID: fmt.Sprint("r", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := OpenSpool(dir) // s "died"
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	w := &flakyWriter{}
	w.down.Store(true)
	if _, err := s2.Replay(context.Background(), w, 10); err == nil {
		t.Fatal("replay into a store that is down must fail")
	}
	if recs, _ := s2.Stats(); recs != 3 {
		t.Fatalf("records after a failed replay: %d, want 3 kept", recs)
	}
	w.down.Store(false)
	if n, err := s2.Replay(context.Background(), w, 10); err != nil || n != 3 || w.stored() != 3 {
		t.Fatalf("replay after the store came back: %d %v, stored %d", n, err, w.stored())
	}
}

func TestSpoolLimit(t *testing.T) {
	rec := store.UsageRecord{RequestID: "req_0123456789abcdef01234567", AccountID: "acct", Model: "m", CreatedAt: time.Unix(1e9, 0)}
	line := int64(len(mustJSON(t, rec)) + 1)
	tests := []struct {
		name    string
		limit   int64
		segment int64
		fit     int // appends that succeed before ErrSpoolFull
	}{
		{"room for exactly three", 3 * line, 8 << 20, 3},
		{"room for three and a bit", 3*line + line/2, 8 << 20, 3},
		{"limit across rotated segments", 5 * line, line, 5},
		{"unbounded", 0, line, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenSpool(t.TempDir(), WithSpoolLimit(tt.limit))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.maxSize = tt.segment
			for i := 0; i < tt.fit; i++ {
				if _, err := s.Append(rec); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
			}
			if tt.limit == 0 {
				return
			}
			if _, err := s.Append(rec); !errors.Is(err, ErrSpoolFull) {
				t.Fatalf("append past the limit: %v, want ErrSpoolFull", err)
			}
			if recs, bytes := s.Stats(); recs != int64(tt.fit) || bytes > tt.limit {
				t.Fatalf("stats %d records %d bytes; limit %d", recs, bytes, tt.limit)
			}
		})
	}
}

func TestSpoolCommittedFreesSealedSegments(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), WithSpoolLimit(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.maxSize = 1 // one record a segment
	bySeg := map[int64]int{}
	for i := 0; i < 4; i++ {
		seg, err := s.Append(store.UsageRecord{RequestID: fmt.Sprint("r", i)})
		if err != nil {
			t.Fatal(err)
		}
		bySeg[seg]++
	}
	for seg, n := range bySeg {
		s.Committed(seg, n)
		s.Committed(seg, n) // a late duplicate must not go negative
	}
	recs, bytes := s.Stats()
	segs, _ := s.listFiles()
	// Only the current segment stays (its file, until Close).
	if recs != 0 || len(segs) != 1 || bytes != s.segs[s.seg].size {
		t.Fatalf("after commit: %d records, %d bytes, files %v", recs, bytes, segs)
	}
}

func TestRecorderWithSpoolCommitsAndCleansUp(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	sp.maxSize = 200 // rotate often
	w := &memWriter{}
	r := NewRecorder(w, zap.NewNop(), 16, 1024, time.Hour, WithSpool(sp))
	for i := 0; i < 100; i++ {
		if err := r.Commit(context.Background(), store.UsageRecord{RequestID: fmt.Sprint("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.byID) != 100 {
		t.Fatalf("written %d", len(w.byID))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix))
	if len(files) != 0 {
		t.Fatalf("committed segments must be deleted: %v", files)
	}
}
