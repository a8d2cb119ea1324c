package faults

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// RuleSpec is a fault rule as written in a config file, on the command line
// or in the admin API: a scenario (one of Scenarios) or a generic action (one
// of StageKinds), a match, and options. Field names are the keys users write.
type RuleSpec struct {
	// Name identifies the rule in records, logs and the API; unique per proxy.
	Name string `json:"name"`
	// Scenario is a documented 10054 scenario (see Scenarios). Exactly one
	// of Scenario and Action is set.
	Scenario string `json:"scenario,omitempty"`
	// Action is a generic fault (see StageKinds): latency, bandwidth, ...
	Action string `json:"action,omitempty"`
	// Direction applies a generic action to "upstream" (client to server),
	// "downstream" (server to client) or "both" (the default).
	Direction string `json:"direction,omitempty"`
	// Phase is when a generic action starts; default tcp.accept (at once).
	Phase string `json:"phase,omitempty"`
	// Options are the scenario's or the action's options. They are kept as
	// strings; JSON and YAML may write a value as a string, a number or
	// true/false (OptionValues.UnmarshalJSON), as the scenario expects.
	Options OptionValues `json:"options,omitempty"`
	// Match selects the connections the rule applies to; empty matches all.
	Match Match `json:"match,omitzero"`
	// Close is how an injected close looks: "rst" (default: the client sees
	// 10054 / connection reset), "fin", or "alert:NAME" (a fatal TLS alert,
	// e.g. alert:handshake_failure, then FIN).
	Close string `json:"close,omitempty"`
	// Seed makes the rule's random draws reproducible; 0 picks one at
	// random (reported by the API and logs so a run can be replayed).
	Seed uint64 `json:"seed,omitempty"`
}

// Match selects connections. Every set field must hold.
type Match struct {
	// Clients is a list of client addresses or CIDR prefixes.
	Clients []string `json:"clients,omitempty"`
	// Instance matches PRELOGIN's instance name (case-insensitive).
	Instance string `json:"instance,omitempty"`
	// SNI matches the ClientHello's server_name (case-insensitive).
	SNI string `json:"sni,omitempty"`
	// Protocol is "tds7" (PRELOGIN first) or "strict" (TDS 8.0, TLS first).
	Protocol string `json:"protocol,omitempty"`
	// Probability is the chance a connection is hit, 0..1; unset means 1.
	Probability *float64 `json:"probability,omitempty"`
	// First hits only the first N connections of the proxy (since the rule
	// was set).
	First uint64 `json:"first,omitempty"`
	// Every hits every Nth connection (the Nth, 2Nth, ...).
	Every uint64 `json:"every,omitempty"`
	// Window makes the rule active for a while, periodically.
	Window *Window `json:"window,omitempty"`
}

// Window is "active for For, every Every", counted from when the rule was
// set: e.g. {every: 5m, for: 30s}.
type Window struct {
	Every Duration `json:"every"`
	For   Duration `json:"for"`
}

// closeStyle parses "rst", "fin" or "alert:NAME".
func closeStyle(s string) (proxy.CloseStyle, uint8, error) {
	switch {
	case s == "" || strings.EqualFold(s, "rst"):
		return proxy.StyleRST, 0, nil
	case strings.EqualFold(s, "fin"):
		return proxy.StyleFIN, 0, nil
	}
	if name, ok := strings.CutPrefix(strings.ToLower(s), "alert:"); ok {
		if d, ok := tlsbridge.AlertByName(name); ok {
			return proxy.StyleAlert, d, nil
		}
		if n, err := strconv.ParseUint(name, 10, 8); err == nil {
			return proxy.StyleAlert, uint8(n), nil
		}
		return "", 0, fmt.Errorf("%q is not a TLS alert name (e.g. handshake_failure, protocol_version, insufficient_security)", name)
	}
	return "", 0, fmt.Errorf("%q is not rst, fin or alert:NAME", s)
}

// rule is a compiled RuleSpec.
type rule struct {
	spec     RuleSpec
	scen     *scenario    // nil for a generic action
	sr       scenarioRule // the scenario's options, bound
	stage    StageSpec
	tds      *tdsRule // a TDS fault (tds_fault.go); nil otherwise
	dirs     []proxy.Direction
	phase    proxy.Phase
	clients  []netip.Prefix
	prob     float64
	style    proxy.CloseStyle
	alert    uint8
	rand     *Rand
	setAt    time.Time
	protocol string
	// seen counts the connections offered to the rule since it was set,
	// for match.first and match.every.
	seen *atomic.Uint64
}

