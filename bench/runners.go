//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

const mib = 1 << 20

// startAll puts every runnable path in front of upstream for one workload.
// A path that fails to start is noted in tables and left out.
func startAll(ctx context.Context, e *env, upstream, label string, tables ...*table) map[string]*instance {
	insts := map[string]*instance{}
	for _, p := range e.paths {
		in, err := e.l.start(ctx, p, upstream, label)
		if err != nil {
			e.fail("%s: starting %s: %v", label, p, err)
			for _, t := range tables {
				t.note(p, "failed to start")
			}
			continue
		}
		insts[p] = in
	}
	return insts
}

func stopAll(insts map[string]*instance) {
	for _, in := range insts {
		in.stop()
	}
}

// bulkVariant is one bulk table.
type bulkVariant struct {
	name    string
	title   string
	raw     bool
	streams int
}

var bulkVariants = []bulkVariant{
	{"tds x1", "Bulk throughput: go-mssqldb reads SELECT large (8000-byte rows), 1 stream", false, 1},
	{"tds x8", "Bulk throughput: go-mssqldb reads SELECT large (8000-byte rows), 8 concurrent streams", false, 8},
	{"raw x1", "Bulk throughput: raw TDS byte stream after a go-mssqldb login, 1 stream", true, 1},
	{"raw x8", "Bulk throughput: raw TDS byte stream after a go-mssqldb login, 8 concurrent streams", true, 8},
}

// runBulk: workload 1. Repetitions are the outer loop and paths the inner
// one, so that drift over the run (thermal, other load) spreads over every
// path instead of favouring whichever ran first.
func runBulk(ctx context.Context, e *env) {
	var tables []*table
	for _, v := range bulkVariants {
		t := e.res.table(wlBulk, v.name, v.title, [2]string{"throughput", "MiB/s"},
			[2]string{"proxy CPU", "s per GiB"}, [2]string{"other load", "% of machine"},
			[2]string{"client+server CPU", "s per GiB"}, [2]string{"machine busy", "CPUs"})
		t.Note = fmt.Sprintf("%.2f GiB per run (all streams together), login before the clock starts; packet size %d.", float64(e.sz.bulkBytes)/(1<<30), bulkPacketSize)
		tables = append(tables, t)
	}
	insts := startAll(ctx, e, e.emuAddr, "bulk", tables...)
	defer stopAll(insts)
	for rep := 1; rep <= e.o.reps; rep++ {
		for i, v := range bulkVariants {
			for _, p := range e.paths {
				in := insts[p]
				if in == nil || ctx.Err() != nil {
					continue
				}
				var n int64
				var dur time.Duration
				use, err := e.measure(ctx, in, fmt.Sprintf("bulk %s rep %d %s", v.name, rep, p), func() error {
					rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
					defer cancel()
					var err error
					if v.raw {
						n, dur, err = bulkRaw(rctx, in.addr, v.streams, e.sz.bulkBytes)
					} else {
						n, dur, err = bulkTDS(rctx, in.addr, v.streams, e.sz.bulkBytes)
					}
					return err
				})
				if err != nil {
					e.fail("bulk %s rep %d %s: %v", v.name, rep, p, err)
					continue
				}
				rate := float64(n) / mib / dur.Seconds()
				gib := float64(n) / (1 << 30)
				tables[i].Metrics[0].add(p, rate)
				if in.proc != nil {
					tables[i].Metrics[1].add(p, use.proxySeconds/gib)
				}
				tables[i].Metrics[2].add(p, 100*use.other)
				// The ends (go-mssqldb or the raw reader, and the emulator)
				// run in the harness: with the proxy's share, how much of
				// the machine the path kept busy (BENCHMARKS.md, "Why
				// the bulk ratio to direct is bounded here").
				tables[i].Metrics[3].add(p, use.selfSeconds/gib)
				tables[i].Metrics[4].add(p, (use.selfSeconds+use.proxySeconds)/dur.Seconds())
				progress("bulk %-6s rep %d/%d %-15s %8.1f MiB/s  (%.2f GiB in %.2fs; proxy CPU %.2fs; other load %.0f%%)",
					v.name, rep, e.o.reps, p, rate, gib, dur.Seconds(), use.proxySeconds, 100*use.other)
			}
		}
	}
}

// retryShare is the share of the machine other work may take during a
// measurement before the measurement is taken again.
const retryShare = 0.25

