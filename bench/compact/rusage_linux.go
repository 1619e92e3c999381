package main

import (
	"os"
	"syscall"
)

// maxRSS returns the process's peak resident set in bytes.
func maxRSS(ps *os.ProcessState) float64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) * 1024
	}
	return 0
}
