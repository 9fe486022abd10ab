package exchange

import "testing"

func TestGlob(t *testing.T) {
	cases := []struct {
		pat, s string
		want   bool
	}{
		{"repo:octo-org/*", "repo:octo-org/octo-repo:ref:refs/heads/main", true},
		{"repo:octo-org/*:ref:refs/heads/main", "repo:octo-org/x:ref:refs/heads/main", true},
		{"repo:octo-org/*:ref:refs/heads/main", "repo:octo-org/x:ref:refs/heads/dev", false},
		{"repo:octo-org/*", "repo:octo-organisation/x", false},
		{"ml-?", "ml-a", true},
		{"ml-?", "ml-ab", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"**", "anything", true},
	}
	for _, tc := range cases {
		if got := glob(tc.pat, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.pat, tc.s, got, tc.want)
		}
	}
}

func TestClaimValues(t *testing.T) {
	claims := map[string]any{
		"groups":        []any{"staff", "llm-admins"},
		"admin":         true,
		"run_number":    float64(42),
		"kubernetes.io": map[string]any{"namespace": "ml-prod", "serviceaccount": map[string]any{"name": "inference"}},
	}
	cases := []struct {
		name, pat string
		want      bool
	}{
		{"groups", "llm-*", true},
		{"groups", "root", false},
		{"admin", "true", true},
		{"run_number", "42", true},
		{"kubernetes.io.namespace", "ml-*", true},
		{"kubernetes.io.serviceaccount.name", "inference", true},
		{"kubernetes.io", "*", false}, // an object never matches
		{"missing", "*", false},
	}
	for _, tc := range cases {
		v, ok := claim(claims, tc.name)
		if got := ok && valueMatches(tc.pat, v); got != tc.want {
			t.Errorf("claim %s ~ %q = %v, want %v", tc.name, tc.pat, got, tc.want)
		}
	}
}
