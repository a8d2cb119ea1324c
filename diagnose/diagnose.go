// Package diagnose names what went wrong with a finished connection: the
// 10054 scenarios faults.Diagnose recognises in a record, plus the
// connection-level patterns behind most other failed or slow logins
// (client-cancelled, server-refused-encryption, login-failed,
// upstream-unreachable, negotiation-timeout, slow-login), each with the
// evidence (which record fields say so) and the fix. A fault tdsproxy
// injected is told apart from a natural failure. It also times each login
// step from the record's phase marks (Steps).
//
// It reads only the record, so it works on records from a log file as well
// as on live ones (tdsproxy report uses it on both).
package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// Finding is one thing wrong with a connection (record.Finding: the
// record carries its diagnosis).
type Finding = record.Finding

// Connection-level findings.
const (
	ClientCancelled         = "client-cancelled"
	ServerRefusedEncryption = "server-refused-encryption"
	LoginFailed             = "login-failed"
	UpstreamUnreachable     = "upstream-unreachable"
	NegotiationTimeout      = "negotiation-timeout"
	SlowLogin               = "slow-login"
	// InjectedFault is a generic fault rule (no scenario) that acted.
	InjectedFault = "injected-fault"
)

// DefaultSlowLogin is the slow_login threshold when none is set.
const DefaultSlowLogin = 2 * time.Second

// Options tune Record. The zero value uses the defaults.
type Options struct {
	// SlowLogin is the login time above which a login gets a slow-login
	// finding; 0 means DefaultSlowLogin, negative turns the finding off.
	SlowLogin time.Duration
}

func (o Options) slowLogin() time.Duration {
	if o.SlowLogin == 0 {
		return DefaultSlowLogin
	}
	return o.SlowLogin
}

// Names lists every finding Record can return: the scenarios in their
// documented order, then the connection-level patterns. Metrics use it to
// export every label from the start.
func Names() []string {
	return append(faults.ScenarioNames(), ClientCancelled, ServerRefusedEncryption, LoginFailed,
		UpstreamUnreachable, NegotiationTimeout, SlowLogin, InjectedFault)
}

// Fixes maps each finding to its fix (a login-failed finding's fix also
// depends on its number; this is the general one).
func Fixes() map[string]string {
	m := map[string]string{}
	for _, s := range faults.Scenarios() {
		m[s.Name] = s.Fix
	}
	for k, v := range patternFix {
		m[k] = v
	}
	return m
}

var patternFix = map[string]string{
	ClientCancelled:         "the client gave up (its connect or login timeout, or the application cancelled): see which side it was waiting for; if the server, look at the server's load and the slow step, or give the client a longer connection timeout",
	ServerRefusedEncryption: "make both sides agree on encryption: turn on the client's Encrypt (and give it TLS) or turn off the server's Force Encryption; or give the server a certificate when the client requires encryption",
	LoginFailed:             "see the SQL Server error number: 18456 is a wrong user name or password (the server's error log has the state), 4060 a database the login cannot open, 18452 a Windows login from an untrusted domain",
	UpstreamUnreachable:     "check the proxy's upstream address, that SQL Server is running and listens on TCP (SQL Server Configuration Manager: TCP/IP enabled, port), and any firewall between the proxy and it",
	NegotiationTimeout:      "a side stalled during the login negotiation: see which side was awaited; raise negotiation_timeout only if such logins are legitimately slow",
	SlowLogin:               "look at the slow step: a slow server answer (PRELOGIN response, ServerHello, login response) points at the server's load or its login processing (Windows authentication round trips, login triggers); a slow client step at the client's host",
	InjectedFault:           "remove or disable the fault rule (DELETE /proxies/{name}/faults/{rule})",
}

// loginFix is the fix for common login error numbers (SQL Server's
// sys.messages).
var loginFix = map[int32]string{
	18456: "wrong user name or password, or a disabled login: the server's error log gives the state (8: password mismatch, 5: unknown user)",
	18452: "the login is from an untrusted domain and cannot be used with Windows authentication",
	4060:  "the login cannot open the database it asked for: check the database name and the login's permissions",
	18486: "the account is locked out: unlock it (ALTER LOGIN ... UNLOCK) and check what keeps trying a wrong password",
	18488: "the password must be changed before logging in",
}

// Record lists the findings of a finished connection's record; a record
// nothing is wrong with has none.
func Record(rec *proxy.Record, opts Options) []Finding {
	if rec == nil {
		return nil
	}
	fs := &findings{rec: rec, seen: map[string]bool{}}
	fs.scenarios()
	fs.injected()
	fs.closeAndLogin()
	fs.clientCancelled()
	fs.slowLogin(opts)
	return fs.out
}

// findings collects one record's findings, each name once, in the order
// Record looks for them.
type findings struct {
	rec  *proxy.Record
	out  []Finding
	seen map[string]bool
}

func (fs *findings) add(f Finding) {
	if !fs.seen[f.Finding] {
		fs.seen[f.Finding] = true
		fs.out = append(fs.out, f)
	}
}

