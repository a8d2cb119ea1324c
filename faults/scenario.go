package faults

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// A scenario is one documented cause of "error 10054: An existing connection
// was forcibly closed by the remote host" (docs/protocol.md, "The failures
// behind error 10054"), as one complete value: its texts, the phase where it
// fails, its options (bound by name into the rule's struct, with their CLI
// flags and help), its per-connection decision, the hooks it needs at
// accept, how to recognise it in a record, its fix, and how the lab proves
// that fix. Everything else (the CLI's flags and help, the lab, hold, soak,
// probe and the metrics' labels) iterates over the table; adding a scenario
// is one entry in scenarios plus its tests.
type scenario struct {
	Name    string
	Summary string
	// Where the real failure closes the connection, in words.
	Where string
	// Phase is where the scenario acts on a connection: where the real
	// failure closes it (or, for delayed-accept, where the hold begins).
	// The lab expects the rule's injection there.
	Phase proxy.Phase
	// Fix is the remedy a user validates in the lab.
	Fix string
	// Options are the options the scenario takes.
	Options []Option

	// rule returns a fresh options struct with its defaults; the options
	// a rule gives are bound into it by name (Option.Name, opt tags).
	rule func() scenarioRule
	// recognise reads a finished record (diagnosis); evidence in words.
	recognise func(rec *proxy.Record) (evidence string, ok bool)

	// Lab is how `tdsproxy lab` shows the failure and proves the fix.
	Lab LabSetup
	// Soak are the ways internal/soak hits connections with it.
	Soak []SoakCase
	// Probe is the server property `tdsproxy probe` judges it by.
	Probe ProbeCheck
	// ByElimination: its recogniser matches a close that other scenarios
	// explain more specifically (cipher-mismatch: any close right after
	// the ClientHello), so a diagnosis drops it when another scenario is
	// recognised on the same record.
	ByElimination bool
}

// scenarioRule is a scenario's options, bound for one rule.
type scenarioRule interface {
	// check validates the options together, after binding; given reports
	// whether the rule wrote an option.
	check(given func(name string) bool) error
	// conn returns the rule's state for one connection. draw is the
	// connection's own draw in [0,1) for a rate (taken for every rule,
	// used or not, so that a seed replays the same decisions).
	conn(draw float64) scenarioConn
}

// scenarioConn is a scenario rule's state on one connection; decide is
// asked at every phase event while the rule's match holds.
type scenarioConn interface {
	decide(c *connRule, ev *proxy.Event, rec *proxy.Record) proxy.Verdict
}

// acceptActor is implemented by a scenario rule that may act at tcp.accept,
// before any byte is read (so match keys that need the client's bytes are
// refused).
type acceptActor interface {
	actsAtAccept() bool
}

// acceptGater is implemented by a scenario rule that may pause the listener
// itself before accept (proxy.AcceptGate): backlog > 0 means it does, with
// accepts paused for pause each.
type acceptGater interface {
	acceptGate() (pause time.Duration, backlog int)
}

// Scenario names.
const (
	ScenarioProtocolMismatch = "protocol-mismatch"
	ScenarioCipherMismatch   = "cipher-mismatch"
	ScenarioDHEEnabled       = "dhe-enabled"
	ScenarioWeakCertHash     = "weak-cert-hash"
	ScenarioDHELeadingZero   = "dhe-leading-zero"
	ScenarioDelayedAccept    = "delayed-accept"
)

// ProbeCheck names the property of a server that `tdsproxy probe` weighs
// to say whether the server is exposed to a scenario (docs/probe.md). The
// probe implements one judgement per check, so a new scenario either
// reuses a check or brings a new one; "" means the probe cannot judge it.
type ProbeCheck string

// The probe's checks.
const (
	// ProbeVersions: the TLS versions accepted, one version per hello.
	ProbeVersions ProbeCheck = "versions"
	// ProbeSuites: the cipher suites accepted against known clients'.
	ProbeSuites ProbeCheck = "suites"
	// ProbeDHESuites: whether any TLS_DHE_* suite is accepted.
	ProbeDHESuites ProbeCheck = "dhe-suites"
	// ProbeDHESecret: how the server encodes a DHE secret's leading zero.
	ProbeDHESecret ProbeCheck = "dhe-secret"
	// ProbeCertHash: the certificate chain's signature hashes.
	ProbeCertHash ProbeCheck = "cert-hash"
	// ProbeTiming: connect and PRELOGIN round-trip times.
	ProbeTiming ProbeCheck = "timing"
)

