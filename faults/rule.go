package faults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
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
	// Options are the scenario's or the action's options, as strings.
	Options map[string]string `json:"options,omitempty"`
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

// Duration is a time.Duration written as "250ms", "5m" in JSON and YAML.
type Duration time.Duration

// MarshalText writes d as Go's duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go's duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 250ms or 5m", b)
	}
	*d = Duration(v)
	return nil
}

// ParseRuleSpec decodes one rule from JSON (the admin API, or a config
// entry re-encoded as JSON). Unknown keys are errors that name the key.
func ParseRuleSpec(b []byte) (RuleSpec, error) {
	var r RuleSpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, jsonError(err)
	}
	return r, nil
}

// RuleSpecFromMap decodes a rule from the generic map a YAML or viper
// loader produces.
func RuleSpecFromMap(m map[string]any) (RuleSpec, error) {
	b, err := json.Marshal(normalise(m))
	if err != nil {
		return RuleSpec{}, err
	}
	return ParseRuleSpec(b)
}

// normalise turns YAML's map[any]any and scalar option values into what
// RuleSpec's JSON form expects (options are strings).
func normalise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k == "options" {
				if om, ok := e.(map[string]any); ok {
					so := make(map[string]any, len(om))
					for ok, ov := range om {
						so[ok] = fmt.Sprint(ov)
					}
					out[k] = so
					continue
				}
			}
			out[k] = normalise(e)
		}
		return out
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = e
		}
		return normalise(m)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	}
	return v
}

func jsonError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Errorf("%s: expected %s, got %s", ute.Field, ute.Type, ute.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown key", strings.Trim(f, `"`))
	}
	return errors.New(strings.TrimPrefix(msg, "json: "))
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
	scen     *scenario // nil for a generic action
	params   scenarioParams
	stage    StageSpec
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
	if spec.Name == "" {
		return nil, errors.New("name: must not be empty")
	}
	var err error
	if r.style, r.alert, err = closeStyle(spec.Close); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	switch {
	case spec.Scenario != "" && spec.Action != "":
		return nil, errors.New("scenario, action: set one, not both")
	case spec.Scenario != "":
		sc, ok := scenarioByName(spec.Scenario)
		if !ok {
			return nil, fmt.Errorf("scenario: %q is not one of %s", spec.Scenario, strings.Join(ScenarioNames(), ", "))
		}
		r.scen = sc
		if r.params, err = sc.parse(spec.Options); err != nil {
			return nil, fmt.Errorf("options.%w", err)
		}
		if spec.Direction != "" || spec.Phase != "" {
			return nil, errors.New("direction, phase: only for generic actions; a scenario acts at its own phase")
		}
	case spec.Action != "":
		if r.stage, err = ParseStage(spec.Action, spec.Options); err != nil {
			var oe *OptionError
			if errors.As(err, &oe) {
				return nil, fmt.Errorf("options.%s: %w", oe.Option, err)
			}
			return nil, fmt.Errorf("action: %w", err)
		}
		switch strings.ToLower(spec.Direction) {
		case "", "both":
			r.dirs = []proxy.Direction{proxy.ClientToServer, proxy.ServerToClient}
		case "upstream", "client_to_server":
			r.dirs = []proxy.Direction{proxy.ClientToServer}
		case "downstream", "server_to_client":
			r.dirs = []proxy.Direction{proxy.ServerToClient}
		default:
			return nil, fmt.Errorf("direction: %q is not upstream, downstream or both", spec.Direction)
		}
		if spec.Phase != "" {
			r.phase = proxy.Phase(spec.Phase)
			if !r.phase.Valid() || r.phase == proxy.PhaseClosed {
				return nil, fmt.Errorf("phase: %q is not one of %s", spec.Phase, phaseList())
			}
		}
	default:
		return nil, errors.New("scenario or action: one is required")
	}
	m := spec.Match
	for i, c := range m.Clients {
		p, err := parsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("match.clients[%d]: %w", i, err)
		}
		r.clients = append(r.clients, p)
	}
	if m.Probability != nil {
		if p := *m.Probability; p < 0 || p > 1 || p != p {
			return nil, fmt.Errorf("match.probability: %v is not between 0 and 1", p)
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
		return nil, fmt.Errorf("match.protocol: %q is not tds7 or strict", m.Protocol)
	}
	if w := m.Window; w != nil {
		if w.Every <= 0 || w.For <= 0 || w.For > w.Every {
			return nil, fmt.Errorf("match.window: need 0 < for (%v) <= every (%v)", time.Duration(w.For), time.Duration(w.Every))
		}
	}
	// Connection-level matches that need the client's first bytes cannot
	// hold for a fault that acts at accept, before anything is read.
	if (m.Instance != "" || m.SNI != "" || r.protocol != "") && r.actsAtAccept() {
		return nil, errors.New("match: instance, sni and protocol are unknown at accept; this rule acts at tcp.accept")
	}
	r.rand = NewRand(spec.Seed)
	r.spec.Seed = r.rand.Seed()
	r.seen = new(atomic.Uint64)
	return r, nil
}

func (r *rule) actsAtAccept() bool {
	if r.scen != nil {
		return r.scen.atAccept(r.params)
	}
	return r.phase == proxy.PhaseAccept
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
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
		if rec.Protocol != r.protocol {
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
			return nil, &RuleError{Index: j, Err: err}
		}
		specs = append(specs, s)
	}
	if err := Compile(specs); err != nil {
		return nil, err
	}
	return specs, nil
}
