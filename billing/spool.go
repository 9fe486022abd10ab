package billing

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xroute/xroute/internal/store"
)

// ErrSpoolFull is returned by Append (and by Recorder.Commit during a store
// outage) when the spool holds its limit: a record can no longer be made
// durable, so a new request should be refused rather than served unmetered.
var ErrSpoolFull = errors.New("billing: usage spool full")

// DefaultSpoolLimit bounds the spool when no limit is configured: at a few
// hundred bytes a record, over a million records, minutes of an outage at
// a high request rate.
const DefaultSpoolLimit = 512 << 20

// Spool is a local append-only log of usage records. A request appends its
// record with one write(2) before its answer's final byte: the page cache
// keeps it through a crash of the process (SIGKILL), at a small fraction of
// the cost of a database commit per request. The writer then inserts
// records into the store in large batches and reports them committed; a
// segment file is deleted once every record in it is in the store.
//
// Records that did not reach the store through the writer (left by a
// previous process, or spooled while the store was unreachable) are
// replayed from the sealed segment files themselves: inserts are
// idempotent by request id, so a record both replayed and committed is
// never counted twice.
type Spool struct {
	dir     string
	maxSize int64 // of one segment, before rotation
	limit   int64 // of all segments together (0: unbounded)

	mu   sync.Mutex
	f    *os.File
	seg  int64 // the segment being appended to; lower ones are sealed
	segs map[int64]*segment
	buf  []byte

	// Totals over segs, kept under mu and read without it.
	records atomic.Int64
	bytes   atomic.Int64
}

// segment is the bookkeeping of one segment file.
type segment struct {
	pending int   // records not known to be in the store
	size    int64 // bytes in the file
}

const (
	spoolSuffix  = ".usage"
	rejectedFile = "rejected.jsonl" // not a segment: never replayed
)

// SpoolOption configures a Spool.
type SpoolOption func(*Spool)

// WithSpoolLimit bounds the bytes of all segments together; Append returns
// ErrSpoolFull beyond it. 0 means unbounded; the default is
// DefaultSpoolLimit.
func WithSpoolLimit(bytes int64) SpoolOption { return func(s *Spool) { s.limit = bytes } }

// OpenSpool opens (creating) the spool directory. Segments a previous
// process left are kept, sealed, for Replay (or the Recorder's background
// replay); their records count in Stats.
func OpenSpool(dir string, opts ...SpoolOption) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, maxSize: 8 << 20, limit: DefaultSpoolLimit, segs: map[int64]*segment{}}
	for _, o := range opts {
		o(s)
	}
	segs, err := s.listFiles()
	if err != nil {
		return nil, err
	}
	for _, seg := range segs {
		// Counting lines is enough here; the records are read again, a
		// segment at a time, when they are replayed.
		n, size, err := countSegment(s.path(seg))
		if err != nil {
			return nil, err
		}
		s.segs[seg] = &segment{pending: n, size: size}
		s.records.Add(int64(n))
		s.bytes.Add(size)
		if seg >= s.seg {
			s.seg = seg
		}
	}
	s.seg++ // never append to a segment a previous process wrote
	if err := s.openSegment(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Spool) path(seg int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seg, spoolSuffix))
}

func (s *Spool) listFiles() ([]int64, error) {
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

// countSegment counts a segment's whole records and its size.
func countSegment(path string) (int, int64, error) {
	n := 0
	err := scanSegment(path, func(store.UsageRecord) { n++ })
	if err != nil {
		return 0, 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	return n, fi.Size(), nil
}

// readSegment reads a segment's records.
func readSegment(path string) ([]store.UsageRecord, error) {
	var out []store.UsageRecord
	err := scanSegment(path, func(r store.UsageRecord) { out = append(out, r) })
	return out, err
}

// scanSegment reads whole lines; a torn last line (the process died in the
// middle of a write) is skipped: its answer's final byte was never sent.
func scanSegment(path string, fn func(store.UsageRecord)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r store.UsageRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.RequestID != "" {
			fn(r)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("spool: %s: %w", filepath.Base(path), err)
	}
	return nil
}

// openSegment starts segment s.seg; the caller holds mu (or owns s).
func (s *Spool) openSegment() error {
	f, err := os.OpenFile(s.path(s.seg), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.f = nil // Append reports the spool closed rather than write to a closed file
		return fmt.Errorf("spool: %w", err)
	}
	s.f = f
	s.segs[s.seg] = &segment{}
	return nil
}

// Append writes one record (a JSON line, one write call) and returns the
// segment it is in. It returns ErrSpoolFull when the record would take the
// spool past its limit.
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
	if s.limit > 0 && s.bytes.Load()+int64(len(line))+1 > s.limit {
		return 0, ErrSpoolFull
	}
	if s.segs[s.seg].size >= s.maxSize {
		if err := s.rotateLocked(); err != nil {
			return 0, err
		}
	}
	s.buf = append(append(s.buf[:0], line...), '\n')
	n, err := s.f.Write(s.buf)
	cur := s.segs[s.seg]
	cur.size += int64(n)
	s.bytes.Add(int64(n))
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	cur.pending++
	s.records.Add(1)
	return s.seg, nil
}

// rotate seals the current segment, if it holds anything, and starts the
// next. It returns the new current segment: every record appended before
// the call is in a lower one.
func (s *Spool) rotate() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return s.seg, errors.New("spool: closed")
	}
	if s.segs[s.seg].size == 0 {
		return s.seg, nil
	}
	return s.seg, s.rotateLocked()
}

