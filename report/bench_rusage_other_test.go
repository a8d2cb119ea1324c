//go:build !linux && !darwin

package report

import (
	"os"
	"time"
)

// childUsage: this platform's process state has no getrusage(2) figures,
// so the benchmark reports no peak RSS and no CPU time here.
func childUsage(*os.ProcessState) (maxRSSKiB int64, cpu time.Duration, ok bool) {
	return 0, 0, false
}
