package billing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
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
// record before its answer's final byte, a copy into the segment's shared
// mapping (spoolseg_linux.go; one write(2) where segments are not mapped):
// the page cache keeps it through a crash of the process (SIGKILL), at a
// small fraction of the cost of a database commit per request. The writer then inserts
// records into the store in large batches and reports them committed; a
// segment file is deleted once every record in it is in the store.
//
// Records that did not reach the store through the writer (left by a
// previous process, or spooled while the store was unreachable) are
// replayed from the sealed segment files themselves: inserts are
// idempotent by request id, so a record both replayed and committed is
// never counted twice.
//
// One process owns a spool directory: OpenSpool locks it until Close, so
// that a second replica pointed at the same directory fails at start
// rather than replaying (and deleting) the first one's live segment.
type Spool struct {
	dir     string
	maxSize int64 // of one segment, before rotation
	limit   int64 // of all segments together (0: unbounded)
	maxLine int   // of one record's line; a longer one is set aside when read
	log     atomic.Pointer[zap.Logger]

	rmu sync.Mutex // serialises writes to the rejected file

	mu   sync.Mutex
	lock *os.File  // holds the directory's lock (nil where locks are not supported)
	w    segWriter // of the current segment; nil once closed
	seg  int64     // the segment being appended to; lower ones are sealed
	segs map[int64]*segment

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
	lockFile     = "LOCK"

	// defaultMaxLine bounds one record's line: far above any real record
	// (a few hundred bytes), low enough to read a line into memory.
	defaultMaxLine = 16 << 20
)

// SpoolOption configures a Spool.
type SpoolOption func(*Spool)

// WithSpoolLimit bounds the bytes of all segments together; Append returns
// ErrSpoolFull beyond it. 0 means unbounded; the default is
// DefaultSpoolLimit.
func WithSpoolLimit(bytes int64) SpoolOption { return func(s *Spool) { s.limit = bytes } }

// WithSpoolLogger logs what the spool itself finds wrong (lines it cannot
// read, set aside in its rejected file). Without it, a Recorder writing
// the spool lends it its own logger.
func WithSpoolLogger(log *zap.Logger) SpoolOption { return func(s *Spool) { s.log.Store(log) } }

// withMaxLine sets the longest line a segment may hold (tests).
func withMaxLine(n int) SpoolOption { return func(s *Spool) { s.maxLine = n } }

// OpenSpool opens (creating) the spool directory and locks it for this
// process until Close: a directory another process holds is refused.
// Segments a previous process left are kept, sealed, for Replay (or the
// Recorder's background replay); their records count in Stats.
func OpenSpool(dir string, opts ...SpoolOption) (_ *Spool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, maxSize: 8 << 20, limit: DefaultSpoolLimit, maxLine: defaultMaxLine, segs: map[int64]*segment{}}
	for _, o := range opts {
		o(s)
	}
	// Locked before anything is read: another process's segments are not
	// ours to count, replay or delete.
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.unlock()
		}
	}()
	segs, err := s.listFiles()
	if err != nil {
		return nil, err
	}
	for _, seg := range segs {
		// Counting lines is enough here; the records are read again, a
		// segment at a time, when they are replayed.
		n, size, err := s.countSegment(s.path(seg))
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
	if err := s.openSegment(0); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Spool) unlock() {
	if s.lock != nil {
		s.lock.Close() // closing the descriptor releases the lock
		s.lock = nil
	}
}

