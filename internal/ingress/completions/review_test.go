package completions_test

import (
	"testing"

	"github.com/xroute/xroute/internal/ingress/completions"
)

// best_of generates best_of completions server side and bills every one
// of them (the reference: "Because this parameter generates many
// completions, it can quickly consume your token quota"). The handler
// reserves credits for MaxOutput() × Choices(), so Choices must count
// max(n, best_of) per prompt, or a best_of request holds a fifth of what
// it can cost.
func TestReviewChoicesCountsBestOf(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"model":"m","prompt":"a","best_of":5}`, 5},
		{`{"model":"m","prompt":"a","best_of":5,"n":2}`, 5},
		{`{"model":"m","prompt":["a","b"],"best_of":3}`, 6},
	} {
		r, err := completions.Parse([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Choices(); got != tc.want {
			t.Errorf("%s: Choices() = %d, want %d (completions generated and billed)", tc.body, got, tc.want)
		}
	}
}
