//go:build linux

// Command bench measures tdsproxy against direct connections and against the
// proxies users would pick instead (HAProxy, socat, Toxiproxy), all in front
// of the same upstream (the in-process SQL Server emulator, or a raw TCP
// server for idle connections), in one run on this machine (issue 6).
//
// It is Linux only (it reads /proc, raises RLIMIT_NOFILE and ties its
// children's lives to its own with Pdeathsig), hence the build line.
//
//	go run ./bench                   # full run: 5 repetitions, prints tables
//	go run ./bench -quick            # smoke run: small sizes, 1 repetition
//	go run ./bench -only bulk,haproxy,tdsproxy -reps 3 -json out.json
//
// Workloads: bulk throughput (go-mssqldb and a raw TDS byte stream after
// login, 1 and 8 streams), request/response latency (SELECT 1 round trips),
// connection setup (logins per second, encrypt=true and strict) and memory
// (RSS per idle established connection). Everything runs on loopback; the
// harness installs what is missing (apt-get, go install), starts every
// process itself and kills them all on exit. Progress goes to stderr, the
// tables (Markdown) to stdout. See BENCHMARKS.md for the method.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Workload names, as -only takes them.
const (
	wlBulk    = "bulk"
	wlLatency = "latency"
	wlLogins  = "logins"
	wlMemory  = "memory"
)

var allWorkloads = []string{wlBulk, wlLatency, wlLogins, wlMemory, wlBridge}

// options are the command-line flags.
type options struct {
	reps     int
	quick    bool
	only     string
	jsonPath string
	workDir  string
	// quietWait bounds the wait for other processes to leave the CPUs
	// before each measurement (0: do not wait).
	quietWait time.Duration
}

// sizes are the workload sizes of a full or a quick run.
type sizes struct {
	bulkBytes    int64 // per path per repetition per variant
	latencyN     int
	latencyWarm  int
	loginDur     time.Duration
	loginWorkers int
	memIdle      []int
	memLogins    int
	settle       time.Duration // wait before reading RSS
}

func fullSizes() sizes {
	return sizes{
		bulkBytes:    1 << 30,
		latencyN:     20000,
		latencyWarm:  500,
		loginDur:     3 * time.Second,
		loginWorkers: 16,
		memIdle:      []int{1000, 10000},
		memLogins:    1000,
		settle:       time.Second,
	}
}

func quickSizes() sizes {
	return sizes{
		bulkBytes:    64 << 20,
		latencyN:     2000,
		latencyWarm:  100,
		loginDur:     time.Second,
		loginWorkers: 16,
		memIdle:      []int{200, 1000},
		memLogins:    100,
		settle:       300 * time.Millisecond,
	}
}

// selection is what -only picked: workloads and paths (empty: all).
type selection struct {
	workloads, paths map[string]bool
}

func (s selection) workload(w string) bool { return len(s.workloads) == 0 || s.workloads[w] }
func (s selection) path(p string) bool     { return len(s.paths) == 0 || s.paths[p] }

func parseOnly(only string) (selection, error) {
	sel := selection{workloads: map[string]bool{}, paths: map[string]bool{}}
	for _, tok := range strings.Split(only, ",") {
		tok = strings.TrimSpace(tok)
		switch {
		case tok == "":
		case slices.Contains(allWorkloads, tok):
			sel.workloads[tok] = true
		case slices.Contains(allPaths, tok):
			sel.paths[tok] = true
		default:
			return sel, fmt.Errorf("-only: %q is neither a workload (%s) nor a path (%s)",
				tok, strings.Join(allWorkloads, ", "), strings.Join(allPaths, ", "))
		}
	}
	return sel, nil
}

var started = time.Now()

