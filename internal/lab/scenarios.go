package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// The delayed-accept row: the proxy holds each accepted connection for
// acceptDelay; the client before the fix gives up after beforeTimeout
// seconds of silence, the one after waits afterTimeout. Short, so the
// whole lab stays within seconds, and far enough apart that a loaded
// machine does not blur them.
const (
	acceptDelay   = 3 * time.Second
	beforeTimeout = 1
	afterTimeout  = 5
)

// The cipher-mismatch row: the emulated server allows only serverSuite;
// the client before the fix offers only clientSuite.
const (
	serverSuite = tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
	clientSuite = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
)

// setup is a scenario's server side before the fix: the emulator's
// configuration and the rule that plays the failing server.
type setup struct {
	rule faults.RuleSpec
	emu  emulator.Config
	// server describes the upstream and the rule for a row.
	server string
}

// scenarioSetup returns the server side of a scenario before the fix.
func scenarioSetup(name string) (setup, error) {
	rule := faults.RuleSpec{Name: name, Scenario: name, Close: "rst"}
	switch name {
	case faults.ScenarioProtocolMismatch:
		rule.Options = map[string]string{"server_tls": "1.2"}
		return setup{rule: rule, emu: emulator.Config{TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12},
			server: "emulator with TLS 1.2 only; rule server_tls=1.2"}, nil
	case faults.ScenarioCipherMismatch:
		n := tlsbridge.CipherSuiteName(serverSuite)
		rule.Options = map[string]string{"server_ciphers": n}
		return setup{rule: rule, emu: emulator.Config{TLSMax: tls.VersionTLS12, CipherSuites: []uint16{serverSuite}},
			server: "emulator allowing only " + n + "; rule server_ciphers=" + n}, nil
	case faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero:
		// rate=always: every DHE handshake fails. For dhe-leading-zero that
		// forces what happens by itself in about 1 handshake in 256
		// (rate=natural).
		rule.Options = map[string]string{"rate": "always"}
		return setup{rule: rule, emu: emulator.Config{TLSMax: tls.VersionTLS12},
			server: "emulator (Go TLS: no DHE); rule rate=always"}, nil
	case faults.ScenarioWeakCertHash:
		cert, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{CommonName: "localhost",
			DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, Hash: "md5"})
		if err != nil {
			return setup{}, fmt.Errorf("lab: MD5 certificate: %w", err)
		}
		rule.Options = map[string]string{"cert_hash": "md5"}
		return setup{rule: rule, emu: emulator.Config{TLSMax: tls.VersionTLS12, Certificate: &cert},
			server: "emulator serving a certificate signed with MD5-RSA; rule cert_hash=md5"}, nil
	case faults.ScenarioDelayedAccept:
		rule.Close = ""
		rule.Options = map[string]string{"accept_delay": acceptDelay.String()}
		return setup{rule: rule, emu: emulator.Config{},
			server: "emulator; rule accept_delay=" + acceptDelay.String()}, nil
	}
	return setup{}, fmt.Errorf("%w %q", ErrUnknownScenario, name)
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

// goRow runs before and after with go-mssqldb. The after client meets the
// same armed rule when keepRule is set (the fix is on the client side), or
// afterEmu with no rule (the fix is on the server side).
func (r *runner) goRow(ctx context.Context, row *Row, before, after goClient, keepRule bool, afterEmu *emulator.Config, afterServer string) bool {
	s, err := scenarioSetup(row.Scenario)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, err.Error()
		return false
	}
	row.Client, row.Rule = goClientName, s.rule
	row.Before = r.runGo(ctx, s.emu, []faults.RuleSpec{s.rule}, s.server, before)
	if keepRule {
		row.After = r.runGo(ctx, s.emu, []faults.RuleSpec{s.rule}, s.server, after)
	} else {
		row.After = r.runGo(ctx, *afterEmu, nil, afterServer, after)
	}
	return true
}

func (r *runner) protocolMismatch(ctx context.Context, row *Row) {
	if !r.goRow(ctx, row,
		goClient{TLSMin: tls.VersionTLS10, TLSMax: tls.VersionTLS11},
		goClient{TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12},
		true, nil, "") {
		return
	}
	row.Note = "The rule plays a TLS 1.2-only server and closes when the ClientHello offers no TLS 1.2: the client " +
		"before the fix offers TLS 1.0 and 1.1 only (an old driver). After the fix (a TLS 1.2 client) the same rule lets it through."
	judge(row, expect{phase: proxy.PhaseTLSClientHello, by: proxy.SideProxy, kind: proxy.CloseRST,
		errText: []string{"TLS Handshake failed", "connection reset by peer"}})
}

