package catalog

import (
	"math"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParsePrice(t *testing.T) {
	tests := []struct {
		in      string
		want    Price
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "0.15", want: 150_000},
		{in: "2.50", want: 2_500_000},
		{in: "15", want: 15_000_000},
		{in: "0.0375", want: 37_500},
		{in: "0.003625", want: 3_625},
		{in: " 1.1 ", want: 1_100_000},
		{in: "600.000001", want: 600_000_001},
		{in: "", wantErr: true},
		{in: "-0.15", wantErr: true},
		{in: "+1", wantErr: true},
		{in: "1e-6", wantErr: true},
		{in: ".5", wantErr: true},
		{in: "5.", wantErr: true},
		{in: "0.0000001", wantErr: true}, // finer than the unit
		{in: "1,5", wantErr: true},
		{in: "99999999999999999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrice(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePrice(%q) = %d, want error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePrice(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			back, err := ParsePrice(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip %q -> %q -> %d, %v", tt.in, got.String(), back, err)
			}
		})
	}
}

func TestPriceString(t *testing.T) {
	tests := map[Price]string{0: "0", 150_000: "0.15", 2_500_000: "2.5", 10_000_000: "10", 37_500: "0.0375", 1: "0.000001"}
	for p, want := range tests {
		if got := p.String(); got != want {
			t.Errorf("Price(%d).String() = %q, want %q", int64(p), got, want)
		}
	}
}

func TestPriceYAML(t *testing.T) {
	var v struct {
		A Price `yaml:"a"`
		B Price `yaml:"b"`
	}
	// Unquoted numbers are read from their literal text, never as floats.
	if err := yaml.Unmarshal([]byte("a: \"0.1\"\nb: 0.3\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 100_000 || v.B != 300_000 {
		t.Fatalf("got %d, %d", v.A, v.B)
	}
	for _, bad := range []string{"a: [1]\n", "a: \"-1\"\n", "a: \"abc\"\n"} {
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
	out, err := yaml.Marshal(struct {
		P Price `yaml:"p"`
	}{P: 75_000})
	if err != nil || string(out) != "p: \"0.075\"\n" {
		t.Fatalf("marshal = %q, %v", out, err)
	}
}

func TestNanoCostSaturates(t *testing.T) {
	if got := nanoCost([2]uint64{math.MaxInt64, math.MaxInt64}); got != math.MaxInt64 {
		t.Fatalf("got %d, want MaxInt64", got)
	}
	if got := nanoCost([2]uint64{math.MaxUint64, math.MaxUint64}, [2]uint64{math.MaxUint64, math.MaxUint64}); got != math.MaxInt64 {
		t.Fatalf("got %d, want MaxInt64", got)
	}
	if got := nanoCost(); got != 0 {
		t.Fatalf("empty sum = %d", got)
	}
}
