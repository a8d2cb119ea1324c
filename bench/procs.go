//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the harness started. Every proc is in its own process
// group (so socat's forked children go with it) and is registered, so that
// killAll can end everything on any exit path.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// registry of live procs; killAll empties it.
var procs struct {
	mu   sync.Mutex
	live map[*proc]struct{}
}

// startProc starts bin with args; its stdout and stderr go to a log file in
// logDir. The child gets SIGKILL if the harness dies (Pdeathsig) and lives in
// its own process group.
func startProc(name, logDir string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(logDir, sanitize(name)+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	procs.mu.Lock()
	if procs.live == nil {
		procs.live = map[*proc]struct{}{}
	}
	procs.live[p] = struct{}{}
	procs.mu.Unlock()
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// pid is the process id of the started process.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after a bounded wait.
func (p *proc) stop() {
	procs.mu.Lock()
	delete(procs.live, p)
	procs.mu.Unlock()
	pgid := p.pid()
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
		}
	}
	// Whatever is left in the group (socat children, a process that
	// ignored SIGTERM) is killed.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
	}
}

// logTail returns the last lines of the process's log, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// killAll stops every registered process; it runs on every exit path.
func killAll() {
	procs.mu.Lock()
	ps := make([]*proc, 0, len(procs.live))
	for p := range procs.live {
		ps = append(ps, p)
	}
	procs.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// waitListening polls addr until a TCP connection succeeds, the process
// exits, or the timeout passes. The probe connection is closed at once.
func waitListening(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v\n%s", p.name, addr, p.waitErr, p.logTail())
		}
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			name := "process"
			tail := ""
			if p != nil {
				name, tail = p.name, p.logTail()
			}
			return fmt.Errorf("%s not listening on %s after %v: %w\n%s", name, addr, timeout, err, tail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// procStatusKiB reads a "Name:   123 kB" field of /proc/PID/status.
func procStatusKiB(pid int, field string) (int64, error) {
	return procFieldKiB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// procFieldKiB reads a "Field:  N kB" line from a /proc file.
func procFieldKiB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		fs := strings.Fields(line[len(field)+1:])
		if len(fs) == 0 {
			break
		}
		return strconv.ParseInt(fs[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s line", path, field)
}

// rssKiB is VmRSS of one process.
func rssKiB(pid int) (int64, error) { return procStatusKiB(pid, "VmRSS") }

// groupPssKiB sums Pss (proportional set size: shared pages divided among
// the processes sharing them) over pid and its descendants. It is the
// honest total for a forking proxy such as socat, where summing RSS would
// count the shared libc and binary pages once per child.
func groupPssKiB(pid int) (total int64, nprocs int, err error) {
	pids := append([]int{pid}, descendants(pid)...)
	for _, p := range pids {
		v, err := procFieldKiB(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // exited meanwhile
			}
			return 0, 0, err
		}
		total += v
		nprocs++
	}
	return total, nprocs, nil
}

// descendants lists every process whose ancestry leads to pid.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state ppid ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(string(b[i+1:]))
		if len(fs) < 2 {
			continue
		}
		pp, err := strconv.Atoi(fs[1])
		if err != nil {
			continue
		}
		parent[n] = pp
	}
	var out []int
	for n := range parent {
		for p, hops := parent[n], 0; p != 0 && hops < 64; p, hops = parent[p], hops+1 {
			if p == pid {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
