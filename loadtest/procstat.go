package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for the
// user ABI regardless of CONFIG_HZ).
const clockTicks = 100

// ProcSample is one reading of a process's resource use.
type ProcSample struct {
	At      time.Time
	CPU     time.Duration // utime + stime since the process started
	RSS     int64         // resident set size now, bytes (VmRSS)
	PeakRSS int64         // high-water mark of the RSS, bytes (VmHWM)
}

// ProcReader reads process statistics from a procfs tree.
type ProcReader struct {
	root string
	now  func() time.Time
}

// NewProcReader returns a reader of the procfs mounted at root ("/proc" when
// empty), using now as the clock (time.Now when nil).
func NewProcReader(root string, now func() time.Time) *ProcReader {
	if root == "" {
		root = "/proc"
	}
	if now == nil {
		now = time.Now
	}
	return &ProcReader{root: root, now: now}
}

// Read samples the CPU time and memory of process pid.
func (p *ProcReader) Read(pid int) (ProcSample, error) {
	at := p.now()
	stat, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", p.root, pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("procstat: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("procstat: pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("%s/%d/status", p.root, pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("procstat: %w", err)
	}
	rss, hwm, err := parseStatusMem(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("procstat: pid %d: %w", pid, err)
	}
	return ProcSample{At: at, CPU: cpu, RSS: rss, PeakRSS: hwm}, nil
}

// ResetPeakRSS sets the process's RSS high-water mark back to its current RSS
// (writes 5 to /proc/PID/clear_refs, Linux ≥ 4.0), so that the next reading's
// PeakRSS covers only what happened in between.
func (p *ProcReader) ResetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("%s/%d/clear_refs", p.root, pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("procstat: reset peak rss: %w", err)
	}
	return nil
}

// parseStatCPU returns utime+stime from the contents of /proc/PID/stat. The
// command name (field 2) is in parentheses and may contain spaces and
// parentheses itself, so fields are counted after the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name")
	}
	fields := bytes.Fields(stat[i+1:])
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, fmt.Errorf("stat: %d fields after the command name, want > %d", len(fields), stimeIdx)
	}
	utime, err := strconv.ParseUint(string(fields[utimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: utime: %w", err)
	}
	stime, err := strconv.ParseUint(string(fields[stimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: stime: %w", err)
	}
	return time.Duration(utime+stime) * (time.Second / clockTicks), nil
}

// parseStatusMem returns VmRSS and VmHWM in bytes from /proc/PID/status.
func parseStatusMem(status []byte) (rss, hwm int64, err error) {
	var haveRSS, haveHWM bool
	for line := range bytes.Lines(status) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst, haveRSS = &rss, true
		case "VmHWM":
			dst, haveHWM = &hwm, true
		default:
			continue
		}
		f := bytes.Fields(val) // "1234 kB"
		if len(f) == 0 {
			return 0, 0, fmt.Errorf("status: empty %s", key)
		}
		kb, perr := strconv.ParseInt(string(f[0]), 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("status: %s: %w", key, perr)
		}
		*dst = kb * 1024
	}
	if !haveRSS || !haveHWM {
		return 0, 0, fmt.Errorf("status: VmRSS or VmHWM missing (kernel thread or zombie?)")
	}
	return rss, hwm, nil
}

// ProcUsage is the resource use of one process over one measured run.
type ProcUsage struct {
	Name           string  `json:"name"`
	Role           string  `json:"role"` // "gateway", "upstream" or "loadgen"
	PID            int     `json:"pid"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUMicrosPerOp float64 `json:"cpu_us_per_request"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	RSSBytes       int64   `json:"rss_bytes"`
}

// Usage computes the use between two samples for ops completed operations.
func Usage(name, role string, pid int, before, after ProcSample, ops int64) ProcUsage {
	u := ProcUsage{
		Name:         name,
		Role:         role,
		PID:          pid,
		CPUSeconds:   (after.CPU - before.CPU).Seconds(),
		PeakRSSBytes: max(after.PeakRSS, before.PeakRSS),
		RSSBytes:     after.RSS,
	}
	if ops > 0 {
		u.CPUMicrosPerOp = u.CPUSeconds * 1e6 / float64(ops)
	}
	return u
}
