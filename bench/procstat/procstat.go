// Package procstat reads the CPU time and memory of processes and of the
// whole machine from Linux's /proc, for benchmarks that must tell the cost
// of the process under test from that of the load generator and of
// anything else running on the machine.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc. Linux fixes it at 100 for
// user space on every architecture Go supports, whatever the kernel's
// internal tick rate.
const userHZ = 100

func ticks(t uint64) time.Duration { return time.Duration(t) * time.Second / userHZ }

// ProcessCPU is the user plus system CPU time process pid has used so far,
// with a resolution of 10ms.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces, so
	// count fields from the last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("malformed /proc stat line")
	}
	fields := bytes.Fields(b[end+1:])
	// After the name: state is field 3, utime 14 and stime 15.
	const utimeAt, stimeAt = 14 - 3, 15 - 3
	if len(fields) <= stimeAt {
		return 0, errors.New("short /proc stat line")
	}
	utime, err := strconv.ParseUint(string(fields[utimeAt]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(string(fields[stimeAt]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return ticks(utime + stime), nil
}

// ProcessMemory is process pid's resident set now (VmRSS) and at its peak
// (VmHWM), in bytes.
func ProcessMemory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range bytes.Lines(b) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &peak
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 2 {
			return 0, 0, fmt.Errorf("malformed status line %q", line)
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return 0, 0, err
		}
		*dst = kb << 10
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rss, peak, nil
}

// SelfCPU is the CPU time the calling process has used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MachineCPU is the CPU time all processes on the machine have used since
// boot (busy) and the time CPUs sat idle or waited for I/O (idle), summed
// over CPUs.
func MachineCPU() (busy, idle time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already counted in user and nice.
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(string(f[i+1]), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	const user, nice, system, idleAt, iowait, irq, softirq, steal = 0, 1, 2, 3, 4, 5, 6, 7
	return ticks(v[user] + v[nice] + v[system] + v[irq] + v[softirq] + v[steal]), ticks(v[idleAt] + v[iowait]), nil
}

// MachineBusy is the fraction of the machine's CPU time spent busy over
// the next interval.
func MachineBusy(interval time.Duration) (float64, error) {
	b0, i0, err := MachineCPU()
	if err != nil {
		return 0, err
	}
	time.Sleep(interval)
	b1, i1, err := MachineCPU()
	if err != nil {
		return 0, err
	}
	total := (b1 - b0) + (i1 - i0)
	if total <= 0 {
		return 0, nil
	}
	return float64(b1-b0) / float64(total), nil
}
