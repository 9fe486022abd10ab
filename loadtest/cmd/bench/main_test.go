package main

import (
	"strings"
	"testing"
)

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

func TestPhasesAndTargets(t *testing.T) {
	for _, tc := range []struct {
		target, phase string
		want          bool
	}{
		{targetXroute, phaseNonStream, true},
		{targetXroute, phaseResponsesStream, true},
		{targetXrouteTranslated, phaseStream, false},
		{targetXrouteTranslated, phaseNonStream, false},
		{targetXrouteTranslated, phaseResponsesStream, true},
	} {
		if got := runsIn(tc.target, tc.phase); got != tc.want {
			t.Errorf("runsIn(%s, %s) = %v, want %v", tc.target, tc.phase, got, tc.want)
		}
	}
	b := &bench{cfg: config{targets: []string{targetDirect, targetXrouteTranslated}, phases: []string{phaseNonStream, phaseStream}}}
	if b.wants(targetXrouteTranslated) {
		t.Error("xroute-translated is started without the responses-stream phase")
	}
	if got := b.smokePhases(targetXroute); len(got) != 2 {
		t.Errorf("smokePhases(xroute) without responses-stream = %v, want the chat ones", got)
	}
	b.cfg.phases = knownPhases()
	if !b.wants(targetXrouteTranslated) {
		t.Error("xroute-translated is not started with the responses-stream phase")
	}
	if got := b.smokePhases(targetXrouteTranslated); len(got) != 1 || got[0] != phaseResponsesStream {
		t.Errorf("smokePhases(xroute-translated) = %v", got)
	}
	if k := skipKey(targetXroute, phaseResponsesStream); k != "xroute (responses-stream)" {
		t.Errorf("skipKey = %q", k)
	}
	if k := skipKey(targetXrouteTranslated, phaseResponsesStream); k != targetXrouteTranslated {
		t.Errorf("skipKey(xroute-translated) = %q", k)
	}
	bad := config{targets: []string{targetDirect}, phases: []string{"responses"}, duration: 1, rate: 1, streams: 1}
	if err := bad.validate(); err == nil {
		t.Error("validate accepted an unknown phase")
	}
	bad.phases = []string{phaseResponsesStream}
	if err := bad.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestObjectKeys(t *testing.T) {
	keys, err := objectKeys([]byte(`{"id":"r","object":"response","output":[{"a":1}],"usage":{"x":null}}`))
	if err != nil || strings.Join(keys, ",") != "id,object,output,usage" {
		t.Fatalf("objectKeys = %v, %v", keys, err)
	}
	if _, err := objectKeys([]byte(`[1]`)); err == nil {
		t.Fatal("objectKeys accepted an array")
	}
}
