package catalog

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/xroute/xroute/internal/money"
)

// Price is a token price in micro-USD per million tokens, which is the same
// number as pico-USD (1e-12 USD) per token: "$0.15 per 1M tokens" is
// Price(150_000). Six decimal places of a dollar-per-million price fit
// exactly; money never passes through a float.
type Price int64

// priceScale is the number of Price units in one USD per million tokens.
const priceScale = 1_000_000

// ParsePrice parses a decimal USD-per-million-tokens string such as "0.15",
// "3", or "0.003625". At most six decimals are accepted (the Price unit);
// signs, exponents and empty strings are rejected.
func ParsePrice(s string) (Price, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("price: empty")
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") {
		return 0, fmt.Errorf("price %q: want digits like 0.15", s)
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("price %q: want an unsigned decimal number of USD per 1M tokens", s)
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("price %q: more than 6 decimals (the unit is micro-USD per 1M tokens)", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/priceScale-1 {
		return 0, fmt.Errorf("price %q: too large", s)
	}
	var f int64
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	return Price(w*priceScale + f), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String renders the price back as a decimal USD-per-1M string ("0.15").
func (p Price) String() string {
	sign := ""
	v := int64(p)
	if v < 0 {
		sign, v = "-", -v
	}
	whole, frac := v/priceScale, v%priceScale
	if frac == 0 {
		return sign + strconv.FormatInt(whole, 10)
	}
	fs := strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	return sign + strconv.FormatInt(whole, 10) + "." + fs
}

// UnmarshalYAML reads a scalar such as "0.15" (quoted or not: the literal
// text is parsed, never a float).
func (p *Price) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: price must be a decimal string like \"0.15\"", n.Line)
	}
	v, err := ParsePrice(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*p = v
	return nil
}

// MarshalYAML writes the decimal string form.
func (p Price) MarshalYAML() (any, error) { return p.String(), nil }

// nanoCost returns ceil(sum(tokens[i] * prices[i]) / 1000) in nano-USD,
// exact for every input (internal/money, the arithmetic billing's costs
// use too). The result saturates at math.MaxInt64 nano-USD (about 9.2
// billion USD).
func nanoCost(terms ...[2]uint64) int64 { return money.CeilProducts(1, 1000, terms...) }