// progress prints a timestamped line to stderr.
func progress(format string, a ...any) {
	el := time.Since(started).Round(time.Second)
	fmt.Fprintf(os.Stderr, "[%02d:%02d] %s\n", int(el.Minutes()), int(el.Seconds())%60, fmt.Sprintf(format, a...))
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == holdFlag {
		os.Exit(holdMain())
	}
	var o options
	flag.IntVar(&o.reps, "reps", 5, "repetitions of every measurement (the tables show the median and min–max)")
	flag.BoolVar(&o.quick, "quick", false, "smoke run: small sizes and 1 repetition (unless -reps is given)")
	flag.StringVar(&o.only, "only", "", "comma-separated workloads ("+strings.Join(allWorkloads, ",")+") and/or paths ("+strings.Join(allPaths, ",")+") to run; empty: all. Ratios need direct and tdsproxy in the selection")
	flag.StringVar(&o.jsonPath, "json", "", "also write every value to this JSON file")
	flag.DurationVar(&o.quietWait, "quiet-wait", 20*time.Second, "before each measurement, wait up to this long for other processes to leave the CPUs nearly idle (at most 5m in all; 0: never wait)")
	flag.StringVar(&o.workDir, "dir", "", "directory for proxy configs and logs (default bench/.run under the module root)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./bench [flags]\n\nMeasures tdsproxy against direct, HAProxy, socat and Toxiproxy (issue 6).\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	repsSet := false
	flag.Visit(func(f *flag.Flag) { repsSet = repsSet || f.Name == "reps" })
	if o.quick && !repsSet {
		o.reps = 1
	}
	if o.reps < 1 {
		fmt.Fprintln(os.Stderr, "bench: -reps must be at least 1")
		os.Exit(2)
	}
	sel, err := parseOnly(o.only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		progress("signal: stopping (again to exit at once)")
		cancel()
		<-sigs
		killAll()
		os.Exit(130)
	}()

	code := 0
	if err := run(ctx, o, sel, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		code = 1
	}
	cancel()
	killAll()
	os.Exit(code)
}

// report is the JSON document -json writes.
type report struct {
	Command  string            `json:"command"`
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Reps     int               `json:"reps"`
	Quick    bool              `json:"quick"`
	Machine  machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Paths    map[string]string `json:"paths"`
	Tables   []*table          `json:"tables"`
	Verdicts []verdict         `json:"verdicts"`
	Errors   []string          `json:"errors,omitempty"`
}

// env is what the workloads share.
type env struct {
	o         options
	sz        sizes
	l         *launcher
	sel       selection
	cert      *benchCert        // the emulator's and the bridge paths' certificate
	paths     []string          // selected paths that can run (the bridge-only ones excepted)
	pending   map[string]string // selected paths that cannot, and why
	emuAddr   string
	ca        string
	holdAddr  string // the hold server (memory workload)
	memCapped string // why the large idle set is smaller than asked, if it is
	gate      *quietGate
	// retryBudget bounds the time spent re-taking disturbed measurements.
	retryBudget time.Duration
	retries     int
	res         *results
	errs        []string
}

func (e *env) fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	e.errs = append(e.errs, msg)
	progress("ERROR %s", msg)
}

