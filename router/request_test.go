package router

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

const msgs = `"messages":[{"role":"user","content":"the word \"provider\" and \"models\" in a message"}]`

func TestExtensionsAreStrippedBeforeTheUpstream(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a")
	r, m := fleet{names: []string{"a"}, fakes: f, clock: clock}.build(t)
	body := `{"model":"m",` + msgs + `,"provider":{"order":["a"],"data_collection":"deny"},"models":["m"],"route":"fallback","transforms":[],"plugins":[{"id":"web"}],"temperature":0.5}`
	req := chatReq(body)
	if _, _, err := r.Chat(context.Background(), m, req); err != nil {
		t.Fatal(err)
	}
	got := f["a"].body()
	for _, field := range extensionFields {
		if gjson.GetBytes(got, field).Exists() {
			t.Fatalf("%s reached the upstream: %s", field, got)
		}
	}
	if gjson.GetBytes(got, "temperature").Float() != 0.5 || !strings.Contains(string(got), `\"provider\"`) {
		t.Fatalf("everything else must pass untouched: %s", got)
	}
	if string(req.Body) != body {
		t.Fatal("the caller's body was modified in place")
	}
	// Without extensions the body is passed as is (no copy).
	plain := chatReq("")
	r.Chat(context.Background(), m, plain)
	if got := f["a"].body(); &got[0] != &plain.Body[0] {
		t.Fatal("a body without extensions must not be copied")
	}
}

func TestHasExtensions(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"model":"m",` + msgs + `}`, false},
		{`{"model":"m","provider":{}}`, true},
		{`{"models":[]}`, true},
		{`{"tools":[{"function":{"parameters":{"properties":{"route":{}}}}}]}`, true}, // over-approximation: gjson decides
		{`{"model":"providers"}`, false},
		{`"`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := hasExtensions([]byte(tt.body)); got != tt.want {
			t.Errorf("hasExtensions(%s) = %v", tt.body, got)
		}
	}
	// A nested key named like an extension is not one: nothing stripped.
	body := []byte(`{"model":"m","tools":[{"function":{"parameters":{"properties":{"route":{}}}}}]}`)
	p, stripped, err := parsePreferences(body)
	if err != nil || p != nil || !bytes.Equal(stripped, body) {
		t.Fatalf("nested key: %v %s %v", p, stripped, err)
	}
}

func TestBadExtensionsAreCallerErrors(t *testing.T) {
	tests := []struct{ ext, param string }{
		{`"provider":"openai"`, "provider"},
		{`"provider":{"order":"a"}`, "provider.order"},
		{`"provider":{"only":[1]}`, "provider.only"},
		{`"provider":{"ignore":[""]}`, "provider.ignore"},
		{`"provider":{"sort":3}`, "provider.sort"},
		{`"provider":{"allow_fallbacks":"no"}`, "provider.allow_fallbacks"},
		{`"models":"m"`, "models"},
		{`"models":["a","b","c","d","e","f","g","h","i"]`, "models"},
	}
	clock := newClock()
	f := fakes(clock, "a")
	r, m := fleet{names: []string{"a"}, fakes: f, clock: clock}.build(t)
	for _, tt := range tests {
		t.Run(tt.ext, func(t *testing.T) {
			_, res, err := r.Chat(context.Background(), m, chatReq(`{"model":"m",`+msgs+`,`+tt.ext+`}`))
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != 400 || pe.Param != tt.param || res.Attempts != 0 {
				t.Fatalf("want a 400 on %s without an attempt, got %v (%d attempts)", tt.param, err, res.Attempts)
			}
		})
	}
	if f["a"].calls.Load() != 0 {
		t.Fatal("a bad request reached the upstream")
	}
}