func (r *runner) cipherMismatch(ctx context.Context, row *Row) {
	if !r.goRow(ctx, row,
		goClient{TLSMax: tls.VersionTLS12, Suites: []uint16{clientSuite}},
		goClient{TLSMax: tls.VersionTLS12, Suites: []uint16{serverSuite}},
		true, nil, "") {
		return
	}
	row.Note = fmt.Sprintf("The rule plays a server whose policy allows only %s; the client before the fix offers only %s "+
		"(TLS 1.2, where Go lets a client choose its suites). After the fix the client offers the server's suite and the same rule lets it through.",
		tlsbridge.CipherSuiteName(serverSuite), tlsbridge.CipherSuiteName(clientSuite))
	judge(row, expect{phase: proxy.PhaseTLSClientHello, by: proxy.SideProxy, kind: proxy.CloseRST,
		errText: []string{"TLS Handshake failed", "connection reset by peer"}})
}

func (r *runner) weakCertHash(ctx context.Context, row *Row) {
	// After the fix the certificate is re-issued with SHA-256 (the
	// emulator's own), and no rule is needed: a SHA-256 certificate is what
	// every client's signature_algorithms list.
	after := emulator.Config{TLSMax: tls.VersionTLS12}
	if !r.goRow(ctx, row, goClient{}, goClient{}, false, &after, "emulator serving its certificate signed with SHA256-RSA; no rule") {
		return
	}
	row.Note = "The emulator serves a certificate signed with MD5; the rule closes at the ClientHello because go-mssqldb " +
		"(Go crypto/tls) lists no RSA/MD5 in signature_algorithms, as Schannel does with a certificate it cannot use under TLS 1.2. " +
		"After the fix (certificate re-issued with SHA-256) the record shows " + certAlg(row.After.Record) + "."
	judge(row, expect{phase: proxy.PhaseTLSClientHello, by: proxy.SideProxy, kind: proxy.CloseRST,
		errText: []string{"TLS Handshake failed", "connection reset by peer"}})
}

func certAlg(rec *proxy.Record) string {
	if rec == nil || rec.TLS == nil || len(rec.TLS.Certificates) == 0 {
		return "no certificate"
	}
	return "a certificate signed with " + rec.TLS.Certificates[0].SignatureAlgorithm
}

func (r *runner) delayedAccept(ctx context.Context, row *Row) {
	s, err := scenarioSetup(row.Scenario)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, err.Error()
		return
	}
	row.Client, row.Rule = goClientName, s.rule
	// One proxy for both: the delay holds each connection in its own
	// goroutine, so the fixed client does not wait behind the first.
	e, err := startEnv(envConfig{Emulator: s.emu, Rules: []faults.RuleSpec{s.rule}, Logger: r.log})
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, "lab: "+err.Error()
		return
	}
	defer e.close()
	row.Before = goClient{ConnTimeout: beforeTimeout}.run(ctx, e)
	row.Before.Server = s.server
	row.After = goClient{ConnTimeout: afterTimeout}.run(ctx, e)
	row.After.Server = s.server
	row.Note = fmt.Sprintf("The proxy accepts, then holds each connection for %v before talking to the server, as a "+
		"starved SQL Server does. The client before the fix waits %ds for the PRELOGIN response and gives up; after the "+
		"fix (a %ds timeout; retries also help) it waits out the delay and logs in. Other forms: backlog (SYNs unanswered), "+
		"reject, prelogin_delay, login_delay.", acceptDelay, beforeTimeout, afterTimeout)
	judge(row, expect{phase: proxy.PhaseAccept, by: proxy.SideClient, errText: []string{"i/o timeout"}, afterDelayed: true})
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

// injecting reports whether a fault event changed the connection (as
// opposed to a rule that looked and let it pass).
func injecting(ev proxy.FaultEvent) bool {
	switch ev.Action {
	case "pass", "skip", "armed", "":
		return false
	}
	return true
}

func firstInjection(rec *proxy.Record, rule string) *proxy.FaultEvent {
	if rec == nil {
		return nil
	}
	for i, ev := range rec.Faults {
		if ev.Rule == rule && injecting(ev) {
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
	var problems []string
	switch {
	case b.Skipped != "":
		problems = append(problems, "before the fix: not run: "+b.Skipped)
	case b.Connected:
		problems = append(problems, "before the fix: the client connected")
	case b.Record == nil:
		problems = append(problems, "before the fix: no proxy record ("+b.Error+")")
	default:
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
		for _, s := range x.errText {
			if !strings.Contains(b.Error, s) {
				problems = append(problems, fmt.Sprintf("before the fix: the client's error %q lacks %q", b.Error, s))
			}
		}
	}
	switch {
	case !a.Connected:
		problems = append(problems, "after the fix: the client did not connect: "+a.Error)
	case a.Record == nil:
		problems = append(problems, "after the fix: no proxy record")
	default:
		if ev := firstInjection(a.Record, row.Rule.Name); ev != nil && !(x.afterDelayed && ev.Action == "delay") {
			problems = append(problems, fmt.Sprintf("after the fix: the rule still injected %s at %s", ev.Action, ev.Phase))
		}
		if x.after != nil {
			if p := x.after(a); p != "" {
				problems = append(problems, "after the fix: "+p)
			}
		}
	}
	if len(problems) > 0 {
		row.Status, row.Problem = StatusUnexpected, strings.Join(problems, "; ")
		return
	}
	row.Status = StatusOK
}