func (s *Spool) rotateLocked() error {
	old := s.seg
	s.f.Close()
	s.seg++
	err := s.openSegment()
	s.dropIfDone(old)
	return err
}

// Committed notes that n records of segment seg are in the store. A
// segment already replayed and deleted is ignored.
func (s *Spool) Committed(seg int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg, ok := s.segs[seg]
	if !ok {
		return
	}
	n = min(n, sg.pending)
	sg.pending -= n
	s.records.Add(-int64(n))
	s.dropIfDone(seg)
}

// dropIfDone deletes a finished segment that is no longer written to.
func (s *Spool) dropIfDone(seg int64) {
	if sg, ok := s.segs[seg]; ok && seg != s.seg && sg.pending <= 0 {
		s.dropLocked(seg)
	}
}

// drop deletes a sealed segment whose every record is in the store.
func (s *Spool) drop(seg int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seg != s.seg {
		s.dropLocked(seg)
	}
}

func (s *Spool) dropLocked(seg int64) {
	sg, ok := s.segs[seg]
	if !ok {
		return
	}
	delete(s.segs, seg)
	s.records.Add(-int64(sg.pending))
	s.bytes.Add(-sg.size)
	os.Remove(s.path(seg))
}

// sealed lists the segments below before (and below the current one)
// that still hold records not known to be in the store, oldest first.
func (s *Spool) sealed(before int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	before = min(before, s.seg)
	var out []int64
	for seg := range s.segs {
		if seg < before {
			out = append(out, seg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// current is the segment being appended to.
func (s *Spool) current() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seg
}

// replay writes the records of every sealed segment below before through
// insert, deleting each segment once it is in the store. It stops at the
// first failure: what is left stays for the next try.
func (s *Spool) replay(ctx context.Context, before int64, insert func(context.Context, []store.UsageRecord) error) (int, error) {
	total := 0
	for _, seg := range s.sealed(before) {
		recs, err := readSegment(s.path(seg))
		if errors.Is(err, os.ErrNotExist) {
			continue // its last records were committed meanwhile
		}
		if err != nil {
			return total, err
		}
		if err := insert(ctx, recs); err != nil {
			return total, err
		}
		s.drop(seg)
		total += len(recs)
	}
	return total, nil
}

// Replay writes to w, in batches of batch records, the records of every
// sealed segment (those a previous process left, or spooled during a
// store outage), deleting each segment once it is in the store. It
// returns how many records it wrote; on error, what is left stays in the
// spool.
func (s *Spool) Replay(ctx context.Context, w UsageWriter, batch int) (int, error) {
	return s.replay(ctx, s.current(), func(ctx context.Context, recs []store.UsageRecord) error {
		for i := 0; i < len(recs); i += batch {
			if err := w.InsertUsage(ctx, recs[i:min(i+batch, len(recs))]); err != nil {
				return fmt.Errorf("replay usage spool: %w", err)
			}
		}
		return nil
	})
}

// reject keeps records the store refuses (while accepting others) in a
// file of their own, never replayed automatically, so that one bad record
// cannot hold the spool back forever and is still not lost.
func (s *Spool) reject(recs []store.UsageRecord) error {
	f, err := os.OpenFile(filepath.Join(s.dir, rejectedFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var buf []byte
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			continue
		}
		buf = append(append(buf, line...), '\n')
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Stats is what the spool holds: records not known to be in the store,
// and the bytes of all its segments.
func (s *Spool) Stats() (records, bytes int64) { return s.records.Load(), s.bytes.Load() }

// Limit is the bound on the spool's bytes (0: unbounded).
func (s *Spool) Limit() int64 { return s.limit }

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
	if sg := s.segs[s.seg]; sg == nil || sg.pending <= 0 {
		os.Remove(s.path(s.seg))
	}
	return err
}
