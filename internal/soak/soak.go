// Package soak runs tdsproxy under load with faults (issue 7): many
// go-mssqldb clients run queries through an in-process proxy to the
// emulator while a fault engine hits a fraction of their connections with
// the documented scenarios and generic faults. It checks that every query
// on an unfaulted connection returns the right result, that every faulted
// connection ends with its scenario's error, and measures goroutines, heap
// and RSS before and after, so a test can tell a leak.
//
// Each scenario is bound to its own loopback source address (127.0.0.x):
// the fault rules match on the client address, so which connection is hit
// is decided by the client, not by chance in the proxy.
package soak

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// Config sizes a soak run. Zero fields take the values of Short.
type Config struct {
	// Clients run concurrently, each for the whole Duration.
	Clients int
	// Queries is how many queries each client runs, spread evenly over
	// Duration.
	Queries int
	// PerConn is how many queries a client runs on one connection before
	// it opens the next one.
	PerConn int
	// Duration is how long the load lasts.
	Duration time.Duration
	// FaultRate is the share of connections hit by a scenario, 0..1.
	FaultRate float64
	// Seed makes the choice of faulted connections and scenarios
	// reproducible.
	Seed uint64
	// Dir is where the run writes the emulator's certificate (strict mode
	// verifies it); "" means a new temporary directory, removed at the end.
	Dir string
}

// Short is the version CI runs in `make test`: 100 clients × 40 queries
// over 25 s (10 queries per connection: 400 connections, about 40
// faulted). Sized for a 2-core machine under -race, where the full
// version's 500 TLS clients would measure the race detector, not the proxy.
var Short = Config{Clients: 100, Queries: 40, PerConn: 10, Duration: 25 * time.Second, FaultRate: 0.1, Seed: 7}

// Full is `make soak`: 500 concurrent clients × 200 queries over 5 minutes
// (20 queries per connection: 5,000 connections, about 500 faulted).
var Full = Config{Clients: 500, Queries: 200, PerConn: 20, Duration: 5 * time.Minute, FaultRate: 0.1, Seed: 7}

// ConfigFromEnv reads TDSPROXY_SOAK: "" is Short; a duration (e.g. "5m")
// is Full stretched or shrunk to that duration.
func ConfigFromEnv(v string) (Config, error) {
	if v == "" {
		return Short, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return Config{}, fmt.Errorf("TDSPROXY_SOAK=%q: want a duration such as 5m", v)
	}
	c := Full
	c.Duration = d
	return c, nil
}

func (c Config) withDefaults() Config {
	if c.Clients <= 0 {
		c.Clients = Short.Clients
	}
	if c.Queries <= 0 {
		c.Queries = Short.Queries
	}
	if c.PerConn <= 0 {
		c.PerConn = Short.PerConn
	}
	if c.Duration <= 0 {
		c.Duration = Short.Duration
	}
	if c.FaultRate < 0 || c.FaultRate > 1 {
		c.FaultRate = Short.FaultRate
	}
	return c
}

// Scenario is one way a connection is hit: a fault rule bound to a client
// address, how that client connects, and the error it must end with.
type Scenario struct {
	Name string
	// Rule is installed with Match.Clients set to Addr.
	Rule faults.RuleSpec
	Addr netip.Addr
	// Encrypt is go-mssqldb's encrypt= for this client.
	Encrypt string
	// TLSMin and TLSMax narrow the client's TLS versions (0: default).
	TLSMin, TLSMax uint16
	// ConnTimeout is go-mssqldb's "connection timeout" in seconds (0: 10).
	ConnTimeout int
	// WantErr lists substrings of which the client's error must contain
	// one. go-mssqldb flattens most errors to text, so errors.Is cannot be
	// used throughout.
	WantErr []string
	// MidSession is true when the fault hits after login: the client
	// runs queries until one fails.
	MidSession bool
}