// mark says a pattern finding happened with a fault rule acting on the
// connection: the rule may be its cause.
func (fs *findings) mark(f Finding) Finding {
	if ev := firstActed(fs.rec, func(proxy.FaultEvent) bool { return true }); ev != nil {
		f.Injected, f.Rule = true, ev.Rule
		f.Evidence += "; " + injectedText(*ev)
	}
	return f
}

// scenarios adds the scenario table's recognise face (faults.Diagnose).
func (fs *findings) scenarios() {
	rec := fs.rec
	injected := actedScenarios(rec)
	scen := faults.Diagnose(rec)
	closedByFault := firstActed(rec, func(e proxy.FaultEvent) bool { return strings.HasPrefix(e.Action, "close") })
	specific := slices.ContainsFunc(scen, func(f faults.Finding) bool { return !byElimination(f.Scenario) })
	for _, f := range scen {
		// A scenario recognised by elimination (the table's ByElimination:
		// cipher-mismatch matches any close right after the ClientHello)
		// yields to a more specific cause found on the same close.
		if byElimination(f.Scenario) && specific {
			continue
		}
		// A close a rule injected explains itself: the natural scenarios
		// the same close resembles are left out.
		if closedByFault != nil && closedByFault.Scenario != "" && closedByFault.Scenario != f.Scenario {
			continue
		}
		nf := Finding{Finding: f.Scenario, Evidence: f.Evidence, Fix: f.Fix}
		if ev, ok := injected[f.Scenario]; ok {
			nf.Injected, nf.Rule = true, ev.Rule
			nf.Evidence = injectedText(ev) + "; " + nf.Evidence
		}
		fs.add(nf)
	}
}

// byElimination reports whether the table recognises the named scenario
// by elimination.
func byElimination(scenario string) bool {
	info, ok := faults.ScenarioByName(scenario)
	return ok && info.ByElimination
}

// injected adds a scenario that acted but whose symptoms the recogniser
// does not match (an emulated old server closing a modern client's
// ClientHello looks like a cipher mismatch from the record alone), and
// generic faults that acted: the fault event is the evidence.
func (fs *findings) injected() {
	for _, ev := range fs.rec.Faults {
		if !ev.Acted() {
			continue
		}
		if ev.Scenario == "" {
			fs.add(Finding{Finding: InjectedFault, Evidence: injectedText(ev), Fix: patternFix[InjectedFault], Injected: true, Rule: ev.Rule})
			continue
		}
		fs.add(Finding{Finding: ev.Scenario, Evidence: injectedText(ev), Fix: scenarioFix(ev.Scenario), Injected: true, Rule: ev.Rule})
	}
}

// closeAndLogin adds what the close and the login answer say: the
// upstream unreachable, the negotiation timed out, encryption refused,
// the login failed.
func (fs *findings) closeAndLogin() {
	rec := fs.rec
	if c := rec.Close; c != nil {
		switch {
		case c.Kind == proxy.CloseDialFailed:
			fs.add(Finding{Finding: UpstreamUnreachable, Evidence: "close.kind dial-failed: " + c.Reason, Fix: patternFix[UpstreamUnreachable]})
		case c.By == proxy.SideProxy && c.Kind == proxy.CloseTimeout:
			fs.add(fs.mark(Finding{Finding: NegotiationTimeout, Evidence: fmt.Sprintf("close.by proxy, kind timeout in %s%s: %s", c.Phase, awaitText(c), c.Reason), Fix: patternFix[NegotiationTimeout]}))
		}
	}
	if f, ok := refusedEncryption(rec); ok {
		fs.add(f)
	}
	if l := rec.Login; l != nil && l.Outcome == "failed" {
		fix := patternFix[LoginFailed]
		if s, ok := loginFix[l.ErrorNumber]; ok {
			fix = s
		}
		ev := fmt.Sprintf("login.outcome failed, error %d", l.ErrorNumber)
		if l.ErrorMessage != "" {
			ev += ": " + l.ErrorMessage
		}
		if l.User != "" {
			ev += " (user " + l.User + ")"
		}
		fs.add(Finding{Finding: LoginFailed, Evidence: ev, Fix: fix, Number: l.ErrorNumber})
	}
}

// clientCancelled adds the client leaving before its login was answered.
func (fs *findings) clientCancelled() {
	rec := fs.rec
	// The client left before its login was answered. When something
	// above already explains the failure (delayed-accept's recogniser says
	// the same about a silent server; a refused login or encryption ends
	// the connection and the client only closes its side), this would
	// count the close twice. A generic injected fault does not explain it.
	explained := slices.ContainsFunc(fs.out, func(f Finding) bool { return f.Finding != InjectedFault })
	if c := rec.Close; c != nil && c.By == proxy.SideClient && !explained && !loggedIn(rec) && c.Phase != proxy.PhaseEstablished {
		ev := fmt.Sprintf("close.by client (%s) in %s before the login was answered%s", c.Kind, c.Phase, awaitText(c))
		if rec.TLS != nil {
			for _, a := range rec.TLS.Alerts {
				if a.From == proxy.SideClient {
					ev += "; the client sent TLS alert " + a.Description
					break
				}
			}
		}
		fs.add(fs.mark(Finding{Finding: ClientCancelled, Evidence: ev, Fix: patternFix[ClientCancelled]}))
	}
}

