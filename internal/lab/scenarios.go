package lab

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// Every experiment here reads the scenario's faults.LabSetup: the lab
// never switches on a scenario's name, so a scenario added to the faults
// table gets its rows from its own entry.

// setup is a scenario's server side before the fix: the emulator's
// configuration and the rule that plays the failing server.
type setup struct {
	info faults.ScenarioInfo
	rule faults.RuleSpec
	emu  emulator.Config
	// server describes the upstream and the rule for a row.
	server string
}

// lab is the scenario's lab entry.
func (s setup) lab() faults.LabSetup { return s.info.Lab }

// scenarioSetup returns the server side of a scenario before the fix.
func scenarioSetup(name string) (setup, error) {
	info, ok := faults.ScenarioByName(name)
	if !ok {
		return setup{}, fmt.Errorf("%w %q", ErrUnknownScenario, name)
	}
	l := info.Lab
	rule := faults.RuleSpec{Name: info.Name, Scenario: info.Name, Close: l.Close, Options: l.Options}
	emu, err := emulatorFor(l.Server)
	if err != nil {
		return setup{}, err
	}
	return setup{info: info, rule: rule, emu: emu, server: l.Server.Desc}, nil
}

// emulatorFor is the emulator playing a lab server.
func emulatorFor(s faults.LabServer) (emulator.Config, error) {
	cfg := emulator.Config{TLSMin: s.TLSMin, TLSMax: s.TLSMax, CipherSuites: s.Suites}
	if s.DHE != nil {
		if err := dheEmulator(&cfg, s.DHE); err != nil {
			return emulator.Config{}, fmt.Errorf("lab: %s: %w", s.Desc, err)
		}
	}
	if s.CertHash != "" {
		cert, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{CommonName: "localhost",
			DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, Hash: s.CertHash})
		if err != nil {
			return emulator.Config{}, fmt.Errorf("lab: %s certificate: %w", strings.ToUpper(s.CertHash), err)
		}
		cfg.Certificate = &cert
	}
	return cfg, nil
}

// goClientFor is go-mssqldb set up as a lab client.
func goClientFor(c faults.LabClient) goClient {
	g := goClient{TLSMin: c.TLSMin, TLSMax: c.TLSMax, ConnTimeout: c.Timeout}
	if c.Suite != 0 {
		g.Suites = []uint16{c.Suite}
	}
	return g
}

// runGo starts an emulator and a proxy armed with rules, and connects c.
func (r *runner) runGo(ctx context.Context, emu emulator.Config, rules []faults.RuleSpec, server string, c goClient) Attempt {
	e, err := startEnv(envConfig{Emulator: emu, Rules: rules, Logger: r.log})
	if err != nil {
		return Attempt{Client: c.String(), Server: server, Error: "lab: " + err.Error()}
	}
	defer e.close()
	a := c.run(ctx, e)
	a.Server = server
	return a
}

// goRow runs a scenario's before and after connections with go-mssqldb
// and judges them. After the fix the client meets the same armed rule
// (the fix is on the client side), or the fixed server with no rule.
func (r *runner) goRow(ctx context.Context, row *Row) {
	s, err := scenarioSetup(row.Scenario)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, err.Error()
		return
	}
	l := s.lab()
	row.Client, row.Rule = goClientName, s.rule
	rules := []faults.RuleSpec{s.rule}
	before, after := goClientFor(l.Before), goClientFor(l.After)
	switch {
	case l.OneProxy:
		e, err := startEnv(envConfig{Emulator: s.emu, Rules: rules, Logger: r.log})
		if err != nil {
			row.Status, row.Problem = StatusUnexpected, "lab: "+err.Error()
			return
		}
		defer e.close()
		row.Before = before.run(ctx, e)
		row.Before.Server = s.server
		row.After = after.run(ctx, e)
		row.After.Server = s.server
	case l.Fixed != nil:
		row.Before = r.runGo(ctx, s.emu, rules, s.server, before)
		emu, err := emulatorFor(*l.Fixed)
		if err != nil {
			row.Status, row.Problem = StatusUnexpected, err.Error()
			return
		}
		row.After = r.runGo(ctx, emu, nil, l.Fixed.Desc, after)
	default:
		row.Before = r.runGo(ctx, s.emu, rules, s.server, before)
		row.After = r.runGo(ctx, s.emu, rules, s.server, after)
	}
	row.Note = l.Note
	if l.Fixed != nil {
		row.Note += " After the fix the record shows " + certAlg(row.After.Record) + "."
	}
	judge(row, expectFor(s.info, ClientGo))
}