// logger is the spool's logger, or one that discards.
func (s *Spool) logger() *zap.Logger {
	if l := s.log.Load(); l != nil {
		return l
	}
	return zap.NewNop()
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
func (s *Spool) countSegment(path string) (int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	n := 0
	size, err := scanSegment(f, s.maxLine, func(books.UsageRecord) { n++ }, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %s: %w", filepath.Base(path), err)
	}
	return n, size, nil
}

// badLine is a whole line of a segment that holds no record: bytes
// [off, off+n) of the file, newline included.
type badLine struct {
	off, n int64
	err    error
}

var errLineTooLong = errors.New("line longer than the spool's limit")

// scanSegment reads a segment's lines and returns its size. Each record
// goes to rec; each whole line that holds none (corrupted, or longer than
// maxLine, which is not read into memory) to bad, if not nil. A torn last
// line (the process died in the middle of a write) is skipped: its
// answer's final byte was never sent. Zero bytes where a line would start
// are skipped: a mapped segment's unwritten tail, or pages a power loss
// did not write back. A bufio.Reader rather than a Scanner: one long line
// must not make the whole segment unreadable.
func scanSegment(r io.Reader, maxLine int, rec func(books.UsageRecord), bad func(badLine)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		off, n int64  // the line being read: where it starts, its bytes so far
		buf    []byte // its bytes, when it spans several reads
		over   bool   // longer than maxLine: its bytes are not kept
	)
	for {
		if n == 0 {
			// Zeros where a line starts are the unwritten tail of a mapped
			// segment its process left (see mapSeg): no record is there.
			z, err := skipZeros(br)
			off += z
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			if err != nil {
				return off, err
			}
		}
		chunk, err := br.ReadSlice('\n')
		partial := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !partial && !errors.Is(err, io.EOF) {
			return off + n, err
		}
		n += int64(len(chunk))
		switch {
		case over:
		case n > int64(maxLine)+1: // the newline is not part of the limit
			over, buf = true, buf[:0]
		case partial || len(buf) > 0:
			buf = append(buf, chunk...)
		}
		if partial {
			continue
		}
		line := chunk // the whole line came in one read: no copy
		if len(buf) > 0 {
			line = buf
		}
		whole := err == nil // ends with a newline
		if n > 0 {
			switch got, lerr := parseLine(line, over); {
			case lerr == nil:
				rec(got)
			case whole && n > 1 && bad != nil: // not a torn last line, nor an empty one
				bad(badLine{off: off, n: n, err: lerr})
			}
		}
		if !whole {
			return off + n, nil
		}
		off, n, buf, over = off+n, 0, buf[:0], false
	}
}

// skipZeros reads past the zero bytes at br's start and says how many
// there were.
func skipZeros(br *bufio.Reader) (int64, error) {
	var n int64
	for {
		b, err := br.Peek(1)
		if err != nil {
			return n, err
		}
		if b[0] != 0 {
			return n, nil
		}
		b, _ = br.Peek(br.Buffered())
		i := 0
		for i < len(b) && b[i] == 0 {
			i++
		}
		br.Discard(i)
		n += int64(i)
	}
}