// slowLogin adds a login slower than opts' slow_login, naming its slowest
// step.
func (fs *findings) slowLogin(opts Options) {
	rec := fs.rec
	if lim := opts.slowLogin(); lim > 0 {
		steps := Steps(rec)
		if total, done := LoginTime(steps); done && total > lim {
			s, _ := Slowest(steps)
			ev := fmt.Sprintf("login took %v (slow_login %v); slowest step %s, %v waiting for the %s", total.Round(time.Millisecond), lim, s.Step, s.Duration.Round(time.Millisecond), s.Awaited)
			if s.Inferred {
				ev += " (inferred from encrypted records)"
			}
			f := Finding{Finding: SlowLogin, Evidence: ev, Fix: patternFix[SlowLogin], Step: s.Step}
			if s.Held > 0 {
				if ev := firstActed(rec, func(e proxy.FaultEvent) bool { return e.Action == "delay" }); ev != nil {
					f.Injected, f.Rule = true, ev.Rule
					f.Evidence += fmt.Sprintf("; %v of it held by %s", s.Held.Round(time.Millisecond), injectedText(*ev))
				}
			}
			fs.add(f)
		}
	}
}

// Apply fills a finished record's Diagnosis and Steps. The proxy calls it
// (through control) when a connection closes, before the record is logged.
func Apply(rec *proxy.Record, opts Options) {
	if rec == nil {
		return
	}
	rec.Steps = Steps(rec)
	rec.Diagnosis = Record(rec, opts)
}

// loggedIn reports whether the login was answered with success, or is
// encrypted and the connection went on to carry a session.
func loggedIn(rec *proxy.Record) bool {
	if rec.Login != nil && rec.Login.Outcome == "ok" {
		return true
	}
	return rec.Reached(proxy.PhaseEstablished)
}

// refusedEncryption: the PRELOGIN exchange ended the connection because the
// two sides' ENCRYPTION options do not go together (MS-TDS §2.2.6.5, the
// client/server encryption table: a NOT_SUP side against a REQ/ON side
// means "terminated").
func refusedEncryption(rec *proxy.Record) (Finding, bool) {
	p := rec.Prelogin
	if p == nil || p.Scope != "terminated" {
		return Finding{}, false
	}
	var c, s string
	if p.Client != nil {
		c = p.Client.Encryption
	}
	if p.Server != nil {
		s = p.Server.Encryption
	}
	ev := fmt.Sprintf("prelogin.scope terminated: client encryption %s, server encryption %s", orDash(c), orDash(s))
	fix := patternFix[ServerRefusedEncryption]
	switch {
	case strings.HasPrefix(c, "NOT_SUP"):
		ev += ": the server requires encryption and the client cannot encrypt"
		fix = "give the client TLS and turn on its Encrypt option, or turn off Force Encryption on the server (SQL Server Configuration Manager)"
	case strings.HasPrefix(s, "NOT_SUP"):
		ev += ": the client requires encryption and the server has none"
		fix = "give the server a certificate (SQL Server Configuration Manager) or let the client connect unencrypted (Encrypt=false)"
	}
	return Finding{Finding: ServerRefusedEncryption, Evidence: ev, Fix: fix}, true
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func awaitText(c *proxy.CloseInfo) string {
	if c.Awaiting == "" {
		return ""
	}
	return fmt.Sprintf(", waiting for the %s (silent %v)", c.Awaiting, c.Silence.Round(time.Millisecond))
}

// actedScenarios maps each scenario some rule acted for to its first event.
func actedScenarios(rec *proxy.Record) map[string]proxy.FaultEvent {
	m := map[string]proxy.FaultEvent{}
	for _, e := range rec.Faults {
		if e.Acted() && e.Scenario != "" {
			if _, ok := m[e.Scenario]; !ok {
				m[e.Scenario] = e
			}
		}
	}
	return m
}

func firstActed(rec *proxy.Record, ok func(proxy.FaultEvent) bool) *proxy.FaultEvent {
	for i := range rec.Faults {
		if rec.Faults[i].Acted() && ok(rec.Faults[i]) {
			return &rec.Faults[i]
		}
	}
	return nil
}

func injectedText(e proxy.FaultEvent) string {
	s := "injected by rule " + e.Rule
	if e.Scenario != "" {
		s += " (scenario " + e.Scenario + ")"
	}
	s += ": " + e.Action + " in " + string(e.Phase)
	if e.Detail != "" {
		s += ", " + e.Detail
	}
	return s
}

func scenarioFix(name string) string {
	for _, s := range faults.Scenarios() {
		if s.Name == name {
			return s.Fix
		}
	}
	return ""
}
