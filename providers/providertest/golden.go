package providertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xroute/xroute/internal/golden"
)

// Golden compares got with testdata/name, or writes it there with update
// (each test package declares its own -update flag and passes it in).
func Golden(t testing.TB, update bool, name string, got []byte) {
	t.Helper()
	golden.Check(t, update, name, got)
}

// Indent pretty-prints JSON for a golden file, with a final newline.
func Indent(t testing.TB, raw []byte) []byte {
	t.Helper()
	return golden.Indent(t, raw)
}

// Goldens runs render over every input file matching pattern (a glob such
// as "testdata/stream_*.sse") in a subtest named after the file, and
// compares what it renders with the file beside it whose name swaps the
// suffix for ".golden". A pattern that matches nothing fails the test: a
// renamed fixture directory must not turn the suite into a no-op.
func Goldens(t *testing.T, update bool, pattern, suffix string, render func(t *testing.T, name string, in []byte) []byte) {
	t.Helper()
	inputs, err := filepath.Glob(pattern)
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs match %s: %v", pattern, err)
	}
	for _, path := range inputs {
		name := strings.TrimSuffix(filepath.Base(path), suffix)
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := render(t, name, in)
			golden.CheckFile(t, update, strings.TrimSuffix(path, suffix)+".golden", got)
		})
	}
}
