// Package golden is the golden-file check the translation tests share:
// compare what a test produced with testdata/<name>, or rewrite the file
// when the test binary runs with -update (each test package declares that
// flag itself and passes it in).
package golden

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with testdata/name; with update it writes got there
// instead.
func Check(t testing.TB, update bool, name string, got []byte) {
	t.Helper()
	CheckFile(t, update, filepath.Join("testdata", name), got)
}

// CheckFile is Check for a file at path.
func CheckFile(t testing.TB, update bool, path string, got []byte) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Indent pretty-prints JSON for a golden file, with a final newline.
func Indent(t testing.TB, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return append(out.Bytes(), '\n')
}
