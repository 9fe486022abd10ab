package main

import "testing"

func TestChartsDir(t *testing.T) {
	for _, tc := range []struct {
		name, md, charts  string
		wantDir, wantLink string
	}{
		{"default next to the markdown", "docs/benchmarks.md", "", "docs/benchmarks", "benchmarks"},
		{"markdown without extension", "report", "", "report-charts", "report-charts"},
		{"explicit dir", "docs/benchmarks.md", "docs/img", "docs/img", "img"},
		{"explicit dir above", "docs/b/benchmarks.md", "charts", "charts", "../../charts"},
		{"no markdown", "", "out", "out", "out"},
		{"off", "docs/benchmarks.md", "-", "", ""},
		{"neither", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, link := chartsDir(config{mdOut: tc.md, chartsDir: tc.charts})
			if dir != tc.wantDir || link != tc.wantLink {
				t.Errorf("chartsDir(md=%q, charts=%q) = %q, %q; want %q, %q", tc.md, tc.charts, dir, link, tc.wantDir, tc.wantLink)
			}
		})
	}
}