// Scenarios are the faults a soak run spreads over its faulted
// connections, one loopback address each: every soak case of the faults
// scenario table, then a generic reset in mid-session.
func Scenarios() []Scenario {
	at := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)}) }
	var out []Scenario
	for _, s := range faults.Scenarios() {
		for _, c := range s.Soak {
			out = append(out, Scenario{Name: c.Name, Addr: at(len(out)), Encrypt: c.Encrypt,
				TLSMin: c.Client.TLSMin, TLSMax: c.Client.TLSMax, ConnTimeout: c.Client.Timeout, WantErr: c.WantErr,
				Rule: faults.RuleSpec{Scenario: s.Name, Options: c.Options, Close: c.Close}})
		}
	}
	return append(out, Scenario{Name: "reset-mid-session", Addr: at(len(out)), Encrypt: "true", MidSession: true,
		WantErr: []string{"connection reset by peer", "broken pipe", "bad connection"},
		Rule:    faults.RuleSpec{Action: "reset", Direction: "downstream", Phase: string(proxy.PhaseEstablished), Options: map[string]string{"bytes": "700"}}})
}

// WantErrMatches reports whether err is one a client of s must end with.
func (s Scenario) WantErrMatches(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, w := range s.WantErr {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

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

// ScenarioResult counts one scenario's connections.
type ScenarioResult struct {
	Connections int
	// Expected ended with the scenario's error; Unexpected did not (they
	// succeeded, or failed otherwise). Samples holds a few of the latter.
	Expected, Unexpected int
	Samples              []string
	// Errors counts the client errors by text (addresses stripped).
	Errors map[string]int
}

// Report is what a run measured.
type Report struct {
	Config  Config
	Elapsed time.Duration

	Connections      int // all connections the clients opened
	CleanConnections int // not faulted
	Queries          int // answered correctly on clean connections
	QueryFailures    int // errors on clean connections (must be 0)
	WrongResults     int // wrong answers on clean connections (must be 0)
	FailureSamples   []string
	Scenarios        map[string]*ScenarioResult
	Injections       map[string]int // fault engine injections by rule
	Records          int            // connection records received
	RecordViolations int            // records that do not say what happened
	ViolationSamples []string
	CloseKinds       map[string]int // records by "by/kind"
	Before, After    Sample
	// Peak is the most goroutines and RSS seen during the load (sampled
	// each second, no GC forced).
	Peak                   Sample
	LiveAfter              int    // connections the proxy still held after the drain
	EmulatorProtocolErrors uint64 // connections the emulator closed for bad input
}

// Run starts the emulator and the proxy, measures a baseline after a
// warm-up, runs the load, drains, measures again and stops everything.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	rep := &Report{Config: cfg, Scenarios: map[string]*ScenarioResult{}, Injections: map[string]int{}, CloseKinds: map[string]int{}}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tdsproxy-soak-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	env, err := start(dir, rep)
	if err != nil {
		return nil, err
	}
	defer env.close()

	// Warm-up: one clean connection per mode and one per scenario, so that
	// what is allocated once (TLS session state, pools, code paths) is in
	// the baseline, not counted as a leak.
	for _, mode := range cleanModes {
		if _, err := env.cleanSession(ctx, mode, 3, nil, nil); err != nil {
			return nil, fmt.Errorf("warm-up (%s): %w", mode, err)
		}
	}
	for _, sc := range env.scenarios {
		_ = env.faultedSession(ctx, sc, 3, nil)
	}
	if err := env.drain(ctx); err != nil {
		return nil, err
	}
	env.resetCounts()
	rep.Before = Measure()

	start := time.Now()
	stopPeak := make(chan struct{})
	peakDone := make(chan struct{})
	go func() {
		defer close(peakDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopPeak:
				return
			case <-t.C:
				rep.Peak.Goroutines = max(rep.Peak.Goroutines, runtime.NumGoroutine())
				rep.Peak.RSS = max(rep.Peak.RSS, ReadRSS())
			}
		}
	}()
	env.load(ctx, cfg)
	close(stopPeak)
	<-peakDone
	rep.Elapsed = time.Since(start)

	if err := env.drain(ctx); err != nil {
		rep.LiveAfter = len(env.p.Connections())
	}
	// Goroutines of closed connections end shortly after: wait, bounded.
	for i := 0; i < 100 && runtime.NumGoroutine() > rep.Before.Goroutines; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	rep.After = Measure()
	env.fill(rep)
	return rep, nil
}

var cleanModes = []string{"disable", "false", "true", "strict"}

type env struct {
	emu       *emulator.Server
	p         *proxy.Proxy
	eng       *faults.Engine
	certFile  string
	scenarios []Scenario
	byAddr    map[netip.Addr]*Scenario

	mu         sync.Mutex
	rep        *Report
	injections map[string]int
	records    int
	violations []string
	nViolation int
	closeKinds map[string]int
}

