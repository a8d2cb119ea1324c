package soak

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Sample is a process measurement.
type Sample struct {
	Goroutines int
	HeapInuse  uint64
	RSS        uint64 // bytes; 0 if /proc is not readable
}

func (s Sample) String() string {
	return fmt.Sprintf("goroutines %d, heap in use %.1f MiB, RSS %.1f MiB", s.Goroutines, mib(s.HeapInuse), mib(s.RSS))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// Measure collects garbage, returns freed memory to the OS, and samples.
func Measure() Sample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Sample{Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse, RSS: ReadRSS()}
}

// ReadRSS returns the process's resident set size from /proc/self/status.
func ReadRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
