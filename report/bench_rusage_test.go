//go:build linux || darwin

package report

import (
	"os"
	"runtime"
	"syscall"
	"time"
)

// childUsage is a finished child's peak RSS in KiB and its CPU time (user
// plus system), from getrusage(2); ok is false when the platform gives
// none.
func childUsage(ps *os.ProcessState) (maxRSSKiB int64, cpu time.Duration, ok bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, false
	}
	maxRSSKiB = ru.Maxrss // KiB on Linux
	if runtime.GOOS == "darwin" {
		maxRSSKiB /= 1024 // bytes on macOS
	}
	return maxRSSKiB, time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