const (
	soakUser     = "soak"
	soakPassword = "Soak-Pa55-word"
	proxyName    = "soak"
)

func start(dir string, rep *Report) (*env, error) {
	e := &env{rep: rep, injections: map[string]int{}, closeKinds: map[string]int{}, byAddr: map[netip.Addr]*Scenario{}}
	emu, err := emulator.New(emulator.Config{Encrypt: tds.EncryptOff, User: soakUser, Password: soakPassword, LoginTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := emu.Start(); err != nil {
		return nil, err
	}
	e.emu = emu
	e.certFile = filepath.Join(dir, "emulator.pem")
	if err := os.WriteFile(e.certFile, emu.CertificatePEM(), 0o600); err != nil {
		emu.Close()
		return nil, err
	}
	e.scenarios = Scenarios()
	var rules []faults.RuleSpec
	for i := range e.scenarios {
		sc := &e.scenarios[i]
		r := sc.Rule
		r.Name = sc.Name
		r.Match.Clients = []string{sc.Addr.String()}
		r.Seed = uint64(i + 1)
		rules = append(rules, r)
		e.byAddr[sc.Addr] = sc
	}
	e.eng = faults.NewEngine(nil)
	e.eng.OnInject = func(_, rule, _ string, _ proxy.Phase, _ string) {
		e.mu.Lock()
		e.injections[rule]++
		e.mu.Unlock()
	}
	if err := e.eng.SetRules(proxyName, rules); err != nil {
		emu.Close()
		return nil, err
	}
	p, err := proxy.New(proxy.Config{Name: proxyName, Listen: "127.0.0.1:0", Upstream: emu.Addr()},
		proxy.Options{Decider: e.eng.Decider(proxyName), Sink: e.sink})
	if err != nil {
		emu.Close()
		return nil, err
	}
	if err := p.Start(); err != nil {
		emu.Close()
		return nil, err
	}
	e.p = p
	return e, nil
}

func (e *env) close() {
	e.p.Close()
	e.emu.Close()
}

func (e *env) resetCounts() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.injections)
	clear(e.closeKinds)
	e.records, e.nViolation, e.violations = 0, 0, nil
}