func TestProviderPreferences(t *testing.T) {
	clock := newClock()
	names := []string{"a", "b", "c"}
	rt := config.Routing{Deployments: map[string]config.DeploymentRouting{"b/b-m": {Tags: []string{"eu"}}, "c/c-m": {Tags: []string{"eu", "zdr"}}}}
	down := &providers.Error{Status: 503}
	tests := []struct {
		name     string
		provider string
		failing  []string
		want     string // provider that answers, "" for an error
		attempts int
	}{
		{"order first", `{"order":["c","b"]}`, nil, "c", 1},
		{"order then the rest in strategy order", `{"order":["c"]}`, []string{"c"}, "a", 2},
		{"no fallbacks beyond order", `{"order":["c"],"allow_fallbacks":false}`, []string{"c"}, "", 1},
		{"only by tag", `{"only":["eu"]}`, nil, "b", 1},
		{"only by deployment name, any case", `{"only":["C/C-M"]}`, nil, "c", 1},
		{"ignore", `{"ignore":["a","zdr"]}`, nil, "b", 1},
		{"ignore everything", `{"ignore":["a","eu"]}`, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakes(clock, names...)
			for _, n := range tt.failing {
				f[n].fail = fail(down)
			}
			r, m := fleet{names: names, fakes: f, routing: rt, clock: clock}.build(t)
			_, res, err := r.Chat(context.Background(), m, chatReq(`{"model":"m",`+msgs+`,"provider":`+tt.provider+`}`))
			if tt.want == "" {
				if err == nil || res.Attempts != tt.attempts {
					t.Fatalf("want an error after %d attempts, got %v after %d", tt.attempts, err, res.Attempts)
				}
				return
			}
			if err != nil || res.Deployment.Provider != tt.want || res.Attempts != tt.attempts {
				t.Fatalf("went to %v in %d attempts (%v)", res.Deployment, res.Attempts, err)
			}
		})
	}
}

func TestFallbackModels(t *testing.T) {
	clock := newClock()
	f := fakes(clock, "a", "b", "c")
	f["a"].fail = fail(&providers.Error{Status: 503})
	extra := []config.Model{
		{Name: "m2", Deployments: []config.Deployment{{Provider: "a", Model: "a-m"}, {Provider: "b", Model: "b-m"}}},
		{Name: "m3", Deployments: []config.Deployment{{Provider: "c", Model: "c-m"}}},
	}
	r, m := fleet{names: []string{"a"}, fakes: f, clock: clock, extra: extra}.build(t)
	body := `{"model":"m",` + msgs + `,"models":["nope","m3","m2"]}`
	allowAll := WithCaller(context.Background(), Caller{AllowModel: func(string) bool { return true }})
	only2 := WithCaller(context.Background(), Caller{AllowModel: func(m string) bool { return m != "m3" }})
	tests := []struct {
		name     string
		ctx      context.Context
		want     string
		model    string
		attempts int
	}{
		{"no caller check: fallbacks refused", context.Background(), "", "", 1},
		{"fallbacks in order", allowAll, "c", "m3", 2},
		{"a model the key may not use is skipped; a/a-m is not tried twice", only2, "b", "m2", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res, err := r.Chat(tt.ctx, m, chatReq(body))
			if tt.want == "" {
				if err == nil || res.Attempts != tt.attempts {
					t.Fatalf("want an error after %d attempts: %v, %d", tt.attempts, err, res.Attempts)
				}
				return
			}
			if err != nil || res.Deployment.Provider != tt.want || res.Model.Name != tt.model || res.Attempts != tt.attempts {
				t.Fatalf("went to %v (%v) in %d attempts: %v", res.Deployment, res.Model, res.Attempts, err)
			}
		})
	}
}

func TestCapabilityFilterWithPrices(t *testing.T) {
	clock := newClock()
	names := []string{"cheap", "dear"}
	prices := map[string][2]catalog.Price{"cheap": {1, 1}, "dear": {9, 9}}
	caps := map[string]catalog.Capabilities{"cheap": {}, "dear": {Tools: true}}
	r, m := fleet{names: names, fakes: fakes(clock, names...), prices: prices, caps: caps, clock: clock,
		routing: config.Routing{DefaultStrategy: "cost"}}.build(t)
	_, res, err := r.Chat(context.Background(), m, chatReq(`{"model":"m",`+msgs+`,"tools":[{"type":"function","function":{"name":"f"}}]}`))
	if err != nil || res.Deployment.Provider != "dear" || res.Attempts != 1 {
		t.Fatalf("cost must pick the cheapest deployment that has tools: %v %v", res.Deployment, err)
	}
}
