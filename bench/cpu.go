//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of the CPU times in /proc (100 on Linux).
const clkTck = 100

// systemCPU returns the busy and total jiffies of the whole machine (all
// CPUs) from the first line of /proc/stat.
func systemCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fs := strings.Fields(string(line))
	if len(fs) < 8 || fs[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, f := range fs[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		switch i {
		case 3, 4: // idle, iowait
			total += v
		case 8, 9: // guest, guest_nice: already counted in user
		default:
			busy += v
			total += v
		}
	}
	return busy, total, nil
}

// procCPU returns utime+stime of pid in jiffies, plus cutime+cstime (its
// reaped children) when children is set.
func procCPU(pid int, children bool) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// After "pid (comm)" come state (field 3), ppid, ..., utime (14),
	// stime (15), cutime (16), cstime (17): fs[k] is field k+3.
	fs := strings.Fields(string(b[i+1:]))
	if len(fs) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fs))
	}
	end := 13
	if children {
		end = 15
	}
	var sum uint64
	for _, f := range fs[11:end] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// instanceCPU is the CPU time of a proxy: its process, its reaped children
// and its live descendants (socat's per-connection processes).
func instanceCPU(in *instance) uint64 {
	if in == nil || in.proc == nil {
		return 0
	}
	pid := in.proc.pid()
	v, _ := procCPU(pid, true)
	if in.path == pathSocat {
		for _, d := range descendants(pid) {
			c, _ := procCPU(d, false)
			v += c
		}
	}
	return v
}

// reapChildren waits (briefly) until a forking proxy's per-connection
// processes have exited and been reaped, so that their CPU time has moved
// into the parent's cutime/cstime before the closing snapshot.
func reapChildren(in *instance) {
	if in == nil || in.proc == nil || in.path != pathSocat {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(descendants(in.proc.pid())) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// cpuSnap is a point in time for CPU accounting.
type cpuSnap struct {
	sysBusy, sysTotal uint64
	self, proxy       uint64
}

func snapCPU(in *instance) cpuSnap {
	var s cpuSnap
	s.sysBusy, s.sysTotal, _ = systemCPU()
	s.self, _ = procCPU(os.Getpid(), false)
	s.proxy = instanceCPU(in)
	return s
}

// cpuUse is what happened between two snapshots.
type cpuUse struct {
	proxySeconds float64 // CPU time of the proxy
	// selfSeconds is the harness's own CPU time: the clients and the
	// emulator (the upstream runs inside the harness), i.e. the two ends
	// of every path.
	selfSeconds float64
	// other is the share of the whole machine (all CPUs) busy with
	// processes that are neither the harness nor the proxy: other
	// people's work, which skews a measurement on a shared machine.
	other float64
}

func (a cpuSnap) until(b cpuSnap) cpuUse {
	var u cpuUse
	u.proxySeconds = float64(b.proxy-a.proxy) / clkTck
	u.selfSeconds = float64(b.self-a.self) / clkTck
	total := float64(b.sysTotal - a.sysTotal)
	if total > 0 {
		ours := float64((b.self - a.self) + (b.proxy - a.proxy))
		u.other = max(0, (float64(b.sysBusy-a.sysBusy)-ours)/total)
	}
	return u
}

// quietGate waits, before a measurement, until other processes leave the
// machine nearly idle (< quietShare busy over a short sample), for at most
// maxWait, drawing on a budget shared by the whole run so that a machine
// that never calms down cannot stretch the run without bound. It returns
// the last share of the machine seen busy with other work.
type quietGate struct {
	budget  time.Duration // waiting left for the run
	waited  time.Duration
	maxWait time.Duration
}

const quietShare = 0.10

func (g *quietGate) wait(ctx context.Context) float64 {
	start := time.Now()
	if g.maxWait <= 0 {
		a := snapCPU(nil)
		sleep(ctx, 50*time.Millisecond)
		return a.until(snapCPU(nil)).other
	}
	for {
		a := snapCPU(nil)
		sleep(ctx, 200*time.Millisecond)
		other := a.until(snapCPU(nil)).other
		el := time.Since(start)
		if other < quietShare || ctx.Err() != nil || el >= g.maxWait || el >= g.budget {
			g.budget -= el
			g.waited += el
			if el > time.Second {
				progress("waited %s for other processes to leave the CPUs (now %.0f%% busy with other work)", el.Round(time.Second), 100*other)
			}
			return other
		}
	}
}
