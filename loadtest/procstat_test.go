package loadtest

import (
	"os"
	"testing"
	"time"
)

func TestProcReaderCurrentProcess(t *testing.T) {
	pr := NewProcReader("", nil)
	before, err := pr.Read(os.Getpid())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	// Burn some CPU so that utime moves by at least one tick (10 ms).
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := pr.Read(os.Getpid())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if after.CPU < before.CPU {
		t.Fatalf("CPU went backwards: %v -> %v", before.CPU, after.CPU)
	}
	if after.RSS <= 0 || after.PeakRSS < after.RSS {
		t.Fatalf("RSS %d, peak %d: want 0 < RSS <= peak", after.RSS, after.PeakRSS)
	}
	u := Usage("self", "loadgen", os.Getpid(), before, after, 10)
	if u.CPUSeconds < 0 || u.PeakRSSBytes < after.RSS {
		t.Fatalf("usage %+v", u)
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "command with spaces and parens",
			stat: "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000000 500 18446744073709551615",
			want: 3250 * time.Millisecond,
		},
		{name: "truncated", stat: "1 (x) S 1 2 3", wantErr: true},
		{name: "no command", stat: "garbage", wantErr: true},
		{name: "bad number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 1 0 0", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.stat))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("CPU = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\tbench\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"
	rss, hwm, err := parseStatusMem([]byte(status))
	if err != nil || rss != 1024*1024 || hwm != 2048*1024 {
		t.Fatalf("rss %d hwm %d err %v", rss, hwm, err)
	}
	if _, _, err := parseStatusMem([]byte("Name:\tkthreadd\n")); err == nil {
		t.Fatal("want an error without VmRSS/VmHWM")
	}
}

func TestResetPeakRSSCurrentProcess(t *testing.T) {
	pr := NewProcReader("", nil)
	if err := pr.ResetPeakRSS(os.Getpid()); err != nil {
		t.Skipf("clear_refs not available here: %v", err)
	}
	s, err := pr.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PeakRSS < s.RSS {
		t.Fatalf("peak %d below current %d after reset", s.PeakRSS, s.RSS)
	}
}