// measure runs one measurement fn after the quiet gate, accounting the CPU
// of the proxy and of everything else meanwhile. When other work took more
// than retryShare of the machine, it is taken again, at most twice, while
// the run's retry budget lasts; the last attempt counts.
func (e *env) measure(ctx context.Context, in *instance, what string, fn func() error) (cpuUse, error) {
	for attempt := 0; ; attempt++ {
		before := e.gate.wait(ctx)
		a := snapCPU(in)
		start := time.Now()
		err := fn()
		reapChildren(in)
		use := a.until(snapCPU(in))
		use.other = max(use.other, before)
		if err != nil || use.other <= retryShare || attempt == 2 || e.retryBudget <= 0 || ctx.Err() != nil {
			return use, err
		}
		e.retryBudget -= time.Since(start)
		e.retries++
		progress("%s: %.0f%% of the machine was busy with other work; measuring again", what, 100*use.other)
	}
}

// runLatency: workload 2.
func runLatency(ctx context.Context, e *env) {
	t := e.res.table(wlLatency, "select1",
		fmt.Sprintf("Request/response latency: %d SELECT 1 round trips on one established go-mssqldb connection", e.sz.latencyN),
		[2]string{"p50", "µs"}, [2]string{"p99", "µs"}, [2]string{"added p50 over direct", "µs"},
		[2]string{"other load", "% of machine"})
	t.Note = fmt.Sprintf("%d warm-up round trips first. Each repetition's p50/p99 over %d round trips; added p50 = path p50 − direct p50 of the same repetition.", e.sz.latencyWarm, e.sz.latencyN)
	insts := startAll(ctx, e, e.emuAddr, "latency", t)
	defer stopAll(insts)
	p50, p99, added, load := t.Metrics[0], t.Metrics[1], t.Metrics[2], t.Metrics[3]
	for rep := 1; rep <= e.o.reps; rep++ {
		direct := -1.0
		for _, p := range e.paths {
			in := insts[p]
			if in == nil || ctx.Err() != nil {
				continue
			}
			var r latencyResult
			use, err := e.measure(ctx, in, fmt.Sprintf("latency rep %d %s", rep, p), func() error {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				defer cancel()
				var err error
				r, err = latency(rctx, in.addr, e.sz.latencyN, e.sz.latencyWarm)
				return err
			})
			other := use.other
			if err != nil {
				e.fail("latency rep %d %s: %v", rep, p, err)
				continue
			}
			us50, us99 := float64(r.p50.Nanoseconds())/1e3, float64(r.p99.Nanoseconds())/1e3
			p50.add(p, us50)
			p99.add(p, us99)
			load.add(p, 100*other)
			if p == pathDirect {
				direct = us50
			}
			if direct >= 0 {
				added.add(p, us50-direct)
			}
			progress("latency rep %d/%d %-15s p50 %7.1f µs  p99 %7.1f µs  (other load %.0f%%)", rep, e.o.reps, p, us50, us99, 100*other)
		}
	}
}