// parseLine decodes one line, newline included.
func parseLine(line []byte, over bool) (books.UsageRecord, error) {
	var r books.UsageRecord
	if over {
		return r, errLineTooLong
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	if err := json.Unmarshal(line, &r); err != nil {
		return r, err
	}
	if r.RequestID == "" {
		return r, errors.New("record without a request id")
	}
	return r, nil
}

// openSegment starts segment s.seg, with room for at least need bytes;
// the caller holds mu (or owns s).
func (s *Spool) openSegment(need int64) error {
	w, err := openSegWriter(s.path(s.seg), max(s.maxSize, need))
	if err != nil {
		s.w = nil // Append reports the spool closed rather than write to a closed file
		return fmt.Errorf("spool: %w", err)
	}
	s.w = w
	s.segs[s.seg] = &segment{}
	return nil
}

// Append writes one record (a JSON line) and returns the
// segment it is in. It returns ErrSpoolFull when the record would take the
// spool past its limit, and an error for a record too long to be read
// back (the caller then writes it to the store directly).
func (s *Spool) Append(rec books.UsageRecord) (int64, error) {
	p, err := marshalLine(&rec)
	if err != nil {
		return 0, err
	}
	defer putLine(p)
	line := *p // newline included
	if len(line)-1 > s.maxLine {
		return 0, fmt.Errorf("spool: record %s of %d bytes: %w", rec.RequestID, len(line)-1, errLineTooLong)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return 0, errors.New("spool: closed")
	}
	if s.limit > 0 && s.bytes.Load()+int64(len(line)) > s.limit {
		return 0, ErrSpoolFull
	}
	if s.segs[s.seg].size >= s.maxSize {
		if err := s.rotateLocked(0); err != nil {
			return 0, err
		}
	}
	n, err := s.w.write(line)
	if errors.Is(err, errSegFull) {
		if err := s.rotateLocked(int64(len(line))); err != nil {
			return 0, err
		}
		n, err = s.w.write(line)
	}
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
	if s.w == nil {
		return s.seg, errors.New("spool: closed")
	}
	if s.segs[s.seg].size == 0 {
		return s.seg, nil
	}
	// Not `return s.seg, s.rotateLocked()`: Go leaves unspecified whether
	// s.seg is read before or after the call, and the caller needs the new one.
	err := s.rotateLocked(0)
	return s.seg, err
}

// rotateLocked seals the current segment and starts the next, with room
// for at least need bytes.
func (s *Spool) rotateLocked(need int64) error {
	old := s.seg
	if err := s.w.close(); err != nil {
		s.logger().Warn("usage spool segment not closed cleanly", zap.Int64("segment", old), zap.Error(err))
	}
	s.seg++
	err := s.openSegment(need)
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
// first failure: what is left stays for the next try. Lines of a segment
// that hold no record are set aside in the rejected file once the rest is
// in the store (not before: a failed pass would set them aside twice).
func (s *Spool) replay(ctx context.Context, before int64, insert func(context.Context, []books.UsageRecord) error) (int, error) {
	total := 0
	for _, seg := range s.sealed(before) {
		n, err := s.replaySegment(ctx, seg, insert)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func (s *Spool) replaySegment(ctx context.Context, seg int64, insert func(context.Context, []books.UsageRecord) error) (int, error) {
	// The file stays open until its bad lines are copied: the writer may
	// delete it meanwhile (its last records committed), and an unlinked
	// file is still readable through an open descriptor.
	f, err := os.Open(s.path(seg))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // its last records were committed meanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	var recs []books.UsageRecord
	var bad []badLine
	if _, err := scanSegment(f, s.maxLine, func(r books.UsageRecord) { recs = append(recs, r) }, func(b badLine) { bad = append(bad, b) }); err != nil {
		return 0, fmt.Errorf("spool: %s: %w", filepath.Base(f.Name()), err)
	}
	if err := insert(ctx, recs); err != nil {
		return 0, err
	}
	s.setAsideLines(f, bad)
	s.drop(seg)
	return len(recs), nil
}

// setAsideLines copies lines of a segment that hold no record to the
// rejected file as they are, for an operator to look at: the segment is
// about to be deleted. One that cannot be copied is only logged.
func (s *Spool) setAsideLines(f *os.File, bad []badLine) {
	log := s.logger()
	for _, b := range bad {
		fields := []zap.Field{zap.String("segment", filepath.Base(f.Name())), zap.Int64("offset", b.off), zap.Int64("bytes", b.n), zap.NamedError("cause", b.err)}
		if err := s.appendRejected(io.NewSectionReader(f, b.off, b.n)); err != nil {
			log.Error("unreadable usage spool line skipped: it could not be set aside", append(fields, zap.Error(err))...)
			continue
		}
		log.Error("unreadable usage spool line set aside in the rejected file", append(fields, zap.String("file", s.rejectedPath()))...)
	}
}

func (s *Spool) rejectedPath() string { return filepath.Join(s.dir, rejectedFile) }

// appendRejected appends to the rejected file what r holds.
func (s *Spool) appendRejected(r io.Reader) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	f, err := os.OpenFile(s.rejectedPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: %s: %w", rejectedFile, err)
	}
	return nil
}

// Replay writes to w, in batches of batch records, the records of every
// sealed segment (those a previous process left, or spooled during a
// store outage), deleting each segment once it is in the store. It
// returns how many records it wrote; on error, what is left stays in the
// spool.
func (s *Spool) Replay(ctx context.Context, w UsageWriter, batch int) (int, error) {
	return s.replay(ctx, s.current(), func(ctx context.Context, recs []books.UsageRecord) error {
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
func (s *Spool) reject(recs []books.UsageRecord) error {
	var buf []byte
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	return s.appendRejected(bytes.NewReader(buf))
}

// Stats is what the spool holds: records not known to be in the store,
// and the bytes of all its segments.
func (s *Spool) Stats() (records, bytes int64) { return s.records.Load(), s.bytes.Load() }

// Limit is the bound on the spool's bytes (0: unbounded).
func (s *Spool) Limit() int64 { return s.limit }

// Close closes the current segment; if every record is committed (a
// graceful stop), it is deleted. Then the directory's lock is released.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.w != nil {
		err = s.w.close()
		s.w = nil
		if sg := s.segs[s.seg]; sg == nil || sg.pending <= 0 {
			os.Remove(s.path(s.seg))
		}
	}
	s.unlock() // last: the next process may take the directory now
	return err
}
