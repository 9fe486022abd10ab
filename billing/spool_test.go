package billing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xroute/xroute/billing/books"
)

// crash leaves s as a process killed with SIGKILL leaves its spool: the
// files as they are, nothing deleted, and the directory's lock released
// (the kernel releases a dead process's locks).
func crash(s *Spool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.(interface{ abandon() }).abandon()
	s.w = nil
	s.unlock()
}

// tear appends to segment seg's written bytes what a process killed in the
// middle of a write leaves: part of a line, no newline.
func tear(t *testing.T, s *Spool, seg int64, part string) {
	t.Helper()
	f, err := os.OpenFile(s.path(seg), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(part), s.segs[seg].size); err != nil {
		t.Fatal(err)
	}
}

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
		if _, err := s.Append(books.UsageRecord{RequestID: fmt.Sprint("r", i), CostNano: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The process dies here: no Committed, no Close. A torn line follows.
	crash(s)
	tear(t, s, s.seg, `{"RequestID":"torn","Co`)

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
		if _, err := s.Append(books.UsageRecord{RequestID: fmt.Sprint("r", i)}); err != nil {
			t.Fatal(err)
		}
	}
	crash(s)
	s2, err := OpenSpool(dir)
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
	rec := books.UsageRecord{RequestID: "req_0123456789abcdef01234567", AccountID: "acct", Model: "m", CreatedAt: time.Unix(1e9, 0)}
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
		seg, err := s.Append(books.UsageRecord{RequestID: fmt.Sprint("r", i)})
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
		if err := r.Commit(context.Background(), books.UsageRecord{RequestID: fmt.Sprint("c", i)}); err != nil {
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

// Two processes sharing a spool directory would replay and delete each
// other's segments: the second one to open it is refused until the first
// closes it.
func TestSpoolIsLockedToOneProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(books.UsageRecord{RequestID: "r"}); err != nil {
		t.Fatal(err)
	}
	want := "usage spool " + dir + " is in use by another xroute process; give each replica its own usage.spool_dir"
	s2, err := OpenSpool(dir)
	if err == nil {
		s2.Close()
		t.Fatal("a second OpenSpool of a directory in use succeeded")
	}
	if err.Error() != want {
		t.Fatalf("second OpenSpool: %q, want %q", err, want)
	}
	if recs, _ := s.Stats(); recs != 1 {
		t.Fatalf("the refused OpenSpool disturbed the first: %d records", recs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := OpenSpool(dir)
	if err != nil {
		t.Fatalf("OpenSpool after Close: %v", err)
	}
	defer s3.Close()
	if recs, _ := s3.Stats(); recs != 1 {
		t.Fatalf("reopened spool holds %d records, want the 1 left", recs)
	}
	if err := s3.Close(); err != nil || s3.Close() != nil {
		t.Fatalf("close twice: %v", err)
	}
}

// A segment is read line by line with no small bound: a long record is
// read whole, and a line that holds no record (corrupted, or beyond the
// spool's line limit) is set aside in the rejected file, as it is,
// instead of making the segment (and the spool's start) fail. A torn last
// line is what a kill leaves: skipped, as before.
func TestSpoolUnreadableLines(t *testing.T) {
	rec := func(id string) string { return string(mustJSON(t, books.UsageRecord{RequestID: id})) + "\n" }
	long := string(mustJSON(t, books.UsageRecord{RequestID: "long", Model: strings.Repeat("m", 2<<20)})) + "\n"
	tests := []struct {
		name         string
		maxLine      int
		lines        []string
		wantStored   []string
		wantRejected string // the rejected file, byte for byte
	}{
		{"a 2 MiB record", 0, []string{rec("a"), long, rec("b")}, []string{"a", "long", "b"}, ""},
		{"garbage between records", 0, []string{rec("a"), "garbage\n", rec("b"), "{\"RequestID\":\n", rec("c")},
			[]string{"a", "b", "c"}, "garbage\n{\"RequestID\":\n"},
		{"a record without a request id", 0, []string{rec("a"), "{}\n", "\n"}, []string{"a"}, "{}\n"},
		{"a line beyond the limit", 1 << 10, []string{rec("a"), strings.Repeat("x", 300<<10) + "\n", rec("b")},
			[]string{"a", "b"}, strings.Repeat("x", 300<<10) + "\n"},
		{"a record beyond the limit", 1 << 10, []string{long, rec("b")}, []string{"b"}, long},
		{"a torn last line", 0, []string{rec("a"), rec("b"), `{"RequestID":"torn","Co`}, []string{"a", "b"}, ""},
		{"a torn last line beyond the limit", 1 << 10, []string{rec("a"), strings.Repeat("x", 300<<10)}, []string{"a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// A segment as a previous process left it.
			var seg []byte
			for _, l := range tt.lines {
				seg = append(seg, l...)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 1, spoolSuffix)), seg, 0o600); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.ErrorLevel)
			opts := []SpoolOption{WithSpoolLogger(zap.New(core))}
			if tt.maxLine > 0 {
				opts = append(opts, withMaxLine(tt.maxLine))
			}
			s, err := OpenSpool(dir, opts...)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if recs, bytes := s.Stats(); recs != int64(len(tt.wantStored)) || bytes != int64(len(seg)) {
				t.Fatalf("stats: %d records, %d bytes; want %d, %d", recs, bytes, len(tt.wantStored), len(seg))
			}
			w := &memWriter{}
			n, err := s.Replay(context.Background(), w, 2)
			if err != nil || n != len(tt.wantStored) || len(w.byID) != n {
				t.Fatalf("replayed %d (%d stored): %v; want %d", n, len(w.byID), err, len(tt.wantStored))
			}
			for _, id := range tt.wantStored {
				if _, ok := w.byID[id]; !ok {
					t.Fatalf("%s not stored", id)
				}
			}
			if m := w.byID["long"].Model; m != "" && len(m) != 2<<20 {
				t.Fatalf("the long record came back with a model of %d bytes", len(m))
			}
			got, err := os.ReadFile(filepath.Join(dir, rejectedFile))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if string(got) != tt.wantRejected {
				t.Fatalf("rejected file: %d bytes %.80q, want %d bytes %.80q", len(got), got, len(tt.wantRejected), tt.wantRejected)
			}
			if n, want := logs.FilterMessageSnippet("set aside").Len(), strings.Count(tt.wantRejected, "\n"); n != want || logs.Len() != want {
				t.Fatalf("%d errors logged (%d for lines set aside), want one for each of the %d lines set aside", logs.Len(), n, want)
			}
			if segs, _ := s.listFiles(); len(segs) != 1 || segs[0] != s.seg {
				t.Fatalf("segments left after the replay: %v (current %d)", segs, s.seg)
			}
		})
	}
}

// Append refuses a record too long to be read back: the recorder then
// writes it to the store directly.
func TestSpoolAppendRefusesLinesBeyondTheLimit(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), withMaxLine(1<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(books.UsageRecord{RequestID: "big", Model: strings.Repeat("m", 2<<10)}); !errors.Is(err, errLineTooLong) {
		t.Fatalf("append of a record beyond the limit: %v", err)
	}
	if recs, bytes := s.Stats(); recs != 0 || bytes != 0 {
		t.Fatalf("after a refused append: %d records, %d bytes", recs, bytes)
	}
	if _, err := s.Append(books.UsageRecord{RequestID: "small"}); err != nil {
		t.Fatal(err)
	}
}
