package billing

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/xroute/xroute/internal/store"
)

// Spool is a local append-only log of usage records. A request appends its
// record with one write(2) before its answer's final byte: the page cache
// keeps it through a crash of the process (SIGKILL), at a small fraction of
// the cost of a database commit per request. The writer then inserts
// records into the store in large batches and reports them committed; a
// segment file is deleted once every record in it is in the store. Records
// left in segments when the process died are replayed at the next start
// (inserts are idempotent by request id, so a record both spooled and
// committed is never counted twice).
type Spool struct {
	dir     string
	maxSize int64

	mu      sync.Mutex
	f       *os.File
	seg     int64
	size    int64
	pending map[int64]int // appended minus committed, per segment
	buf     []byte
}

const spoolSuffix = ".usage"

// OpenSpool opens (creating) the spool directory. It returns the records
// left by a previous process: insert them, then call Replayed.
func OpenSpool(dir string) (*Spool, []store.UsageRecord, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, maxSize: 8 << 20, pending: map[int64]int{}}
	segs, err := s.segments()
	if err != nil {
		return nil, nil, err
	}
	var left []store.UsageRecord
	for _, seg := range segs {
		recs, err := readSegment(s.path(seg))
		if err != nil {
			return nil, nil, err
		}
		left = append(left, recs...)
		if seg >= s.seg {
			s.seg = seg
		}
	}
	s.seg++ // never append to a segment a previous process wrote
	if err := s.openSegment(); err != nil {
		return nil, nil, err
	}
	return s, left, nil
}

func (s *Spool) path(seg int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seg, spoolSuffix))
}

func (s *Spool) segments() ([]int64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var segs []int64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), spoolSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err == nil {
			segs = append(segs, n)
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

// readSegment reads whole lines; a torn last line (the process died in the
// middle of a write) is skipped: its answer's final byte was never sent.
func readSegment(path string) ([]store.UsageRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	var out []store.UsageRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r store.UsageRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.RequestID != "" {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// Replayed deletes the segments a previous process left, once their
// records are in the store.
func (s *Spool) Replayed() error {
	segs, err := s.segments()
	if err != nil {
		return err
	}
	s.mu.Lock()
	cur := s.seg
	s.mu.Unlock()
	for _, seg := range segs {
		if seg < cur {
			if err := os.Remove(s.path(seg)); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	return nil
}

func (s *Spool) openSegment() error {
	f, err := os.OpenFile(s.path(s.seg), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.f, s.size = f, 0
	return nil
}

// Append writes one record (a JSON line, one write call) and returns the
// segment it is in.
func (s *Spool) Append(rec store.UsageRecord) (int64, error) {
	line, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, errors.New("spool: closed")
	}
	if s.size >= s.maxSize {
		old := s.seg
		s.f.Close()
		s.seg++
		if err := s.openSegment(); err != nil {
			return 0, err
		}
		s.dropIfDone(old)
	}
	s.buf = append(append(s.buf[:0], line...), '\n')
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	s.pending[s.seg]++
	return s.seg, nil
}

// Committed notes that n records of segment seg are in the store.
func (s *Spool) Committed(seg int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[seg] -= n
	s.dropIfDone(seg)
}

// dropIfDone deletes a finished segment that is no longer written to.
func (s *Spool) dropIfDone(seg int64) {
	if seg != s.seg && s.pending[seg] <= 0 {
		delete(s.pending, seg)
		os.Remove(s.path(seg))
	}
}

// Close closes the current segment; if every record is committed (a
// graceful stop), it is deleted.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if s.pending[s.seg] <= 0 {
		os.Remove(s.path(s.seg))
	}
	return err
}