// drain waits until the proxy holds no connection (bounded).
func (e *env) drain(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for len(e.p.Connections()) > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d connections still open after 30s", len(e.p.Connections()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// sink checks each finished record: a clean connection logged in and was
// never touched by a rule; a faulted one names its rule.
func (e *env) sink(r *proxy.Record) {
	var problem string
	ap, _ := netip.ParseAddrPort(r.Client)
	sc := e.byAddr[ap.Addr()]
	switch {
	case sc == nil:
		switch {
		case len(r.Faults) > 0:
			problem = "clean connection with faults"
		case len(r.ParseIssues) > 0:
			problem = "parse issue: " + r.ParseIssues[0].Error
		case !r.Reached(proxy.PhaseEstablished):
			problem = "clean connection never established"
		}
	default:
		hit := false
		for _, f := range r.Faults {
			// Acted: pass, skip and armed are not injections (as the
			// lab judges them).
			if f.Rule == sc.Name && f.Acted() {
				hit = true
			}
		}
		if !hit {
			problem = "faulted connection without its rule " + sc.Name
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records++
	if r.Close != nil {
		e.closeKinds[string(r.Close.By)+"/"+string(r.Close.Kind)]++
	}
	if problem != "" {
		e.nViolation++
		if len(e.violations) < 5 {
			e.violations = append(e.violations, fmt.Sprintf("conn %d from %s: %s", r.ID, r.Client, problem))
		}
	}
}

func (e *env) fill(rep *Report) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.injections {
		rep.Injections[k] = v
	}
	for k, v := range e.closeKinds {
		rep.CloseKinds[k] = v
	}
	rep.Records, rep.RecordViolations, rep.ViolationSamples = e.records, e.nViolation, e.violations
	rep.EmulatorProtocolErrors = e.emu.Stats().ProtocolErrors
}

// dsn is go-mssqldb's connection string for one client.
func (e *env) dsn(encrypt string, connTimeout int) string {
	host, port, _ := net.SplitHostPort(e.p.Addr().String())
	q := url.Values{}
	q.Set("database", "master")
	q.Set("encrypt", encrypt)
	q.Set("TrustServerCertificate", "true")
	if connTimeout <= 0 {
		connTimeout = 10
	}
	q.Set("connection timeout", strconv.Itoa(connTimeout))
	q.Set("dial timeout", "10")
	q.Set("app name", "tdsproxy-soak")
	if encrypt == "strict" {
		// Strict mode ignores TrustServerCertificate (msdsn parseTLS).
		q.Set("certificate", e.certFile)
		q.Set("hostNameInCertificate", "localhost")
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(soakUser, soakPassword), Host: net.JoinHostPort(host, port), RawQuery: q.Encode()}
	return u.String()
}

func (e *env) open(encrypt string, connTimeout int, from netip.Addr, tlsMin, tlsMax uint16) (*sql.DB, error) {
	cfg, err := msdsn.Parse(e.dsn(encrypt, connTimeout))
	if err != nil {
		return nil, err
	}
	if cfg.TLSConfig != nil {
		if tlsMin != 0 {
			cfg.TLSConfig.MinVersion = tlsMin
		}
		if tlsMax != 0 {
			cfg.TLSConfig.MaxVersion = tlsMax
		}
	}
	c := mssql.NewConnectorConfig(cfg)
	c.Dialer = &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	return db, nil
}

// pace waits until the client's next query is due.
type pace func(ctx context.Context) bool

// cleanSession runs n queries on one clean connection and checks each
// answer. It returns how many were answered correctly; the error is the
// first failure.
func (e *env) cleanSession(ctx context.Context, mode string, n int, wait pace, seq *int) (int, error) {
	db, err := e.open(mode, 0, netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0, 0)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := db.Conn(cctx)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("connect (%s): %w", mode, err)
	}
	defer conn.Close()
	ok := 0
	spid := int64(-1)
	for i := range n {
		if wait != nil && !wait(ctx) {
			return ok, nil
		}
		k := i
		if seq != nil {
			k = *seq
			*seq++
		}
		if err := runQuery(ctx, conn, k, &spid); err != nil {
			return ok, fmt.Errorf("query %d (%s): %w", i, mode, err)
		}
		ok++
	}
	return ok, nil
}

// errWrong marks a wrong answer, as opposed to a failed query.
var errWrong = errors.New("wrong result")

// runQuery runs the k-th query of a rotation and checks its answer.
func runQuery(ctx context.Context, conn *sql.Conn, k int, spid *int64) error {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch k % 3 {
	case 0:
		var v int
		if err := conn.QueryRowContext(qctx, "SELECT 1").Scan(&v); err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("%w: SELECT 1 = %d", errWrong, v)
		}
	case 1:
		var v int64
		if err := conn.QueryRowContext(qctx, "SELECT @@SPID").Scan(&v); err != nil {
			return err
		}
		if *spid >= 0 && v != *spid {
			return fmt.Errorf("%w: @@SPID changed from %d to %d on one connection", errWrong, *spid, v)
		}
		*spid = v
	default:
		rows, size := 1+k%5, 16*(1+k%8)
		rs, err := conn.QueryContext(qctx, fmt.Sprintf("SELECT large(%d, %d)", rows, size))
		if err != nil {
			return err
		}
		defer rs.Close()
		got := 0
		for rs.Next() {
			var b []byte
			if err := rs.Scan(&b); err != nil {
				return err
			}
			if len(b) != size {
				return fmt.Errorf("%w: row of %d bytes, want %d", errWrong, len(b), size)
			}
			for i, c := range b {
				if c != byte('A'+i%26) {
					return fmt.Errorf("%w: byte %d of a row is %q", errWrong, i, c)
				}
			}
			got++
		}
		if err := rs.Err(); err != nil {
			return err
		}
		if got != rows {
			return fmt.Errorf("%w: %d rows, want %d", errWrong, got, rows)
		}
	}
	return nil
}