// run does the whole benchmark; the deferred stops run on every path out.
func run(ctx context.Context, o options, sel selection, out io.Writer) error {
	started = time.Now()
	loadStart := loadAvg()
	limit, err := raiseNoFile(1 << 18)
	if err != nil {
		progress("warning: RLIMIT_NOFILE: %v", err)
	}
	progress("RLIMIT_NOFILE %d", limit)

	t, err := ensureTools(ctx, sel)
	if err != nil {
		return err
	}
	workDir := o.workDir
	if workDir == "" {
		workDir = filepath.Join(t.root, "bench", ".run")
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	e, err := newEnv(o, t, workDir, limit)
	if err != nil {
		return err
	}
	e.selectPaths(ctx, sel, t, workDir)

	if e.cert, err = makeBenchCert(workDir); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	e.l.cert = e.cert
	emu, ca, err := startEmulator(workDir, e.cert)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	defer emu.Close()
	e.emuAddr, e.ca = emu.Addr(), ca
	if sel.workload(wlMemory) {
		hp, addr, err := startHoldProc(ctx, workDir)
		if err != nil {
			return err
		}
		defer hp.stop()
		e.holdAddr = addr
	}

	mach := describeMachine()
	progress("machine: %d CPUs (%s), %s, kernel %s; reps %d, quick %v", mach.CPUs, mach.CPUModel, mach.MemTotal, mach.Kernel, o.reps, o.quick)
	progress("paths: %s", strings.Join(e.paths, ", "))
	if sel.workload(wlBridge) {
		progress("bridge workload paths (TDS 8.0 strict): %s", strings.Join(bridgePaths(sel), ", "))
	}
	e.runWorkloads(ctx, sel)

	elapsed := time.Since(started)
	verdicts := e.writeMarkdown(out, t, mach, loadStart, elapsed)
	progress("total time %s", elapsed.Round(time.Second))
	if o.jsonPath != "" {
		rep := report{
			Command: command(), Started: started, Seconds: elapsed.Seconds(),
			Reps: o.reps, Quick: o.quick, Machine: mach, Versions: t.versions,
			Paths: pathDescriptions, Tables: e.res.tables, Verdicts: verdicts, Errors: e.errs,
		}
		if err := writeJSON(o.jsonPath, rep); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if len(e.errs) > 0 {
		return fmt.Errorf("%d measurement(s) failed (see Errors)", len(e.errs))
	}
	return nil
}

// writeJSON writes the report as indented JSON to path.
func writeJSON(path string, rep report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// newEnv is the run's state: sizes (quick or full, BENCH_SETTLE), the quiet
// gate's and the retries' budgets, and the idle-connection counts capped to
// what RLIMIT_NOFILE (limit) lets a proxy hold.
func newEnv(o options, t *tools, workDir string, limit uint64) (*env, error) {
	e := &env{o: o, sz: fullSizes(), l: &launcher{t: t, workDir: workDir}, pending: map[string]string{}, res: &results{},
		gate: &quietGate{budget: 4 * time.Minute, maxWait: o.quietWait}, retryBudget: 3 * time.Minute}
	if o.quick {
		e.gate.budget, e.gate.maxWait = 30*time.Second, min(o.quietWait, 5*time.Second)
		e.retryBudget = 30 * time.Second
	}
	if o.quietWait <= 0 {
		e.retryBudget = 0
	}
	if o.quick {
		e.sz = quickSizes()
	}
	if v := os.Getenv("BENCH_SETTLE"); v != "" {
		// A profiling aid: time to take a heap profile while the idle
		// connections are open.
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("BENCH_SETTLE: %w", err)
		}
		e.sz.settle = d
	}
	// A proxy holds two sockets per connection (plus a few of its own), and
	// it inherits the harness's limit: that bounds the largest idle set.
	e.l.maxconn = int(min(limit, 1<<20)-200) / 2
	if fit := (int(min(limit, 1<<20)) - 400) / 2 / 100 * 100; fit > 0 {
		for i, n := range e.sz.memIdle {
			if n > fit {
				e.sz.memIdle[i] = fit
				e.memCapped = fmt.Sprintf("%d connections were asked for; RLIMIT_NOFILE is %d here and cannot be raised (the hard limit; no CAP_SYS_RESOURCE), and a proxy needs two sockets per connection, so %d is the most that fits.", n, limit, fit)
				progress("memory: %s", e.memCapped)
			}
		}
	}
	return e, nil
}

// selectPaths sets the paths to measure; the faults path is pending (shown,
// not measured) when this tdsproxy build refuses per-proxy faults.
func (e *env) selectPaths(ctx context.Context, sel selection, t *tools, workDir string) {
	e.sel = sel
	for _, p := range allPaths {
		if sel.path(p) && !bridgeOnly[p] {
			e.paths = append(e.paths, p)
		}
	}
	if sel.path(pathFaults) {
		if err := checkFaultsConfig(ctx, t, workDir); err != nil {
			e.pending[pathFaults] = "pending"
			progress("path %s is pending: this tdsproxy build does not accept per-proxy faults: %s", pathFaults, firstLine(tail(err.Error(), 3)))
			e.paths = slices.DeleteFunc(e.paths, func(p string) bool { return p == pathFaults })
		}
	}
}

// runWorkloads runs each selected workload in order until ctx ends, then
// notes the pending paths in every table.
func (e *env) runWorkloads(ctx context.Context, sel selection) {
	steps := []struct {
		name string
		fn   func(context.Context, *env)
	}{
		{wlBulk, runBulk}, {wlLatency, runLatency}, {wlLogins, runLogins}, {wlMemory, runMemory}, {wlBridge, runBridge},
	}
	for _, s := range steps {
		if !sel.workload(s.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		ws := time.Now()
		progress("workload %s: start", s.name)
		s.fn(ctx, e)
		progress("workload %s: done in %s", s.name, time.Since(ws).Round(time.Second))
	}
	for p, why := range e.pending {
		for _, tb := range e.res.tables {
			tb.note(p, why)
		}
	}
}

// writeMarkdown writes the report (header, tables, target verdicts,
// errors) to out and returns the verdicts.
func (e *env) writeMarkdown(out io.Writer, t *tools, mach machine, loadStart string, elapsed time.Duration) []verdict {
	o := e.o
	shown := slices.Clone(e.paths)
	for _, p := range allPaths {
		if _, ok := e.pending[p]; ok {
			shown = append(shown, p)
		}
	}
	slices.SortStableFunc(shown, func(a, b string) int { return slices.Index(allPaths, a) - slices.Index(allPaths, b) })

	fmt.Fprintf(out, "# tdsproxy benchmark\n\n")
	fmt.Fprintf(out, "Command: `%s`  \n", command())
	fmt.Fprintf(out, "Machine: %d CPUs (%s), %s RAM, kernel %s, %s  \n", mach.CPUs, mach.CPUModel, mach.MemTotal, mach.Kernel, mach.OS)
	var vs []string
	for _, k := range []string{"go", "tdsproxy", "haproxy", "socat", "toxiproxy"} {
		if v := t.versions[k]; v != "" {
			vs = append(vs, k+": "+v)
		}
	}
	fmt.Fprintf(out, "Versions: %s  \n", strings.Join(vs, "; "))
	fmt.Fprintf(out, "Repetitions: %d%s; total time %s, of which %s waiting for other processes to leave the CPUs; %d measurement(s) taken again because other work took more than %.0f%% of the machine  \n", o.reps, map[bool]string{true: " (quick sizes)", false: ""}[o.quick], elapsed.Round(time.Second), e.gate.waited.Round(time.Second), e.retries, 100*retryShare)
	fmt.Fprintf(out, "Load average at the start: %s\n", loadStart)
	var bridgeShown []string
	for _, p := range bridgeWorkloadPaths {
		if e.sel.path(p) {
			bridgeShown = append(bridgeShown, p)
		}
	}
	for _, tb := range e.res.tables {
		if tb.Workload == wlBridge {
			tb.write(out, bridgeShown)
			continue
		}
		tb.write(out, shown)
	}
	verdicts := checkTargets(e.res)
	fmt.Fprintf(out, "\n### Targets\n\n")
	writeVerdicts(out, verdicts)
	if len(e.errs) > 0 {
		fmt.Fprintf(out, "\n### Errors\n\n")
		for _, s := range e.errs {
			fmt.Fprintf(out, "- %s\n", s)
		}
	}
	return verdicts
}

// raiseNoFile raises RLIMIT_NOFILE to want (soft and hard; the hard limit
// needs root, else the soft limit goes as high as the hard one). Children
// started afterwards inherit it: calling syscall.Setrlimit stops Go from
// restoring the original soft limit in exec'd processes.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	nl := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err == nil {
		return want, nil
	}
	nl = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err != nil {
		return lim.Cur, err
	}
	return lim.Max, fmt.Errorf("could only raise to the hard limit %d (want %d; raising the hard limit needs CAP_SYS_RESOURCE)", lim.Max, want)
}

// command is how this run was invoked, as a person would type it (go run
// leaves the binary in the build cache under a hashed name).
func command() string {
	return strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " "))
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "unknown"
	}
	return strings.Join(fs[:3], " ")
}

// currentNoFile is the soft RLIMIT_NOFILE now.
func currentNoFile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}
