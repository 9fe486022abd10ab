package billing

import (
	"context"
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
	s, left, err := OpenSpool(dir)
	if err != nil || len(left) != 0 {
		t.Fatalf("fresh spool: %v %v", left, err)
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

	s2, left, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 5 || left[4].RequestID != "r4" || left[4].CostNano != 4 {
		t.Fatalf("replayed %+v", left)
	}
	if err := s2.Replayed(); err != nil {
		t.Fatal(err)
	}
	segs, _ := s2.segments()
	if len(segs) != 1 || segs[0] != s2.seg {
		t.Fatalf("old segments must be gone after replay: %v (current %d)", segs, s2.seg)
	}
	s2.Close()
}

func TestRecorderWithSpoolCommitsAndCleansUp(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	sp, _, err := OpenSpool(dir)
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
