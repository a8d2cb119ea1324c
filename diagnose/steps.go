package diagnose

import (
	"slices"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/record"
)

// Step is one step of a login (record.Step: the record carries its steps).
type Step = record.Step

// StepNames lists the login steps in their nominal order (TDS 7.x with TLS;
// MS-TDS §3.2.5.1 "Sent Initial PRELOGIN Packet State" onwards). TDS 8.0
// strict starts at tls.client_hello and carries PRELOGIN inside TLS.
var StepNames = []string{
	string(proxy.PhaseAccept),
	string(proxy.PhasePreloginRequest),
	string(proxy.PhasePreloginResponse),
	string(proxy.PhaseTLSClientHello),
	string(proxy.PhaseTLSServerHello),
	string(proxy.PhaseTLSClientFinished),
	string(proxy.PhaseTLSServerFinished),
	string(proxy.PhaseLogin7),
	string(proxy.PhaseLoginResponse),
}

// awaited names who sends the message that ends a step: requests come from
// the client, answers from the server. tcp.accept is the proxy's own accept,
// waited on by the client (its SYN is already in).
func awaited(p proxy.Phase) string {
	switch p {
	case proxy.PhasePreloginRequest, proxy.PhaseTLSClientHello, proxy.PhaseTLSClientFinished, proxy.PhaseLogin7:
		return string(proxy.SideClient)
	}
	return string(proxy.SideServer)
}

// loginStep reports whether p is one of StepNames.
func loginStep(p proxy.Phase) bool { return slices.Contains(StepNames, string(p)) }

// Steps derives the login steps from the record's phase marks (their times
// since accept and how long a fault held each). A step missing from the
// record (NOT_SUP has no TLS; strict has no plaintext PRELOGIN) is left out;
// the first step, tcp.accept, lasts as long as a fault held the accept.
func Steps(rec *proxy.Record) []Step {
	if rec == nil {
		return nil
	}
	marks := make([]proxy.PhaseMark, 0, len(rec.Phases))
	for _, m := range rec.Phases {
		if loginStep(m.Phase) {
			marks = append(marks, m)
		}
	}
	// Marks are appended as phases are reached; sort anyway so a record
	// from elsewhere (a log) cannot give negative steps.
	slices.SortStableFunc(marks, func(a, b proxy.PhaseMark) int { return compareDur(a.At+a.Held, b.At+b.Held) })
	out := make([]Step, 0, len(marks))
	var prev time.Duration
	for _, m := range marks {
		end := m.At + m.Held
		d := end - prev
		if d < 0 {
			d = 0
		}
		out = append(out, Step{Step: string(m.Phase), Awaited: awaited(m.Phase), Duration: d, Held: min(m.Held, d), Inferred: m.Encrypted})
		prev = end
	}
	return out
}

func compareDur(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LoginTime is the time from accept to the login response being passed on,
// and whether the login got that far.
func LoginTime(steps []Step) (total time.Duration, complete bool) {
	for _, s := range steps {
		total += s.Duration
		if s.Step == string(proxy.PhaseLoginResponse) {
			complete = true
		}
	}
	return total, complete
}

// Slowest returns the longest step, or false for none.
func Slowest(steps []Step) (Step, bool) {
	if len(steps) == 0 {
		return Step{}, false
	}
	best := steps[0]
	for _, s := range steps[1:] {
		if s.Duration > best.Duration {
			best = s
		}
	}
	return best, true
}
