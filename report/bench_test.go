package report

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchLines is how many generated lines BenchmarkReportCommand reads:
// TDSPROXY_REPORT_LINES, or 1,000,000 (issue 15: "1M lines in well under a
// minute").
func benchLines(b *testing.B) int {
	if s := os.Getenv("TDSPROXY_REPORT_LINES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("TDSPROXY_REPORT_LINES=%q is not a count", s)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkReportCommand runs `tdsproxy report --json` (built from this
// tree) over a generated log and reports its wall time and peak RSS (the
// child's ru_maxrss), the figures BENCHMARKS.md quotes. `make bench-report`
// runs it once.
func BenchmarkReportCommand(b *testing.B) {
	n := benchLines(b)
	dir := b.TempDir()
	logName := filepath.Join(dir, "tdsproxy.log")
	f, err := os.Create(logName)
	if err != nil {
		b.Fatal(err)
	}
	writeLog(b, f, n, base)
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(logName)
	bin := filepath.Join(dir, "tdsproxy")
	build := exec.Command("go", "build", "-o", bin, "github.com/tdsproxy/tdsproxy/cmd/tdsproxy")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("go build: %v", err)
	}
	b.ResetTimer()
	var wall time.Duration
	var rss int64
	var cpu time.Duration
	var summary string
	for range b.N {
		cmd := exec.Command(bin, "report", "--json", logName)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("tdsproxy report: %v\n%s", err, stderr.String())
		}
		wall += time.Since(start)
		summary = stderr.String()
		if kib, used, ok := childUsage(cmd.ProcessState); ok {
			rss = max(rss, kib)
			cpu += used
		}
	}
	b.ReportMetric(float64(n), "lines")
	b.ReportMetric(float64(st.Size())/1e6, "MB-input")
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/report")
	b.ReportMetric(float64(n)*float64(b.N)/wall.Seconds(), "lines/s")
	b.ReportMetric(float64(rss)/1024, "MiB-maxrss")
	// CPU time is what a busy machine does not inflate: with two cores
	// shared by other work, wall time can be several times the idle figure.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/report")
	b.Logf("%s", strings.TrimSpace(summary))
}

// BenchmarkReadLog is the in-process cost per line.
func BenchmarkReadLog(b *testing.B) {
	const n = 20000
	dir := b.TempDir()
	name := filepath.Join(dir, "log")
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	writeLog(b, f, n, base)
	f.Close()
	b.ResetTimer()
	for range b.N {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		bl := New(Options{})
		if err := bl.ReadLog(bufio.NewReader(f), name); err != nil {
			b.Fatal(err)
		}
		f.Close()
		_ = bl.Result()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/line")
}
