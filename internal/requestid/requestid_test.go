package requestid

import (
	"strings"
	"testing"
	"time"
)

func TestShape(t *testing.T) {
	id := New()
	if len(id) != Len || !strings.HasPrefix(id, Prefix) {
		t.Fatalf("id %q: want %d characters starting %q", id, Len, Prefix)
	}
	for _, c := range id[len(Prefix):] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			t.Fatalf("id %q: %q is not a lower-case hex digit", id, c)
		}
	}
}

// TestLaterSortsLater: an id made in a later millisecond sorts after one
// made earlier, whatever the random part, across the byte boundaries of
// the time field.
func TestLaterSortsLater(t *testing.T) {
	base := time.UnixMilli(0x0193_ffff_ffff)
	for _, step := range []time.Duration{time.Millisecond, 256 * time.Millisecond, time.Hour, 24 * 365 * time.Hour} {
		for range 100 {
			a, b := At(base), At(base.Add(step))
			if a >= b {
				t.Fatalf("At(t) = %s does not sort before At(t+%v) = %s", a, step, b)
			}
		}
	}
}

func TestTimePart(t *testing.T) {
	at := time.Date(2026, 12, 7, 21, 0, 0, 123e6, time.UTC)
	id := At(at)
	if got, want := id[len(Prefix):len(Prefix)+12], "01a2524e68fb"; got != want {
		// 1796677200123 ms = 0x01a2524e68fb
		t.Fatalf("time part of %s = %s, want %s", id, got, want)
	}
}

func TestUnique(t *testing.T) {
	at := time.Now()
	seen := make(map[string]bool, 100000)
	for range 100000 {
		id := At(at) // one millisecond: only the random part differs
		if seen[id] {
			t.Fatalf("id %s made twice", id)
		}
		seen[id] = true
	}
}
