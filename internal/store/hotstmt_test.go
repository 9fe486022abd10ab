package store

import "testing"

func TestPiece(t *testing.T) {
	for _, c := range []struct{ n, most, want int }{
		{1, 32, 1}, {2, 32, 2}, {3, 32, 2}, {31, 32, 16}, {32, 32, 32}, {33, 32, 32}, {1000, 32, 32},
		{63, 64, 32}, {64, 64, 64}, {65, 64, 64},
	} {
		if got := piece(c.n, c.most); got != c.want {
			t.Errorf("piece(%d, %d) = %d, want %d", c.n, c.most, got, c.want)
		}
	}
	// The pieces of every batch size add up to it, each a statement
	// prepared once.
	for n := 1; n <= 200; n++ {
		sum := 0
		for left := n; left > 0; {
			p := piece(left, usageRowsPerInsert)
			if p&(p-1) != 0 || p > usageRowsPerInsert {
				t.Fatalf("batch of %d: piece of %d", n, p)
			}
			sum += p
			left -= p
		}
		if sum != n {
			t.Fatalf("batch of %d: pieces add up to %d", n, sum)
		}
	}
}
