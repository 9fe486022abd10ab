package billing

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
)

// mapSeg writes a segment through a shared memory mapping of its file.
//
// Why: a write(2) per record was ~5% of the gateway's CPU at 1,000 req/s
// (11 µs a call in the loaded server: the inode lock, the size and mtime
// updates); a copy into the mapping is a memmove, and the kernel writes
// the pages back on its own. BenchmarkSpoolAppend (two writers): 5.0–5.6
// µs a record with write(2), 1.9–2.2 µs mapped and populated ahead. The
// promise is write(2)'s: the bytes are in the page cache once the copy
// returns, so a SIGKILLed process leaves them for the next start to
// replay, and neither survives a power loss without an fsync.
//
// The file's blocks are reserved (fallocate) before it is mapped: a store
// to a page the file system cannot back would otherwise be a SIGBUS, not
// an error. A segment a killed process leaves is as long as its
// reservation, its tail zeros; scanSegment skips them, and close cuts the
// file to what was written.
type mapSeg struct {
	f     *os.File
	m     []byte
	n     int // bytes written
	ready int // bytes of m populated (see populate)
	gone  int // bytes of m dropped from the process's pages (see populate)
	bad   bool
}

// populateStep is how much of the mapping is made ready at a time: a few
// seconds of records at a high rate, so the pages are not written back
// (and write-protected again) before the records reach them.
const populateStep = 256 << 10

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), not in syscall.
const madvPopulateWrite = 23

// populate makes the pages up to end ready for writing in one call: a
// first store to each page of a file mapping is two faults (the page, then
// its write permission), a trap each, dear in a VM (mapped without it:
// 3.4–4.4 µs a record in BenchmarkSpoolAppend, twice the populated cost).
// Where the kernel refuses, the pages fault in as they are written.
//
// It also drops the whole steps already written from the process's page
// tables (MADV_DONTNEED): a shared file mapping's pages count in the
// process's RSS, up to a segment's 8 MB, while the kernel keeps their
// data in the page cache (a dirty page is marked so in the cache when its
// mapping goes) and writes it back as before.
func (w *mapSeg) populate(end int) {
	if done := w.n / populateStep * populateStep; done > w.gone {
		if syscall.Madvise(w.m[w.gone:done], syscall.MADV_DONTNEED) == nil {
			w.gone = done
		}
	}
	to := min(len(w.m), max(end, w.ready+populateStep))
	if err := syscall.Madvise(w.m[w.ready:to], madvPopulateWrite); err != nil {
		w.ready = len(w.m)
		return
	}
	w.ready = to
}

// openSegWriter makes the writer of a new segment able to hold at least
// capacity bytes: a mapped one, or one writing with write(2) where the
// file system cannot reserve the blocks (or maps are refused).
func openSegWriter(path string, capacity int64) (segWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	m, err := mapFile(f, capacity)
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.ENOSPC) {
			os.Remove(path)
			return nil, err
		}
		return openFileSeg(path)
	}
	return &mapSeg{f: f, m: m}, nil
}

func mapFile(f *os.File, size int64) ([]byte, error) {
	fd := int(f.Fd())
	for {
		err := syscall.Fallocate(fd, 0, 0, size)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return nil, fmt.Errorf("fallocate: %w", err)
		}
	}
	m, err := syscall.Mmap(fd, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return m, nil
}

func (w *mapSeg) write(line []byte) (n int, err error) {
	if w.bad || len(line) > len(w.m)-w.n {
		return 0, errSegFull
	}
	// A fault on the mapping (its file cut short behind our back, a disk
	// error) is a panic here rather than the process's death; the segment
	// then takes no more lines (the spool starts the next one).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			w.bad = true
			n, err = 0, fmt.Errorf("memory fault writing the segment: %v", r)
		}
	}()
	end := w.n + len(line) - 1
	if end >= w.ready {
		w.populate(end + 1)
	}
	// The newline last: a line cut short by the process's death has none,
	// and a reader skips it as torn.
	copy(w.m[w.n:end], line[:len(line)-1])
	w.m[end] = '\n'
	w.n = end + 1
	return len(line), nil
}

func (w *mapSeg) close() error {
	err := syscall.Munmap(w.m)
	w.m = nil
	if terr := w.f.Truncate(int64(w.n)); err == nil {
		err = terr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// abandon drops the mapping and the file as a killed process leaves them:
// the reservation's zero tail stays (tests).
func (w *mapSeg) abandon() {
	syscall.Munmap(w.m)
	w.f.Close()
}
