// Package lab is `tdsproxy lab`: with no SQL Server at all it starts the
// SQL Server emulator and a tdsproxy proxy with a fault engine, in process
// on loopback, and for each documented cause of error 10054
// (docs/protocol.md; the faults scenario table) connects a real client twice: once **before the fix** (a
// client or server set up as in the failing production case, with the
// scenario's rule armed) and once **after the fix** (the remedy the
// scenario's Fix text names). Each row of the Report says where the fault
// hit (from the proxy's connection record), how the connection was closed,
// the client library's own error text, and whether the fixed client
// connected and ran SELECT 1.
//
// The client is go-mssqldb, in process, unless Options.Clients asks for
// others: Microsoft's JDBC driver and ODBC Driver 18, tedious and FreeTDS
// tsql, run through internal/interop (each where installed; a row says
// when one is not). The two DHE scenarios run in their real form (dhe.go):
// the emulator negotiates TLS_DHE_RSA with the DHE engine and fails as an
// unpatched Windows server, and the client fails for the real reason.
// go-mssqldb has no DHE (Go's crypto/tls has none), so the default rows
// use the DHE engine's own client there.
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// Options configures Run. The zero value runs every scenario.
type Options struct {
	// Scenarios lists the scenarios to run, by name; empty means all.
	// Rows always come in the documented order.
	Scenarios []string
	// Clients lists the clients that meet each scenario (ClientNames, or
	// ClientAll); empty means go-mssqldb alone, the fastest. Each
	// (scenario, client) is a row, in scenario order, then client order.
	// A client that is not installed gives skipped rows that say so.
	Clients []string
	// Handshakes is how many handshakes the leading-zero row's natural
	// count and its count after the fix run per client; 0 means
	// DefaultHandshakes for the default client (the DHE engine's, in
	// process) and DefaultExtHandshakes for an external one.
	Handshakes int
	// Logger receives the emulators' and proxies' logs; nil means none.
	Logger *zap.Logger
}

// Status is how a row turned out.
type Status string

// Row statuses.
const (
	// StatusOK: the client before the fix failed as documented (the
	// documented phase, close and error), and the client after the fix
	// connected.
	StatusOK Status = "ok"
	// StatusUnexpected: something did not behave as documented; Row.Problem
	// says what.
	StatusUnexpected Status = "UNEXPECTED"
	// StatusSkipped: no client on this machine can meet the scenario;
	// Row.Note says why. A skipped row does not fail the lab.
	StatusSkipped Status = "skipped"
)

// Report is the outcome of Run.
type Report struct {
	Rows    []Row         `json:"rows"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// OK reports whether no row is StatusUnexpected.
func (r *Report) OK() bool {
	return !slices.ContainsFunc(r.Rows, func(row Row) bool { return row.Status == StatusUnexpected })
}

// Failed lists the rows that did not behave as documented.
func (r *Report) Failed() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Status == StatusUnexpected {
			out = append(out, row)
		}
	}
	return out
}

// Row is one scenario's before/after experiment.
type Row struct {
	Scenario string `json:"scenario"`
	// Summary and Fix are the scenario's own texts (faults.Scenarios).
	Summary string `json:"summary"`
	Fix     string `json:"fix"`
	// Client names the client library that met the scenario.
	Client string `json:"client"`
	// Rule is the fault rule armed for the client before the fix.
	Rule faults.RuleSpec `json:"rule"`
	// FaultAt is the phase of the injecting decision in the before
	// connection's record.
	FaultAt proxy.Phase `json:"fault_at,omitempty"`
	// Close is how the before connection ended, from its record: the kind
	// and who closed first, e.g. "rst by proxy".
	Close string `json:"close,omitempty"`
	// ClientError is the before client's error, shortened for the table
	// (addresses elided); Before.Error has it in full.
	ClientError string `json:"client_error,omitempty"`
	// FixedConnected is true when the client after the fix connected (and,
	// for go-mssqldb, ran SELECT 1).
	FixedConnected bool   `json:"fixed_connected"`
	Status         Status `json:"status"`
	// Problem says what did not behave as documented (StatusUnexpected).
	Problem string `json:"problem,omitempty"`
	// Note explains the row: what was shaped and what to look at.
	Note string `json:"note,omitempty"`

	Before Attempt `json:"before"`
	After  Attempt `json:"after"`
	// Also is an extra connection, when a row needs one.
	Also *Attempt `json:"also,omitempty"`
	// DHE are the leading-zero row's counts: natural, forced, after the
	// fix.
	DHE *DHECounts `json:"dhe,omitempty"`
}

// Attempt is one client connection through the proxy.
type Attempt struct {
	// Client describes the client and how it was set up.
	Client string `json:"client"`
	// Server describes the upstream and the rule armed.
	Server    string `json:"server"`
	Connected bool   `json:"connected"`
	// Result is what the client got on success, e.g. "SELECT 1 = 1".
	Result string `json:"result,omitempty"`
	// Error is the client's own error text, in full.
	Error string `json:"error,omitempty"`
	// Skipped says why the attempt was not made.
	Skipped string        `json:"skipped,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Record is the proxy's record of the connection.
	Record *proxy.Record `json:"record,omitempty"`
}

