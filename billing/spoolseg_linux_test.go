package billing

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xroute/xroute/billing/books"
)

// openMapped opens a spool and checks that its segments are mapped (the
// file system here reserves blocks), so the tests below test mapSeg.
func openMapped(t *testing.T, dir string) *Spool {
	t.Helper()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.w.(*mapSeg); !ok {
		t.Skipf("segments in %s are written with write(2) (%T): no fallocate here", dir, s.w)
	}
	return s
}

func appendN(t *testing.T, s *Spool, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(books.UsageRecord{RequestID: fmt.Sprint(prefix, i), CostNano: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func replayAll(t *testing.T, dir string) []string {
	t.Helper()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var w orderWriter
	if _, err := s.Replay(context.Background(), &w, 100); err != nil {
		t.Fatal(err)
	}
	return w
}

// orderWriter keeps the ids it is given, in order.
type orderWriter []string

func (w *orderWriter) InsertUsage(_ context.Context, recs []books.UsageRecord) error {
	for _, r := range recs {
		*w = append(*w, r.RequestID)
	}
	return nil
}

// A killed process leaves its mapped segment as long as its reservation,
// the tail zeros: the next start reads the records and nothing else.
func TestMappedSegmentLeftByAKilledProcess(t *testing.T) {
	dir := t.TempDir()
	s := openMapped(t, dir)
	appendN(t, s, "r", 3)
	seg, written := s.seg, s.segs[s.seg].size
	crash(s)
	fi, err := os.Stat(s.path(seg))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= written {
		t.Fatalf("segment file of %d bytes after %d written: not the reservation a mapped segment leaves", fi.Size(), written)
	}
	if got := strings.Join(replayAll(t, dir), ","); got != "r0,r1,r2" {
		t.Fatalf("replayed %q, want r0,r1,r2", got)
	}
}

// A close cuts the file to what was written.
func TestMappedSegmentClosedHoldsWhatWasWritten(t *testing.T) {
	dir := t.TempDir()
	s := openMapped(t, dir)
	appendN(t, s, "r", 2)
	seg, written := s.seg, s.segs[s.seg].size
	if _, err := s.rotate(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.path(seg))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != written || strings.Count(string(b), "\n") != 2 || strings.ContainsRune(string(b), 0) {
		t.Fatalf("sealed segment: %d bytes (%d written): %q", len(b), written, b)
	}
	s.Close()
}

// A line longer than a segment gets a segment as long as itself.
func TestMappedSegmentLongerLine(t *testing.T) {
	dir := t.TempDir()
	s := openMapped(t, dir)
	s.maxSize = 512
	if _, err := s.rotate(); err != nil { // the next segment is 512 bytes
		t.Fatal(err)
	}
	appendN(t, s, "a", 1)
	long := books.UsageRecord{RequestID: "long", ErrorCode: strings.Repeat("x", 2000)}
	if _, err := s.Append(long); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "b", 5) // several 512-byte segments
	crash(s)
	if got := strings.Join(replayAll(t, dir), ","); got != "a0,long,b0,b1,b2,b3,b4" {
		t.Fatalf("replayed %q", got)
	}
}

// A segment's file cut short behind the spool's back makes a store to its
// mapping fault: Append reports an error (the caller then waits for the
// database) instead of the process dying, and the next record goes to a
// new segment.
func TestMappedSegmentFaultIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := openMapped(t, dir)
	defer s.Close()
	appendN(t, s, "r", 1)
	seg := s.seg
	if err := os.Truncate(s.path(seg), 0); err != nil {
		t.Fatal(err)
	}
	// The page written above is still mapped; a store one page on is not.
	s.segs[seg].size = 8192
	s.w.(*mapSeg).n = 8192
	if _, err := s.Append(books.UsageRecord{RequestID: "faulted"}); err == nil || !strings.Contains(err.Error(), "fault") {
		t.Fatalf("append into a cut-short mapping: %v, want a fault error", err)
	}
	got, err := s.Append(books.UsageRecord{RequestID: "after"})
	if err != nil {
		t.Fatal(err)
	}
	if got == seg {
		t.Fatalf("the record after a fault went to the faulted segment %d", seg)
	}
}

// Zeros amid a segment (pages a power loss did not write back) hide only
// what they overwrote: the records after them are read.
func TestSpoolZerosAmidASegment(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "r", 4)
	seg := s.seg
	crash(s)
	b, err := os.ReadFile(s.path(seg))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	// The second line's bytes zeroed, its newline too.
	zeroed := strings.Join(lines[:1], "") + strings.Repeat("\x00", len(lines[1])) + strings.Join(lines[2:], "")
	if err := os.WriteFile(s.path(seg), []byte(zeroed), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(replayAll(t, dir), ","); got != "r0,r2,r3" {
		t.Fatalf("replayed %q, want r0,r2,r3", got)
	}
}

// Steps of the mapping already written leave the process's pages (its
// RSS), not the file: a killed process's records there are all replayed.
func TestMappedSegmentDropsWrittenPages(t *testing.T) {
	dir := t.TempDir()
	s := openMapped(t, dir)
	var want []string
	for i := 0; s.segs[s.seg].size < 3*populateStep+1000; i++ {
		id := fmt.Sprint("r", i)
		want = append(want, id)
		if _, err := s.Append(books.UsageRecord{RequestID: id, ErrorCode: strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
	}
	if ms := s.w.(*mapSeg); ms.gone < 2*populateStep {
		t.Fatalf("%d bytes dropped after %d written: the written steps stay mapped", ms.gone, ms.n)
	}
	crash(s)
	if got := strings.Join(replayAll(t, dir), ","); got != strings.Join(want, ",") {
		t.Fatalf("replayed %d records, want %d", strings.Count(got, ",")+1, len(want))
	}
}
