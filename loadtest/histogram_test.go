package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the reference: the ceil(q*n)-th smallest value.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func within(got, want int64) bool {
	// One bucket is at most 1/subBuckets of its values wide; allow that plus 1 µs.
	tol := want/subBuckets + 1
	return got >= want-tol && got <= want+tol
}

func TestHistogramQuantilesMatchSortedReference(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) int64
		n    int
	}{
		{"small exact values", func(r *rand.Rand) int64 { return r.Int64N(2 * subBuckets) }, 5000},
		{"uniform up to 1s", func(r *rand.Rand) int64 { return r.Int64N(1_000_000) }, 20000},
		{"log-normal latencies", func(r *rand.Rand) int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 9)) }, 50000},
		{"huge values clamp", func(r *rand.Rand) int64 { return r.Int64N(maxTrackable) }, 5000},
		{"single value", func(*rand.Rand) int64 { return 12345 }, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.n)))
			h := NewHistogram()
			vals := make([]int64, tc.n)
			for i := range vals {
				vals[i] = tc.gen(r)
				h.RecordMicros(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != uint64(tc.n) {
				t.Fatalf("Count = %d, want %d", h.Count(), tc.n)
			}
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999} {
				want := exactQuantile(vals, q)
				got := h.quantileMicros(q)
				if !within(got, want) {
					t.Errorf("q=%v: got %d µs, want %d µs (±1 bucket)", q, got, want)
				}
			}
			if got, want := h.Max(), time.Duration(vals[len(vals)-1])*time.Microsecond; got != want {
				t.Errorf("Max = %v, want %v", got, want)
			}
			if got, want := h.Min(), time.Duration(vals[0])*time.Microsecond; got != want {
				t.Errorf("Min = %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	var vals []int64
	for i := range 30000 {
		v := int64(math.Exp(r.NormFloat64() + 8))
		if i%3 == 0 {
			v *= 50 // b gets a slower population
			b.RecordMicros(v)
		} else {
			a.RecordMicros(v)
		}
		all.RecordMicros(v)
		vals = append(vals, v)
	}
	a.Merge(b)
	a.Merge(nil)
	a.Merge(NewHistogram())
	if a.Count() != all.Count() || a.Max() != all.Max() || a.Min() != all.Min() || a.Mean() != all.Mean() {
		t.Fatalf("merged count/min/max/mean = %d/%v/%v/%v, want %d/%v/%v/%v",
			a.Count(), a.Min(), a.Max(), a.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if got, want := a.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("q=%v: merged %v, single %v", q, got, want)
		}
		if got, want := a.quantileMicros(q), exactQuantile(vals, q); !within(got, want) {
			t.Errorf("q=%v: merged %d µs, reference %d µs", q, got, want)
		}
	}
}

func TestHistogramEmptyAndReset(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Summary() != (Summary{}) {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-time.Second) // negative counts as zero
	h.Record(3 * time.Millisecond)
	if got := h.Quantile(1); got != 3*time.Millisecond {
		t.Fatalf("Quantile(1) = %v, want 3ms", got)
	}
	if got := h.Quantile(0); got != 0 {
		t.Fatalf("Quantile(0) = %v, want 0", got)
	}
	h.Reset()
	if h.Count() != 0 || h.Quantile(0.5) != 0 {
		t.Fatal("Reset should empty the histogram")
	}
}

func TestBucketIndexRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1000, 123456789, maxTrackable} {
		i := bucketIndex(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketIndex(%d) = %d out of range", v, i)
		}
		low, width := bucketBounds(i)
		if v < low || v >= low+width {
			t.Errorf("value %d outside its bucket [%d, %d)", v, low, low+width)
		}
	}
}

func TestHistogramClampsHugeValues(t *testing.T) {
	h := NewHistogram()
	huge := 4 * maxTrackable
	h.RecordMicros(huge)
	if bucketIndex(huge) != numBuckets-1 {
		t.Fatalf("bucketIndex(huge) = %d, want the top bucket %d", bucketIndex(huge), numBuckets-1)
	}
	if got := h.Max(); got != time.Duration(huge)*time.Microsecond {
		t.Fatalf("Max = %v, want the exact value", got)
	}
	if got := h.Quantile(0.5); got != time.Duration(huge)*time.Microsecond {
		t.Fatalf("Quantile(0.5) = %v, want it clamped to the recorded value", got)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	d := 21 * time.Millisecond
	for b.Loop() {
		h.Record(d)
		d += 7 * time.Microsecond
	}
}
