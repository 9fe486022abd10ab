package httpapi

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

func TestParseStatusFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"429", 429, 429, true},
		{"499", 499, 499, true},
		{"5xx", 500, 599, true},
		{"2XX", 200, 299, true},
		{"error", 400, 599, true},
		{"ok", 1, 399, true},
		{"6xx", 0, 0, false},
		{"600", 0, 0, false},
		{"99", 0, 0, false},
		{"fail", 0, 0, false},
	}
	for _, tc := range tests {
		lo, hi, ok := parseStatusFilter(tc.in)
		if ok != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("parseStatusFilter(%q) = %d, %d, %v; want %d, %d, %v", tc.in, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
}

type settingsList []books.CaptureSetting

func (l settingsList) CaptureSettings(context.Context) ([]books.CaptureSetting, error) { return l, nil }

// TestCaptureSettingsLookup: the copy answers for the accounts with
// capture on, and invalidate makes the next lookup read the source.
func TestCaptureSettingsLookup(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	src := settingsList{{AccountID: "acct_on", Enabled: true, Retention: time.Hour, MaxBytes: 10}}
	cs := &captureSettings{src: src, log: zap.NewNop()}
	if _, ok := cs.lookup("acct_off", now); ok {
		t.Error("acct_off captures")
	}
	if s, ok := cs.lookup("acct_on", now); !ok || s.MaxBytes != 10 {
		t.Errorf("acct_on: %+v, %v", s, ok)
	}
	cs.src = settingsList{}
	if _, ok := cs.lookup("acct_on", now.Add(captureTTL/2)); !ok {
		t.Error("the copy was read again before its TTL")
	}
	cs.invalidate()
	if _, ok := cs.lookup("acct_on", now.Add(captureTTL/2)); ok {
		t.Error("acct_on still captures after invalidate")
	}
}

// BenchmarkCaptureLookupOff is what a request of an account without
// capture pays for the feature.
func BenchmarkCaptureLookupOff(b *testing.B) {
	now := time.Now()
	cs := &captureSettings{src: settingsList{{AccountID: "acct_on", Enabled: true, Retention: time.Hour, MaxBytes: 10}}, log: zap.NewNop()}
	cs.lookup("x", now)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := cs.lookup("acct_default", now); ok {
			b.Fatal("captures")
		}
	}
}