// Run runs the lab: each selected scenario's before and after connections,
// rows concurrently (the longest, delayed-accept, takes a few seconds).
// ctx bounds the whole run. An error means the lab could not run at all
// (a bad scenario name, no loopback); a scenario that misbehaves is a row
// with StatusUnexpected.
func Run(ctx context.Context, opts Options) (*Report, error) {
	names, err := selectScenarios(opts.Scenarios)
	if err != nil {
		return nil, err
	}
	clients, err := selectClients(opts.Clients)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if slices.Contains(clients, ClientJDBC) {
		// End the JVMs the rows started (they would end with this
		// process anyway).
		defer func() {
			if j, err := interop.FindJDBC(); err == nil {
				j.Close()
			}
		}()
	}
	start := time.Now()
	rep := &Report{Rows: make([]Row, len(names)*len(clients))}
	// External clients are processes (a JVM, Python, Node, tsql): at most
	// extParallel of their rows at once, so a small machine is not swamped.
	sem := make(chan struct{}, extParallel)
	var wg sync.WaitGroup
	for i, name := range names {
		for k, client := range clients {
			wg.Go(func() {
				idx := i*len(clients) + k
				if client == ClientGo {
					rep.Rows[idx] = r.row(ctx, name)
					return
				}
				sem <- struct{}{}
				defer func() { <-sem }()
				rep.Rows[idx] = r.extRow(ctx, name, client)
			})
		}
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("lab: %w", err)
	}
	return rep, nil
}

// extParallel bounds the rows with external clients running at once.
const extParallel = 4

// ErrUnknownScenario is returned for a scenario name that is not one of
// faults.ScenarioNames.
var ErrUnknownScenario = errors.New("unknown scenario")

func selectScenarios(want []string) ([]string, error) {
	all := faults.ScenarioNames()
	if len(want) == 0 {
		return all, nil
	}
	var out []string
	for _, w := range want {
		i := slices.IndexFunc(all, func(n string) bool { return strings.EqualFold(n, strings.TrimSpace(w)) })
		if i < 0 {
			return nil, fmt.Errorf("%w %q (one of %s)", ErrUnknownScenario, w, strings.Join(all, ", "))
		}
		out = append(out, all[i])
	}
	// Documented order, each once.
	slices.SortFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return slices.Compact(out), nil
}

// scenarioInfo returns the faults catalogue entry for name.
func scenarioInfo(name string) faults.ScenarioInfo {
	if s, ok := faults.ScenarioByName(name); ok {
		return s
	}
	return faults.ScenarioInfo{Name: name}
}

// runner holds what the rows share: the logger, a scratch directory and
// the leading-zero counts' size.
type runner struct {
	log        *zap.Logger
	dir        string
	handshakes int

	// The leading-zero rows' forced counts, run once (dhe.go).
	forcedOnce             sync.Once
	forcedPad, forcedStrip Tally
}

func newRunner(opts Options) (*runner, error) {
	r := &runner{log: opts.Logger, handshakes: opts.Handshakes}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	dir, err := os.MkdirTemp("", "tdsproxy-lab-")
	if err != nil {
		return nil, fmt.Errorf("lab: scratch directory: %w", err)
	}
	r.dir = dir
	return r, nil
}

func (r *runner) close() { _ = os.RemoveAll(r.dir) }

// row runs one scenario with go-mssqldb (for DHE, the engine's client)
// and judges it.
func (r *runner) row(ctx context.Context, name string) Row {
	info := scenarioInfo(name)
	row := Row{Scenario: name, Summary: info.Summary, Fix: info.Fix}
	if info.Lab.Server.DHE != nil {
		s, err := scenarioSetup(name)
		if err != nil {
			row.Status, row.Problem = StatusUnexpected, err.Error()
			return row
		}
		r.dheRow(ctx, &row, ClientGo, s)
	} else {
		r.goRow(ctx, &row)
	}
	return row
}
