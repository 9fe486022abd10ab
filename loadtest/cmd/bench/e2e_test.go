package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/loadtest"
)

// TestMain lets the test binary stand in for the bench binary where the
// bench re-executes itself (os.Executable) as the bare reverse proxy.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-proxy-only" {
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString("bench: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuickRunLeavesTheWorkingDirectoryAlone runs the bench end to end in
// its quick mode, from an empty working directory, against the mock, the
// bare proxy and xroute, on a money-off and a money-on phase of each
// kind: every run completes with well-formed streams, the report has the
// ratios table, and the working directory is still empty afterwards
// (configs, databases, keys, spools and logs all go to the temp dir).
func TestQuickRunLeavesTheWorkingDirectoryAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds xroute and runs the servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "xroute")
	if _, err := runOutput(ctx, root, "go", "build", "-o", bin, "./cmd/xroute"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report.json")
	cwd := t.TempDir()
	t.Chdir(cwd)

	phases := []string{phaseNonStream, phaseStream + paidSuffix, phaseResponses + paidSuffix, phaseMessagesStream}
	var stdout, stderr bytes.Buffer
	err = run([]string{"-quick", "-quiet", "-xroute-bin", bin, "-targets", "direct,proxy,xroute",
		"-phases", strings.Join(phases, ","), "-json", out, "-charts", "-"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}

	entries, err := os.ReadDir(cwd)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("the bench left %s in the working directory", e.Name())
	}

	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs     []loadtest.Run    `json:"runs"`
		Skipped  map[string]string `json:"skipped"`
		Verdicts []verdict         `json:"verdicts"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) > 0 {
		t.Errorf("skipped: %v", rep.Skipped)
	}
	ran := map[string]bool{}
	for _, r := range rep.Runs {
		res := r.Result
		ran[res.Phase+"/"+res.Target] = true
		if res.Completed == 0 {
			t.Errorf("%s/%s: nothing completed (errors %v)", res.Phase, res.Target, res.Errors)
		}
		if res.Streams != nil && res.Streams.Invalid > 0 {
			t.Errorf("%s/%s: %d bad streams of %d", res.Phase, res.Target, res.Streams.Invalid, res.Streams.Total)
		}
	}
	for _, p := range phases {
		for _, target := range []string{targetDirect, targetProxy, targetXroute} {
			if !ran[p+"/"+target] {
				t.Errorf("no run of %s against %s", p, target)
			}
		}
	}
	if len(rep.Verdicts) != len(phases) {
		t.Errorf("verdicts for %d phases, want %d", len(rep.Verdicts), len(phases))
	}
	if !strings.Contains(stdout.String(), "## Ratios against the targets") {
		t.Error("the report does not open with the ratios table")
	}
}
