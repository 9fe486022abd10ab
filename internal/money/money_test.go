package money

import (
	"math"
	"math/big"
	"testing"
)

func TestCeilProducts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mul, div uint64
		terms    [][2]uint64
		want     int64
	}{
		{"nothing", 1, 1000, nil, 0},
		{"exact", 1, 1000, [][2]uint64{{1000, 150_000}}, 150_000},
		{"rounded up", 1, 1000, [][2]uint64{{1, 1}}, 1},
		{"several terms", 1, 1000, [][2]uint64{{10, 150_000}, {5, 600_000}}, 4500},
		{"a multiplier", 12_500, 1000 * 10_000, [][2]uint64{{1000, 150_000}}, 187_500},
		{"a multiplier, rounded once", 12_500, 1000 * 10_000, [][2]uint64{{1, 1}, {1, 1}}, 1},
		{"product overflows 64 bits, quotient fits", 1, 1000, [][2]uint64{{1 << 40, 1 << 30}}, 1_180_591_620_717_411_304},
		{"sum overflows 128 bits", 1, 1000, [][2]uint64{{math.MaxUint64, math.MaxUint64}, {math.MaxUint64, math.MaxUint64}}, math.MaxInt64},
		{"quotient over 64 bits", 1, 1000, [][2]uint64{{math.MaxInt64, math.MaxInt64}}, math.MaxInt64},
		{"scaled sum overflows 128 bits", math.MaxUint64, 1, [][2]uint64{{math.MaxUint64, 2}}, math.MaxInt64},
		{"quotient just over MaxInt64", 1, 1, [][2]uint64{{math.MaxInt64 + 1, 1}}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := CeilProducts(tt.mul, tt.div, tt.terms...); got != tt.want {
				t.Fatalf("CeilProducts(%d, %d, %v) = %d, want %d", tt.mul, tt.div, tt.terms, got, tt.want)
			}
			if got := bigCeil(tt.mul, tt.div, tt.terms); got != tt.want {
				t.Fatalf("math/big says %d, the table %d", got, tt.want)
			}
		})
	}
}

// bigCeil is CeilProducts in math/big, saturating the same way.
func bigCeil(mul, div uint64, terms [][2]uint64) int64 {
	sum := new(big.Int)
	for _, t := range terms {
		sum.Add(sum, new(big.Int).Mul(new(big.Int).SetUint64(t[0]), new(big.Int).SetUint64(t[1])))
	}
	sum.Mul(sum, new(big.Int).SetUint64(mul))
	d := new(big.Int).SetUint64(div)
	q, r := new(big.Int).QuoRem(sum, d, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

// Against math/big on a spread of values that fit.
func TestCeilProductsMatchesBig(t *testing.T) {
	t.Parallel()
	vals := []uint64{0, 1, 7, 999, 1000, 1001, 150_000, 1 << 20, 1 << 31, 1<<32 + 3, 1 << 40}
	muls := []uint64{1, 10_000, 12_500, 1}
	for _, a := range vals {
		for _, b := range vals {
			for _, m := range muls {
				terms := [][2]uint64{{a, b}, {b, 3}}
				if got, want := CeilProducts(m, 1000*10_000, terms...), bigCeil(m, 1000*10_000, terms); got != want {
					t.Fatalf("CeilProducts(%d, 1e7, %v) = %d, want %d", m, terms, got, want)
				}
			}
		}
	}
}
