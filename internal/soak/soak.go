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
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
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