// runLogins: workload 3.
func runLogins(ctx context.Context, e *env) {
	modes := []string{modeEncrypt, modeStrict}
	titles := map[string]string{
		modeEncrypt: "Connection setup: logins/s, 16 concurrent go-mssqldb clients, encrypt=true (TDS 7.x, TLS 1.2 inside PRELOGIN)",
		modeStrict:  "Connection setup: logins/s, 16 concurrent go-mssqldb clients, encrypt=strict (TDS 8.0, TLS 1.3 first)",
	}
	var tables []*table
	for _, m := range modes {
		t := e.res.table(wlLogins, m, titles[m], [2]string{"login rate", "logins/s"},
			[2]string{"proxy CPU", "µs per login"}, [2]string{"failed", "logins"}, [2]string{"other load", "% of machine"},
			[2]string{"client+server CPU", "µs per login"}, [2]string{"machine busy", "CPUs"})
		t.Note = fmt.Sprintf("Each login: TCP connect, PRELOGIN, TLS handshake (server certificate verified), LOGIN7, login response, close. %d workers for %s per repetition.", e.sz.loginWorkers, e.sz.loginDur)
		tables = append(tables, t)
	}
	insts := startAll(ctx, e, e.emuAddr, "logins", tables...)
	defer stopAll(insts)
	connectors := map[string]*mssql.Connector{}
	for rep := 1; rep <= e.o.reps; rep++ {
		for i, m := range modes {
			for _, p := range e.paths {
				in := insts[p]
				if in == nil || ctx.Err() != nil {
					continue
				}
				key := p + " " + m
				c := connectors[key]
				if c == nil {
					var err error
					c, err = mssql.NewConnector(verifiedDSN(in.addr, m, e.ca))
					if err != nil {
						e.fail("logins %s %s: %v", m, p, err)
						continue
					}
					connectors[key] = c
				}
				var r loginResult
				use, err := e.measure(ctx, in, fmt.Sprintf("logins %s rep %d %s", m, rep, p), func() error {
					r = logins(ctx, c, e.sz.loginWorkers, e.sz.loginDur)
					if r.ok == 0 {
						return fmt.Errorf("no login succeeded: %v", r.firstErr)
					}
					return nil
				})
				other := use.other
				if err != nil {
					e.fail("logins %s rep %d %s: %v", m, rep, p, err)
					continue
				}
				rate := float64(r.ok) / r.elapsed.Seconds()
				tables[i].Metrics[0].add(p, rate)
				if in.proc != nil {
					tables[i].Metrics[1].add(p, 1e6*use.proxySeconds/float64(r.ok))
				}
				tables[i].Metrics[2].add(p, float64(r.failed))
				tables[i].Metrics[3].add(p, 100*other)
				tables[i].Metrics[4].add(p, 1e6*use.selfSeconds/float64(r.ok))
				tables[i].Metrics[5].add(p, (use.selfSeconds+use.proxySeconds)/r.elapsed.Seconds())
				if r.failed > 0 {
					progress("logins %s rep %d %s: %d failed, first: %v", m, rep, p, r.failed, r.firstErr)
				}
				progress("logins %-12s rep %d/%d %-15s %7.1f logins/s (%d in %.2fs; other load %.0f%%)", m, rep, e.o.reps, p, rate, r.ok, r.elapsed.Seconds(), 100*other)
			}
		}
	}
}

// memoryVariant is one memory table.
type memoryVariant struct {
	name   string
	logins bool // real go-mssqldb sessions instead of raw connections
	n      int
}

func memoryVariants(sz sizes) []memoryVariant {
	var vs []memoryVariant
	for _, n := range sz.memIdle {
		vs = append(vs, memoryVariant{name: fmt.Sprintf("idle %d", n), n: n})
	}
	return append(vs, memoryVariant{name: fmt.Sprintf("logins %d", sz.memLogins), logins: true, n: sz.memLogins})
}

// socatMaxConns is the most connections the memory workload opens through
// socat: it forks a process per connection.
const socatMaxConns = 1000

