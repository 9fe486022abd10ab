//go:build !linux

package billing

// openSegWriter writes segments with write(2) where mapped segments are
// not built (they need fallocate(2) to be safe).
func openSegWriter(path string, _ int64) (segWriter, error) { return openFileSeg(path) }
