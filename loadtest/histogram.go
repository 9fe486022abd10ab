package loadtest

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: log-linear buckets in the manner of HdrHistogram.
// Values are microseconds. Values below 2*subBuckets are stored exactly; above
// that, each power of two is split into subBuckets equal-width buckets, so a
// bucket's width is at most 1/subBuckets (0.1 %) of the values it holds:
// three significant digits, like HdrHistogram's usual setting.
const (
	subBits    = 10
	subBuckets = 1 << subBits // linear buckets per power of two
	// maxExponent bounds the range: values up to 2^(maxExponent+subBits+1)-1
	// µs (about 71 minutes) are kept; larger values are clamped into the top
	// bucket (Max stays exact).
	maxExponent  = 21
	numBuckets   = 2*subBuckets + maxExponent*subBuckets // 23,552 counters, 184 KiB
	maxTrackable = int64(1)<<(maxExponent+subBits+1) - 1
)

// Histogram records durations with microsecond resolution and a bounded
// relative error (< 0.1 %) in a fixed array of counters. The zero value is not
// usable; create one with NewHistogram. A Histogram is not safe for concurrent
// use: guard it or give each goroutine its own and Merge them.
type Histogram struct {
	counts []uint64
	total  uint64
	sum    float64 // µs, for the mean
	min    int64
	max    int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketIndex maps a value in µs to its bucket.
func bucketIndex(v int64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	if v > maxTrackable {
		v = maxTrackable
	}
	e := bits.Len64(uint64(v)) - (subBits + 1) // >= 1
	m := v >> uint(e)                          // in [subBuckets, 2*subBuckets)
	return 2*subBuckets + (e-1)*subBuckets + int(m-subBuckets)
}

// bucketBounds returns the lowest value and the width of bucket i.
func bucketBounds(i int) (low, width int64) {
	if i < 2*subBuckets {
		return int64(i), 1
	}
	e := (i-2*subBuckets)/subBuckets + 1
	m := int64((i-2*subBuckets)%subBuckets + subBuckets)
	return m << uint(e), int64(1) << uint(e)
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	h.RecordMicros(d.Microseconds())
}

// RecordMicros adds one value given in microseconds.
func (h *Histogram) RecordMicros(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketIndex(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest recorded value (exact), zero when empty.
func (h *Histogram) Max() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.max) * time.Microsecond
}

// Min is the smallest recorded value (exact), zero when empty.
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min) * time.Microsecond
}

// Mean is the arithmetic mean of the recorded values (exact to 1 µs).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.total)) * time.Microsecond
}

// Quantile returns the value at quantile q in [0, 1]: the smallest bucket
// whose cumulative count reaches ceil(q*count), reported as the highest value
// equivalent to that bucket (clamped to the recorded min and max). The result
// is within one bucket width (< 0.1 %) of the exact order statistic.
func (h *Histogram) Quantile(q float64) time.Duration {
	return time.Duration(h.quantileMicros(q)) * time.Microsecond
}

func (h *Histogram) quantileMicros(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	switch {
	case q <= 0:
		return h.min
	case q >= 1:
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		if cum >= rank {
			low, width := bucketBounds(i)
			v := low + width - 1
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return v
		}
	}
	return h.max
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	if o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
}

// Reset empties the histogram, keeping its storage.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.sum, h.min, h.max = 0, 0, math.MaxInt64, 0
}

// Summary is a histogram's digest in milliseconds, for reports and JSON.
type Summary struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summary digests the histogram.
func (h *Histogram) Summary() Summary {
	if h.total == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count:  h.total,
		MinMs:  ms(h.min),
		MeanMs: h.sum / float64(h.total) / 1000,
		P50Ms:  ms(h.quantileMicros(0.50)),
		P90Ms:  ms(h.quantileMicros(0.90)),
		P99Ms:  ms(h.quantileMicros(0.99)),
		P999Ms: ms(h.quantileMicros(0.999)),
		MaxMs:  ms(h.max),
	}
}
