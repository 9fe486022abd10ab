package billing

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/xroute/xroute/internal/money"
)

// Nano is an amount of money in nano-USD (1e-9 USD). Every balance, cost,
// reservation and limit is a Nano; no float ever touches one.
type Nano int64

// Money units.
const (
	NanoPerUSD Nano = 1_000_000_000
	// MaxAmount bounds one ledger posting (one billion USD), so that sums of
	// postings stay far from int64 overflow.
	MaxAmount Nano = 1_000_000_000 * NanoPerUSD
)

// ParseUSD parses a decimal USD amount such as "10", "10.00", "0.000001"
// or "-2.5" exactly: digits with at most 9 decimals (the Nano unit), an
// optional leading sign, no exponent, no currency symbol, no separators.
func ParseUSD(s string) (Nano, error) {
	orig := s
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("amount %q: want a decimal USD amount like 10.00", orig)
	}
	if len(frac) > 9 {
		return 0, fmt.Errorf("amount %q: more than 9 decimals (the unit is nano-USD)", orig)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > int64(MaxAmount/NanoPerUSD) {
		return 0, fmt.Errorf("amount %q: larger than %s USD", orig, MaxAmount)
	}
	var f int64
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	n := Nano(w)*NanoPerUSD + Nano(f)
	if n > MaxAmount {
		return 0, fmt.Errorf("amount %q: larger than %s USD", orig, MaxAmount)
	}
	if neg {
		n = -n
	}
	return n, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String renders n in USD with at least 2 and at most 9 decimals, exactly:
// 10 USD is "10.00", 1234 nano-USD "0.000001234", -1.5 USD "-1.50".
func (n Nano) String() string {
	u := uint64(n)
	sign := ""
	if n < 0 {
		sign, u = "-", uint64(-n) // two's complement: right for MinInt64 too
	}
	whole, frac := u/uint64(NanoPerUSD), u%uint64(NanoPerUSD)
	fs := strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
	for len(fs) < 2 {
		fs += "0"
	}
	return sign + strconv.FormatUint(whole, 10) + "." + fs
}

// Basis points: a price multiplier of 12500 bp is 1.25x.
const (
	// OneX is the neutral multiplier (10000 bp = 1x).
	OneX = 10_000
	// MaxMultiplierBP bounds a multiplier (1000x).
	MaxMultiplierBP = 1000 * OneX
)

// ParseMultiplier parses "1.25" (or "1.25x") into basis points (12500).
// At most 4 decimals; the result is between 1 bp and MaxMultiplierBP.
func ParseMultiplier(s string) (int, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "x")
	whole, frac, dot := strings.Cut(t, ".")
	if whole == "" || (dot && frac == "") || !digits(whole) || !digits(frac) || len(frac) > 4 || len(whole) > 6 {
		return 0, fmt.Errorf("multiplier %q: want a decimal like 1.25 (at most 4 decimals)", s)
	}
	w, _ := strconv.Atoi(whole)
	f := 0
	if frac != "" {
		f, _ = strconv.Atoi(frac + strings.Repeat("0", 4-len(frac)))
	}
	bp := w*OneX + f
	if bp <= 0 || bp > MaxMultiplierBP {
		return 0, fmt.Errorf("multiplier %q: must be above 0 and at most %d", s, MaxMultiplierBP/OneX)
	}
	return bp, nil
}

// FormatMultiplier renders basis points as a decimal: 12500 -> "1.25".
func FormatMultiplier(bp int) string {
	s := strconv.Itoa(bp / OneX)
	if f := bp % OneX; f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%04d", f), "0")
	}
	return s
}

// ValidMultiplier reports whether bp is a usable multiplier.
func ValidMultiplier(bp int) bool { return bp > 0 && bp <= MaxMultiplierBP }

// normBP maps "unset" (0 or negative) to 1x.
func normBP(bp int) uint64 {
	if bp <= 0 {
		return OneX
	}
	return uint64(bp)
}

// ApplyMultiplier returns cost × bp / 10000, rounded up to the next whole
// nano-USD (never below the exact product, at most 1 nano-USD above it).
// A bp of 0 or less means 1x. A negative cost is scaled by its magnitude
// and keeps its sign. The result saturates at math.MaxInt64.
//
// Prefer Cost and MaxCost, which apply the multiplier before the one and
// only rounding; this is for amounts that are already whole nano-USD.
func ApplyMultiplier(cost Nano, bp int) Nano {
	if cost < 0 {
		return -ApplyMultiplier(-cost, bp)
	}
	return Nano(money.CeilProducts(normBP(bp), OneX, [2]uint64{uint64(cost), 1}))
}