func certAlg(rec *proxy.Record) string {
	if rec == nil || rec.TLS == nil || len(rec.TLS.Certificates) == 0 {
		return "no certificate"
	}
	return "a certificate signed with " + rec.TLS.Certificates[0].SignatureAlgorithm
}

// expect is what the connection before the fix must show.
type expect struct {
	// phase is where the rule injected.
	phase proxy.Phase
	// by and kind are who closed first and how; kind "" accepts any.
	by   proxy.Side
	kind proxy.CloseKind
	// errText are substrings the client's error must all contain.
	errText []string
	// afterDelayed: the rule still delays the fixed client (it is the
	// client that copes with the delay).
	afterDelayed bool
	// after, if set, checks the after attempt further.
	after func(a *Attempt) string
}

// expectFor is the scenario's expectation for one client (faults.Lab*
// client names).
func expectFor(info faults.ScenarioInfo, client string) expect {
	x := info.Lab.Expect
	return expect{phase: info.Phase, by: x.By, kind: x.Kind, errText: x.Errors[client], afterDelayed: x.AfterDelayed}
}

func firstInjection(rec *proxy.Record, rule string) *proxy.FaultEvent {
	if rec == nil {
		return nil
	}
	for i, ev := range rec.Faults {
		// Acted: pass, skip and armed are decisions to let the
		// connection be, not injections (as soak counts them).
		if ev.Rule == rule && ev.Acted() {
			return &rec.Faults[i]
		}
	}
	return nil
}

// judge fills the row's summary columns from the attempts and their
// records, and decides whether the row behaved as documented.
func judge(row *Row, x expect) {
	b, a := &row.Before, &row.After
	row.ClientError = shortError(b.Error)
	row.FixedConnected = a.Connected
	if rec := b.Record; rec != nil {
		if ev := firstInjection(rec, row.Rule.Name); ev != nil {
			row.FaultAt = ev.Phase
		}
		if rec.Close != nil {
			row.Close = string(rec.Close.Kind) + " by " + string(rec.Close.By)
		}
	}
	problems := append(judgeBefore(row, x), judgeAfter(row, x)...)
	if len(problems) > 0 {
		row.Status, row.Problem = StatusUnexpected, strings.Join(problems, "; ")
		return
	}
	row.Status = StatusOK
}

func judgeBefore(row *Row, x expect) []string {
	b := &row.Before
	switch {
	case b.Skipped != "":
		return []string{"before the fix: not run: " + b.Skipped}
	case b.Connected:
		return []string{"before the fix: the client connected"}
	case b.Record == nil:
		return []string{"before the fix: no proxy record (" + b.Error + ")"}
	}
	var problems []string
	if row.FaultAt != x.phase {
		problems = append(problems, fmt.Sprintf("before the fix: the rule injected at %q, want %s", row.FaultAt, x.phase))
	}
	if c := b.Record.Close; c == nil || c.By != x.by || (x.kind != "" && c.Kind != x.kind) {
		want := "closed by " + string(x.by)
		if x.kind != "" {
			want = string(x.kind) + " by " + string(x.by)
		}
		problems = append(problems, fmt.Sprintf("before the fix: close %q, want %s", row.Close, want))
	}
	if len(x.errText) == 0 {
		problems = append(problems, "before the fix: the scenario names no error for this client")
	}
	for _, s := range x.errText {
		if !strings.Contains(b.Error, s) {
			problems = append(problems, fmt.Sprintf("before the fix: the client's error %q lacks %q", b.Error, s))
		}
	}
	return problems
}

func judgeAfter(row *Row, x expect) []string {
	a := &row.After
	switch {
	case !a.Connected:
		return []string{"after the fix: the client did not connect: " + a.Error}
	case a.Record == nil:
		return []string{"after the fix: no proxy record"}
	}
	var problems []string
	if ev := firstInjection(a.Record, row.Rule.Name); ev != nil && !(x.afterDelayed && ev.Action == faults.ActionDelay) {
		problems = append(problems, fmt.Sprintf("after the fix: the rule still injected %s at %s", ev.Action, ev.Phase))
	}
	if x.after != nil {
		if p := x.after(a); p != "" {
			problems = append(problems, "after the fix: "+p)
		}
	}
	return problems
}
