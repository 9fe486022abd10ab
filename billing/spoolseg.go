package billing

import (
	"fmt"
	"os"
)

// segWriter appends whole lines to the segment being written.
type segWriter interface {
	// write appends line (newline included) and returns the bytes it
	// wrote: all of them, or an error; errSegFull, with nothing written,
	// when the segment has no room for line (or takes no more lines).
	write(line []byte) (int, error)
	// close ends the segment, leaving its file holding exactly what was
	// written.
	close() error
}

// errSegFull: the segment has no room left for a line (the spool rotates).
var errSegFull = fmt.Errorf("spool: segment full")

// fileSeg writes a segment with write(2), one call a line: the fallback
// where a mapped segment cannot be made (see openSegWriter).
type fileSeg struct{ f *os.File }

func openFileSeg(path string) (*fileSeg, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &fileSeg{f: f}, nil
}

func (w *fileSeg) write(line []byte) (int, error) { return w.f.Write(line) }

func (w *fileSeg) close() error { return w.f.Close() }

// abandon closes the file as a killed process leaves it (tests).
func (w *fileSeg) abandon() { w.f.Close() }