// compile validates spec; every error names the key at fault.
func compile(spec RuleSpec, now time.Time) (*rule, error) {
	r := &rule{spec: spec, prob: 1, setAt: now, phase: proxy.PhaseAccept}
	if err := CheckRuleName(spec.Name); err != nil {
		return nil, err
	}
	var err error
	if r.style, r.alert, err = closeStyle(spec.Close); err != nil {
		return nil, &keyError{key: "close", err: err}
	}
	switch {
	case spec.Scenario != "" && spec.Action != "":
		return nil, errors.New("scenario, action: set one, not both")
	case spec.Scenario != "":
		err = r.compileScenario(spec)
	case IsTDSFault(spec.Action):
		err = r.compileTDS(spec)
	case spec.Action != "":
		err = r.compileAction(spec)
	default:
		return nil, errors.New("scenario or action: one is required")
	}
	if err != nil {
		return nil, err
	}
	if err := r.compileMatch(spec.Match); err != nil {
		return nil, err
	}
	r.rand = NewRand(spec.Seed)
	r.spec.Seed = r.rand.Seed()
	r.seen = new(atomic.Uint64)
	return r, nil
}

// compileScenario binds a scenario's options.
func (r *rule) compileScenario(spec RuleSpec) error {
	sc, ok := scenarioByName(spec.Scenario)
	if !ok {
		return keyed("scenario", "%q is not one of %s", spec.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	r.scen = sc
	var err error
	if r.sr, err = sc.bind(spec.Options); err != nil {
		return err
	}
	if spec.Direction != "" || spec.Phase != "" {
		return errors.New("direction, phase: only for generic actions; a scenario acts at its own phase")
	}
	return nil
}

// compileAction parses a generic action's stage, directions and phase.
func (r *rule) compileAction(spec RuleSpec) error {
	var err error
	if r.stage, err = ParseStage(spec.Action, spec.Options); err != nil {
		var oe *OptionError
		if errors.As(err, &oe) {
			return &keyError{key: "options." + oe.Option, err: err}
		}
		return &keyError{key: "action", err: err}
	}
	switch strings.ToLower(spec.Direction) {
	case "", "both":
		r.dirs = []proxy.Direction{proxy.ClientToServer, proxy.ServerToClient}
	case "upstream", "client_to_server":
		r.dirs = []proxy.Direction{proxy.ClientToServer}
	case "downstream", "server_to_client":
		r.dirs = []proxy.Direction{proxy.ServerToClient}
	default:
		return keyed("direction", "%q is not upstream, downstream or both", spec.Direction)
	}
	if spec.Phase != "" {
		r.phase = proxy.Phase(spec.Phase)
		if !r.phase.Valid() || r.phase == proxy.PhaseClosed {
			return keyed("phase", "%q is not one of %s", spec.Phase, phaseList())
		}
	}
	return nil
}

// compileMatch checks the match keys.
func (r *rule) compileMatch(m Match) error {
	for i, c := range m.Clients {
		p, err := parsePrefix(c)
		if err != nil {
			return &keyError{key: fmt.Sprintf("match.clients[%d]", i), err: err}
		}
		r.clients = append(r.clients, p)
	}
	if m.Probability != nil {
		if p := *m.Probability; p < 0 || p > 1 || p != p {
			return keyed("match.probability", "%v is not between 0 and 1", p)
		}
		r.prob = *m.Probability
	}
	switch strings.ToLower(m.Protocol) {
	case "":
	case "tds7", "tds7.x":
		r.protocol = "tds7"
	case "strict", "tds8", "tds8-strict", "tds8.0":
		r.protocol = "tds8-strict"
	default:
		return keyed("match.protocol", "%q is not tds7 or strict", m.Protocol)
	}
	if w := m.Window; w != nil {
		if w.Every <= 0 || w.For <= 0 || w.For > w.Every {
			return keyed("match.window", "need 0 < for (%v) <= every (%v)", time.Duration(w.For), time.Duration(w.Every))
		}
	}
	// Connection-level matches that need the client's first bytes cannot
	// hold for a fault that acts at accept, before anything is read.
	if (m.Instance != "" || m.SNI != "" || r.protocol != "") && r.actsAtAccept() {
		return keyed("match", "instance, sni and protocol are unknown at accept; this rule acts at tcp.accept")
	}
	return nil
}

// actsAtAccept reports whether the rule acts at tcp.accept, before any
// byte is read: a generic action starting there, or a scenario whose
// accept hook says so.
func (r *rule) actsAtAccept() bool {
	if r.scen != nil {
		a, ok := r.sr.(acceptActor)
		return ok && a.actsAtAccept()
	}
	return r.phase == proxy.PhaseAccept
}

// ruleNameRE is what a rule name may be: the same as a proxy name
// (configs' proxies[i].name), since it appears in URL paths, metric labels,
// log fields and tdsproxy top's terminal output.
var ruleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckRuleName checks a rule's name: 1 to 64 letters, digits, '.', '_'
// and '-', starting with a letter or digit. The error names the key.
func CheckRuleName(name string) error {
	switch {
	case name == "":
		return &keyError{key: "name", err: errors.New("must not be empty")}
	case !ruleNameRE.MatchString(name):
		shown := name
		if len(shown) > 80 {
			shown = shown[:80] + "..."
		}
		return &keyError{key: "name", err: fmt.Errorf("%q may hold only letters, digits, '.', '_' and '-' (1 to 64, not starting with a symbol)", shown)}
	}
	return nil
}

// parsePrefix reads an address or CIDR prefix. An IPv4-mapped IPv6 one
// (::ffff:127.0.0.1, ::ffff:10.0.0.0/104) becomes the IPv4 prefix it
// stands for: staticMatch compares unmapped client addresses, so the
// mapped form would never match (RFC 4291 §2.5.5.2).
func parsePrefix(s string) (netip.Prefix, error) {
	bad := fmt.Errorf("%q is not an address or CIDR prefix", s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, bad
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, bad
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix needs at least /96 (write the IPv4 prefix instead)", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func phaseList() string {
	var s []string
	for _, p := range proxy.Phases {
		if p != proxy.PhaseClosed {
			s = append(s, string(p))
		}
	}
	return strings.Join(s, ", ")
}

// sameRule reports whether next is prev unchanged, so that prev's state
// (random stream, connection count, window start) carries over a rule-set
// change: editing one rule must not restart another's "first 10".
func sameRule(prev *rule, next RuleSpec) bool {
	if next.Seed == 0 {
		next.Seed = prev.spec.Seed
	}
	return reflect.DeepEqual(prev.spec, next)
}

// staticMatch evaluates what is known at accept; n is the connection's
// number for this rule, from 1. draw is the connection's
// probability draw for this rule, consumed whether or not it is needed so
// that a seed replays the same decisions.
func (r *rule) staticMatch(ci proxy.ConnInfo, n uint64, draw float64) (bool, string) {
	m := r.spec.Match
	if len(r.clients) > 0 {
		a := ci.Client.Addr().Unmap()
		if !slices.ContainsFunc(r.clients, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return false, "client address"
		}
	}
	if m.First > 0 && n > m.First {
		return false, "first"
	}
	if m.Every > 0 && n%m.Every != 0 {
		return false, "every"
	}
	if w := m.Window; w != nil {
		since := ci.At.Sub(r.setAt)
		if since < 0 || since%time.Duration(w.Every) >= time.Duration(w.For) {
			return false, "window"
		}
	}
	if draw >= r.prob {
		return false, "probability"
	}
	return true, ""
}

// dynamicMatch evaluates what the connection has revealed so far. known is
// false while a needed fact is not yet visible.
func (r *rule) dynamicMatch(rec *proxy.Record) (ok, known bool) {
	m := r.spec.Match
	if r.protocol != "" {
		if rec.Protocol == "" {
			return false, false
		}
		if string(rec.Protocol) != r.protocol {
			return false, true
		}
	}
	if m.Instance != "" {
		if rec.Prelogin == nil || rec.Prelogin.Client == nil {
			return false, false
		}
		if !strings.EqualFold(rec.Prelogin.Client.Instance, m.Instance) {
			return false, true
		}
	}
	if m.SNI != "" {
		if rec.TLS == nil || rec.TLS.ClientHello == nil {
			return false, false
		}
		if !strings.EqualFold(rec.TLS.ClientHello.SNI, m.SNI) {
			return false, true
		}
	}
	return true, true
}

// RuleSpecsFromMaps decodes a proxy's "faults" list from a config file and
// validates it. Errors read "faults[j]: key: what is wrong".
func RuleSpecsFromMaps(ms []map[string]any) ([]RuleSpec, error) {
	specs := make([]RuleSpec, 0, len(ms))
	for j, m := range ms {
		s, err := RuleSpecFromMap(m)
		if err != nil {
			return nil, ruleError(j, "", err)
		}
		specs = append(specs, s)
	}
	if err := Compile(specs); err != nil {
		return nil, err
	}
	return specs, nil
}
