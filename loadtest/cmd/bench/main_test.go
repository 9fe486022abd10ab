package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xrouteconfig "github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest"
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
		{targetXrouteTranslated, phaseMessagesStream, true},
		{targetProxy, phaseMessagesStream, true},
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
	b.cfg.phases = []string{phaseMessagesStream}
	if !b.wants(targetXrouteTranslated) {
		t.Error("xroute-translated is not started with the messages-stream phase")
	}
	b.cfg.phases = knownPhases()
	if !b.wants(targetXrouteTranslated) {
		t.Error("xroute-translated is not started with the responses-stream phase")
	}
	if got, want := strings.Join(b.smokePhases(targetXrouteTranslated), ","),
		"responses,responses-paid,responses-stream,responses-stream-paid,messages,messages-paid,messages-stream,messages-stream-paid"; got != want {
		t.Errorf("smokePhases(xroute-translated) = %v, want %v", got, want)
	}
	if got := b.smokePhases(targetXroute); len(got) != len(knownPhases()) {
		t.Errorf("smokePhases(xroute) = %v, want every phase", got)
	}
	if k := skipKey(targetXroute, phaseResponsesStream); k != "xroute (responses-stream)" {
		t.Errorf("skipKey = %q", k)
	}
	if k := skipKey(targetXrouteTranslated, phaseMessagesStream); k != "xroute-translated (messages-stream)" {
		t.Errorf("skipKey(xroute-translated) = %q", k)
	}
	if !streaming(phaseMessagesStream) || streaming(phaseNonStream) {
		t.Error("streaming: messages-stream is a stream phase, nonstream is not")
	}
	bad := config{targets: []string{targetDirect}, phases: []string{"responses-plain"}, duration: 1, rate: 1, streams: 1, manyStreams: 1, manyTPS: 1, manyTokens: 1, rounds: 1}
	if err := bad.validate(); err == nil {
		t.Error("validate accepted an unknown phase")
	}
	bad.phases = []string{phaseResponsesStream}
	if err := bad.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	bad.phases, bad.model, bad.messagesModel = []string{phaseMessagesStream}, "m", "m"
	if err := bad.validate(); err == nil {
		t.Error("validate accepted -messages-model equal to -model")
	}
	bad.messagesModel = "claude"
	if err := bad.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

// TestServerIn checks which server a target measures in each phase.
func TestServerIn(t *testing.T) {
	msgs := &server{target: loadtest.Target{Name: targetDirect, BaseURL: "http://anthropic/v1"}}
	s := &server{target: loadtest.Target{Name: targetDirect, BaseURL: "http://openai/v1"}, messages: msgs}
	for _, p := range []string{phaseNonStream, phaseStream, phaseResponsesStream} {
		if s.in(p) != s {
			t.Errorf("in(%s) is not the server itself", p)
		}
	}
	if s.in(phaseMessagesStream) != msgs {
		t.Error("in(messages-stream) is not the Anthropic one")
	}
	if alone := (&server{}); alone.in(phaseMessagesStream) != alone {
		t.Error("in(messages-stream) without an Anthropic server is not the server itself (xroute-translated)")
	}
}

// TestXrouteConfig loads the configs the bench writes with xroute's own
// config loader: the messages model goes to the Anthropic mock natively,
// or to the OpenAI mock for translation.
func TestXrouteConfig(t *testing.T) {
	for _, tc := range []struct {
		name          string
		x             xrouteSetup
		wantProviders string
		wantModels    string
	}{
		{"chat only", xrouteSetup{logLevel: "warn", mockBase: "http://127.0.0.1:1/v1", nativeResponses: true},
			"mock:openai:[responses]", "gpt-4o-mini→mock:free gpt-4o-mini-priced→mock:0.15/0.60"},
		{"native messages", xrouteSetup{logLevel: "info", mockBase: "http://127.0.0.1:1/v1", nativeResponses: true,
			messagesModel: "claude-x", anthropicBase: "http://127.0.0.1:2"},
			"mock:openai:[responses] anthropic-mock:anthropic:[]",
			"gpt-4o-mini→mock:free claude-x→anthropic-mock:free gpt-4o-mini-priced→mock:0.15/0.60 claude-x-priced→anthropic-mock:0.15/0.60"},
		{"translated messages", xrouteSetup{logLevel: "warn", mockBase: "http://127.0.0.1:1/v1", messagesModel: "claude-x"},
			"mock:openai:[]", "gpt-4o-mini→mock:free claude-x→mock:free gpt-4o-mini-priced→mock:0.15/0.60 claude-x-priced→mock:0.15/0.60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "xroute.yaml")
			if err := os.WriteFile(path, []byte(tc.x.config("127.0.0.1:3", dir, "gpt-4o-mini", mockKey)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := xrouteconfig.Load(path, nil)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var ps, ms []string
			for _, p := range cfg.Providers {
				ps = append(ps, fmt.Sprintf("%s:%s:%v", p.Name, p.Type, p.NativeFormats))
				if p.APIKey != mockKey {
					t.Errorf("provider %s: api_key %q", p.Name, p.APIKey)
				}
			}
			// Every file xroute writes is in the bench's directory, never
			// relative to the working directory.
			for name, p := range map[string]string{"database.path": cfg.Database.Path, "auth.pepper_file": cfg.Auth.PepperFile,
				"vault.master_key_file": cfg.Vault.MasterKeyFile, "anomaly.webhook_secret_file": cfg.Anomaly.WebhookSecretFile,
				"usage.spool_dir": cfg.Usage.SpoolDir} {
				if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
					t.Errorf("%s = %q, not under %s", name, p, dir)
				}
			}
			for _, m := range cfg.Models {
				for _, d := range m.Deployments {
					price := "free"
					if !d.Free {
						price = d.InputPrice + "/" + d.OutputPrice
					}
					ms = append(ms, m.Name+"→"+d.Provider+":"+price)
					if d.Model != m.Name {
						t.Errorf("model %s: deployment model %q", m.Name, d.Model)
					}
				}
			}
			if got := strings.Join(ps, " "); got != tc.wantProviders {
				t.Errorf("providers = %s, want %s", got, tc.wantProviders)
			}
			if got := strings.Join(ms, " "); got != tc.wantModels {
				t.Errorf("models = %s, want %s", got, tc.wantModels)
			}
		})
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

// TestWithKeptKeepsHandWrittenSections: a new report replaces the tool's
// own sections and keeps what follows the marker (the tracing phase).
func TestWithKeptKeepsHandWrittenSections(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, old, want string
	}{
		{"no file", "", "# new\n"},
		{"no marker", "# old\n", "# new\n"},
		{"marker", "# old\n" + keptMarker + "\n## Tracing\n", "# new\n\n" + keptMarker + "\n## Tracing\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".md")
			if tc.old != "" {
				if err := os.WriteFile(path, []byte(tc.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := string(withKept(path, []byte("# new\n"))); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