// scenarios is the table, in the documented order.
var scenarios = []*scenario{
	protocolMismatch,
	cipherMismatch,
	dheScenario(ScenarioDHEEnabled, "TLS_DHE_* suites are enabled and the two Windows versions handle the DH secret differently",
		"remove every TLS_DHE_* suite from the cipher suite policy", "always", dheEnabledLab, ProbeDHESuites),
	weakCertHash,
	dheScenario(ScenarioDHELeadingZero, "a DHE shared secret starting with a zero byte (about 1 handshake in 256) is encoded differently by patched and unpatched Windows",
		"install the TLS_DHE leading-zero fix (KB4537806/KB4540670) on both sides, or remove TLS_DHE_* suites", "natural", dheLeadingZeroLab, ProbeDHESecret),
	delayedAccept,
}

func scenarioByName(name string) (*scenario, bool) {
	for _, s := range scenarios {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return nil, false
}

// ScenarioNames lists the scenarios in the documented order.
func ScenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.Name
	}
	return out
}

// ScenarioInfo describes a scenario for help texts, the CLI, the lab and
// the probe.
type ScenarioInfo struct {
	Name, Summary, Where, Fix string
	// Phase is where the scenario acts (scenario.Phase).
	Phase proxy.Phase
	// Options are the scenario's options with their flags and help.
	Options []Option
	// Lab is how the lab shows the failure and proves the fix.
	Lab LabSetup
	// Soak are the ways the soak test hits connections with it.
	Soak []SoakCase
	// Probe is the property `tdsproxy probe` judges it by.
	Probe ProbeCheck
	// ByElimination: a diagnosis drops it when another scenario is
	// recognised on the same record (scenario.ByElimination).
	ByElimination bool
}

// Scenarios describes every scenario, in the documented order.
func Scenarios() []ScenarioInfo {
	out := make([]ScenarioInfo, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.info()
	}
	return out
}

// ScenarioByName describes the named scenario (case-insensitive).
func ScenarioByName(name string) (ScenarioInfo, bool) {
	s, ok := scenarioByName(strings.TrimSpace(name))
	if !ok {
		return ScenarioInfo{}, false
	}
	return s.info(), true
}

// info describes s; its slices and maps are copies, so a caller cannot
// change the table.
func (s *scenario) info() ScenarioInfo {
	lab := s.Lab
	lab.Options = maps.Clone(lab.Options)
	lab.AfterFor = maps.Clone(lab.AfterFor)
	lab.NoteFor = maps.Clone(lab.NoteFor)
	lab.Cannot = maps.Clone(lab.Cannot)
	lab.Expect.Errors = maps.Clone(lab.Expect.Errors)
	soak := slices.Clone(s.Soak)
	for i := range soak {
		soak[i].Options = maps.Clone(soak[i].Options)
	}
	return ScenarioInfo{Name: s.Name, Summary: s.Summary, Where: s.Where, Fix: s.Fix, Phase: s.Phase,
		Options: slices.Clone(s.Options), Lab: lab, Soak: soak, Probe: s.Probe,
		ByElimination: s.ByElimination}
}

// Finding is a scenario recognised in a connection record.
type Finding struct {
	Scenario string `json:"scenario"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
}

// Diagnose lists the scenarios whose symptoms a finished connection shows.
// It reads only the record, so it works on connections no rule touched.
func Diagnose(rec *proxy.Record) []Finding {
	var out []Finding
	for _, s := range scenarios {
		if ev, ok := s.recognise(rec); ok {
			out = append(out, Finding{Scenario: s.Name, Evidence: ev, Fix: s.Fix})
		}
	}
	return out
}

// closedAfterHello: the server (or the proxy playing it) refused the
// ClientHello, before any ServerHello: how Schannel fails scenarios 1, 2
// and 4 (a close), and how other stacks do (a fatal alert, then a close).
func closedAfterHello(r *proxy.Record) bool {
	if r.Close == nil || r.Close.Phase != proxy.PhaseTLSClientHello || r.TLS == nil || r.TLS.ServerHello != nil {
		return false
	}
	// A server that answers the ClientHello with a fatal alert refused it,
	// whichever FIN reaches the proxy first: the client closes as soon as it
	// reads the alert (RFC 8446 §6.2), and its close can win that race.
	return r.Close.By != proxy.SideClient || serverAlerted(r)
}

// serverAlerted reports whether the server sent a fatal alert.
func serverAlerted(r *proxy.Record) bool {
	for _, a := range r.TLS.Alerts {
		if a.From == proxy.SideServer && a.Level == "fatal" {
			return true
		}
	}
	return false
}

func skip(why string) proxy.Verdict {
	return proxy.Verdict{Action: proxy.ActionSkip, Detail: "cannot evaluate: " + why}
}

func pass(why string) proxy.Verdict {
	return proxy.Verdict{Action: proxy.ActionPass, Detail: why}
}
