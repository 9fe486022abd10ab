// Package money is the exact integer arithmetic behind every price and
// cost: sums of tokens × price products in 128 bits, scaled and divided
// once with the result rounded up, saturating instead of wrapping. It is
// a leaf so that the catalog (a model's cost at list price) and billing
// (a request's cost times the account multiplier) share one
// implementation while billing keeps importing the catalog.
package money

import (
	"math"
	"math/bits"
)

// CeilProducts returns ceil(Σ terms[i][0]×terms[i][1] × mul / div), computed
// exactly in 128-bit integers. The result saturates at math.MaxInt64 when
// the sum, its product with mul or the quotient does not fit (an amount
// of about 9.2 billion USD in nano-USD). div must not be 0.
func CeilProducts(mul, div uint64, terms ...[2]uint64) int64 {
	var hi, lo uint64
	for _, t := range terms {
		h, l := bits.Mul64(t[0], t[1])
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi, carry = bits.Add64(hi, h, carry)
		if carry != 0 {
			return math.MaxInt64
		}
	}
	h1, l1 := bits.Mul64(lo, mul)
	h2, l2 := bits.Mul64(hi, mul)
	hi, carry := bits.Add64(h1, l2, 0)
	if h2 != 0 || carry != 0 {
		return math.MaxInt64
	}
	return divCeil(hi, l1, div)
}

// divCeil returns ceil((hi:lo) / d), saturating at math.MaxInt64.
func divCeil(hi, lo, d uint64) int64 {
	if hi >= d { // the quotient would not fit in 64 bits
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, d)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