// runMemory: workload 4. Every measurement starts a fresh proxy process, so
// RSS_0 is a proxy that has never carried a connection.
func runMemory(ctx context.Context, e *env) {
	vs := memoryVariants(e.sz)
	var tables []*table
	for _, v := range vs {
		title := fmt.Sprintf("Memory: RSS per idle established connection, %d raw TCP connections", v.n)
		note := "Raw connections to a TCP server that answers one byte and then holds them; the client's first byte is not TDS, so tdsproxy stops parsing and relays blind, as it does after a login."
		if v.logins {
			title = fmt.Sprintf("Memory: RSS per idle established connection, %d go-mssqldb sessions (login-only TLS, logged in, idle)", v.n)
			note = "Real logins through the path to the emulator, then idle."
		}
		t := e.res.table(wlMemory, v.name, title,
			[2]string{"per connection", "KiB"}, [2]string{"RSS before", "MiB"}, [2]string{"RSS with connections", "MiB"},
			[2]string{"file descriptors", "per connection"})
		t.NoDirect = true
		if !v.logins && v.n == e.sz.memIdle[len(e.sz.memIdle)-1] && e.memCapped != "" {
			note += " " + e.memCapped
		}
		t.Note = note + fmt.Sprintf(" Per connection = (RSS_n − RSS_0) / n, VmRSS from /proc/PID/status after %s settling; socat: Pss summed over its processes (smaps_rollup).", e.sz.settle)
		tables = append(tables, t)
	}
	// A path that cannot open a variant's connections (out of file
	// descriptors) fails the same way every time: it is not retried.
	gaveUp := map[string]bool{}
	for rep := 1; rep <= e.o.reps; rep++ {
		for i, v := range vs {
			for _, p := range e.paths {
				if p == pathDirect || ctx.Err() != nil || gaveUp[v.name+" "+p] {
					continue
				}
				t := tables[i]
				if p == pathSocat && v.n > socatMaxConns {
					t.note(p, "n/a (fork per connection)")
					continue
				}
				// The harness holds the client end of every connection (the
				// hold server is a child process), and for logins also the
				// emulator's end.
				need := uint64(v.n + 2000)
				if v.logins {
					need += uint64(v.n)
				}
				if currentNoFile() < need {
					e.fail("memory %s %s: RLIMIT_NOFILE %d < %d", v.name, p, currentNoFile(), need)
					continue
				}
				upstream := e.holdAddr
				if v.logins {
					upstream = e.emuAddr
				}
				e.gate.wait(ctx)
				m, err := memoryOnce(ctx, e, p, upstream, v)
				if err != nil {
					e.fail("memory %s rep %d %s: %v", v.name, rep, p, err)
					var mf *memFailure
					if errors.As(err, &mf) {
						t.note(p, fmt.Sprintf("failed after %d connections", mf.established))
						gaveUp[v.name+" "+p] = true
					}
					continue
				}
				t.Metrics[0].add(p, m.perKiB)
				t.Metrics[1].add(p, m.beforeKiB/1024)
				t.Metrics[2].add(p, m.afterKiB/1024)
				t.Metrics[3].add(p, m.fdsPerConn)
				progress("memory %-11s rep %d/%d %-15s %7.1f KiB/conn (RSS %.1f → %.1f MiB), %.1f fds/conn", v.name, rep, e.o.reps, p, m.perKiB, m.beforeKiB/1024, m.afterKiB/1024, m.fdsPerConn)
			}
		}
	}
}

// memResult is one memory measurement.
type memResult struct {
	perKiB, beforeKiB, afterKiB float64
	fdsPerConn                  float64
}

// memoryOnce starts p in front of upstream, opens v.n connections through
// it and measures the proxy's memory and file descriptors before and after.
func memoryOnce(ctx context.Context, e *env, p, upstream string, v memoryVariant) (memResult, error) {
	in, err := e.l.start(ctx, p, upstream, "memory")
	if err != nil {
		return memResult{}, err
	}
	defer in.stop()
	sleep(ctx, e.sz.settle)
	b, _, err := in.memKiB()
	if err != nil {
		return memResult{}, err
	}
	fds0 := in.fds()
	octx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if v.logins {
		conns, err := openLogins(octx, in.addr, v.n, 16)
		if err != nil {
			return memResult{}, err
		}
		defer closeLogins(conns)
	} else {
		conns, err := openIdle(octx, in.addr, v.n, 32)
		defer closeAll(conns)
		if err != nil {
			// Say how far the proxy got and what it had then: running out
			// of file descriptors is a finding, not a harness failure.
			sleep(ctx, e.sz.settle)
			if a, _, merr := in.memKiB(); merr == nil && len(conns) > 0 {
				err = fmt.Errorf("%w; %d of %d connections established, %.1f KiB and %.1f file descriptors per connection then%s",
					err, len(conns), v.n, float64(a-b)/float64(len(conns)), float64(in.fds()-fds0)/float64(len(conns)), logHint(in))
			}
			return memResult{}, &memFailure{established: len(conns), err: err}
		}
	}
	sleep(ctx, e.sz.settle)
	a, _, err := in.memKiB()
	if err != nil {
		return memResult{}, err
	}
	return memResult{
		perKiB:     float64(a-b) / float64(v.n),
		beforeKiB:  float64(b),
		afterKiB:   float64(a),
		fdsPerConn: float64(in.fds()-fds0) / float64(v.n),
	}, nil
}

// memFailure is a memory measurement that could not open every connection.
type memFailure struct {
	established int
	err         error
}

func (m *memFailure) Error() string { return m.err.Error() }
func (m *memFailure) Unwrap() error { return m.err }

// logHint names a known cause found in the proxy's log.
func logHint(in *instance) string {
	if in.proc == nil {
		return ""
	}
	b, err := os.ReadFile(in.proc.logPath)
	if err != nil {
		return ""
	}
	if strings.Contains(string(b), "too many open files") {
		return "; the proxy logged EMFILE (too many open files)"
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