// faultedSession opens one connection as scenario sc's client and returns
// how it ended: nil if nothing failed (which is itself a failure).
func (e *env) faultedSession(ctx context.Context, sc Scenario, n int, wait pace) error {
	db, err := e.open(sc.Encrypt, sc.ConnTimeout, sc.Addr, sc.TLSMin, sc.TLSMax)
	if err != nil {
		return err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := db.Conn(cctx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	if !sc.MidSession {
		return nil // the fault should have stopped the login
	}
	spid := int64(-1)
	// Large answers reach the reset's byte count within a few queries.
	for i := range max(n, 8) {
		if wait != nil && i < n && !wait(ctx) {
			return nil
		}
		if err := runQuery(ctx, conn, 2, &spid); err != nil {
			return err
		}
	}
	return nil
}

// load runs the clients.
func (e *env) load(ctx context.Context, cfg Config) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	interval := cfg.Duration / time.Duration(cfg.Queries)
	start := time.Now()
	var conns, clean atomic.Int64
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			// Clients start spread over one interval so they do not march
			// in step.
			offset := time.Duration(rnd.Int64N(int64(interval)))
			q := 0
			wait := func(ctx context.Context) bool {
				due := start.Add(offset + time.Duration(q)*interval)
				q++
				select {
				case <-time.After(time.Until(due)):
					return true
				case <-ctx.Done():
					return false
				}
			}
			seq := i
			for done := 0; done < cfg.Queries && ctx.Err() == nil; done += cfg.PerConn {
				n := min(cfg.PerConn, cfg.Queries-done)
				conns.Add(1)
				if rnd.Float64() < cfg.FaultRate {
					sc := e.scenarios[rnd.IntN(len(e.scenarios))]
					err := e.faultedSession(ctx, sc, n, wait)
					// A faulted connection's queries are not run: skip
					// their slots so the pace stays the same.
					for q < done+n {
						q++
					}
					mu.Lock()
					res := e.rep.Scenarios[sc.Name]
					if res == nil {
						res = &ScenarioResult{Errors: map[string]int{}}
						e.rep.Scenarios[sc.Name] = res
					}
					res.Connections++
					if sc.WantErrMatches(err) {
						res.Expected++
					} else {
						res.Unexpected++
						if len(res.Samples) < 3 {
							res.Samples = append(res.Samples, fmt.Sprint(err))
						}
					}
					if err != nil {
						res.Errors[errorKind(err)]++
					}
					mu.Unlock()
					continue
				}
				clean.Add(1)
				mode := cleanModes[rnd.IntN(len(cleanModes))]
				ok, err := e.cleanSession(ctx, mode, n, wait, &seq)
				for q < done+n {
					q++
				}
				mu.Lock()
				e.rep.Queries += ok
				if err != nil {
					if errors.Is(err, errWrong) {
						e.rep.WrongResults++
					} else {
						e.rep.QueryFailures++
					}
					if len(e.rep.FailureSamples) < 5 {
						e.rep.FailureSamples = append(e.rep.FailureSamples, err.Error())
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	e.rep.Connections = int(conns.Load())
	e.rep.CleanConnections = int(clean.Load())
}

// errorKind strips addresses and ports from an error text so that errors
// of one kind count together.
func errorKind(err error) string {
	f := strings.Fields(err.Error())
	for i, w := range f {
		if strings.Count(w, ".") >= 3 && strings.Contains(w, ":") {
			f[i] = "ADDR"
		}
	}
	return strings.Join(f, " ")
}

// Summary is a multi-line human summary of the report.
func (r *Report) Summary() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "soak: %d clients × %d queries (%d per connection) over %v, fault rate %.0f%%, seed %d: took %v\n",
		c.Clients, c.Queries, c.PerConn, c.Duration, 100*c.FaultRate, c.Seed, r.Elapsed.Round(time.Second))
	faulted := r.Connections - r.CleanConnections
	fmt.Fprintf(&b, "connections %d (clean %d, faulted %d); queries answered correctly %d; clean failures %d; wrong results %d\n",
		r.Connections, r.CleanConnections, faulted, r.Queries, r.QueryFailures, r.WrongResults)
	names := make([]string, 0, len(r.Scenarios))
	for n := range r.Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := r.Scenarios[n]
		fmt.Fprintf(&b, "  %-30s conns %4d  expected error %4d  unexpected %d  injections %d\n", n, s.Connections, s.Expected, s.Unexpected, r.Injections[n])
		for k, v := range s.Errors {
			fmt.Fprintf(&b, "      %5d × %s\n", v, k)
		}
	}
	fmt.Fprintf(&b, "records %d (violations %d); closes %v; emulator protocol errors %d\n", r.Records, r.RecordViolations, r.CloseKinds, r.EmulatorProtocolErrors)
	fmt.Fprintf(&b, "before: %v\npeak:   goroutines %d, RSS %.1f MiB\nafter:  %v\n", r.Before, r.Peak.Goroutines, mib(r.Peak.RSS), r.After)
	return b.String()
}
