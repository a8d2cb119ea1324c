package faults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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

// UnmarshalJSON reads a match's window, naming the key at fault
// (match.window.every) and refusing unknown keys.
func (w *Window) UnmarshalJSON(b []byte) error {
	var raw struct {
		Every *string `json:"every"`
		For   *string `json:"for"`
	}
	if err := strictDecode(b, &raw); err != nil {
		return prefixKey("match.window", err)
	}
	for _, f := range []struct {
		key string
		s   *string
		d   *Duration
	}{{"every", raw.Every, &w.Every}, {"for", raw.For, &w.For}} {
		if f.s == nil {
			continue
		}
		if err := f.d.UnmarshalText([]byte(*f.s)); err != nil {
			return &keyError{key: "match.window." + f.key, err: err}
		}
	}
	return nil
}

// UnmarshalJSON reads a rule's match, refusing unknown keys and naming
// every key at fault by its path (match.first, match.window.every), so a
// merge patch's nested mistake reads as the key the user wrote.
func (m *Match) UnmarshalJSON(b []byte) error {
	type plain Match // no UnmarshalJSON: no recursion
	var p plain
	if err := strictDecode(b, &p); err != nil {
		var ke *keyError
		if errors.As(err, &ke) && strings.HasPrefix(ke.key, "match.") {
			return err // already a full path (match.window.*)
		}
		return prefixKey("match", err)
	}
	*m = Match(p)
	return nil
}

// OptionValues are a rule's options by name. In JSON (and so in YAML,
// which reaches the parser as JSON) a value may be a string, a number or
// true/false: {"reject": true}, {"server_tls": 1.2} and {"server_tls":
// "1.2"} are the same rule. Anything else is an error naming the key.
type OptionValues map[string]string

// UnmarshalJSON reads the options object; see OptionValues.
func (o *OptionValues) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return &keyError{key: "options", err: errors.New("must be an object of option: value, e.g. {\"server_tls\": \"1.2\"}")}
	}
	if raw == nil {
		*o = nil
		return nil
	}
	out := make(OptionValues, len(raw))
	for k, v := range raw {
		s, err := optionString(v)
		if err != nil {
			return &keyError{key: "options." + k, err: err}
		}
		out[k] = s
	}
	*o = out
	return nil
}

// optionString is an option value as the scenario parsers read it.
func optionString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", fmt.Errorf("%v is not a number", x)
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case float32:
		return optionString(float64(x))
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case nil:
		return "", errors.New("has no value (write a string, a number or true/false)")
	}
	return "", errors.New("must be a string, a number or true/false, not a list or an object")
}

// keyError is a problem with one key of a rule; Error reads "key: what".
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// prefixKey puts parent in front of the key an error names ("first:
// ..." under match becomes "match.first: ...").
func prefixKey(parent string, err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return &keyError{key: parent + "." + ke.key, err: ke.err}
	}
	return &keyError{key: parent, err: err}
}

// strictDecode decodes exactly one JSON value into v, refusing unknown
// keys; errors name the key (keyError) in the user's words.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	switch _, err := dec.Token(); {
	case err == nil:
		return errors.New("more than one JSON value: send one object")
	case err != io.EOF:
		return fmt.Errorf("invalid JSON after the object: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
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
// entry re-encoded as JSON). Unknown keys, values of the wrong kind and a
// second JSON value after the rule are errors that name the key.
func ParseRuleSpec(b []byte) (RuleSpec, error) {
	var r RuleSpec
	err := strictDecode(b, &r)
	return r, err
}

// RuleSpecFromMap decodes a rule from the generic map a YAML or viper
// loader produces.
func RuleSpecFromMap(m map[string]any) (RuleSpec, error) {
	n, err := normalise("", m)
	if err != nil {
		return RuleSpec{}, err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return RuleSpec{}, err
	}
	return ParseRuleSpec(b)
}

// normalise turns YAML's map[any]any into map[string]any, and refuses what
// JSON cannot carry (YAML's .nan and .inf), naming the key at path.
func normalise(path string, v any) (any, error) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalise(join(k), e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = e
		}
		return normalise(path, m)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalise(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, &keyError{key: path, err: fmt.Errorf("%v is not a number", x)}
		}
	case float32:
		return normalise(path, float64(x))
	}
	return v, nil
}

// jsonError words encoding/json's errors in the user's terms: the key's
// path and what kind of value it takes, never a Go type.
func jsonError(err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return ke
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		key := ute.Field
		if key == "" {
			return fmt.Errorf("expected %s, got %s", kindWords(ute.Type), valueWords(ute.Value))
		}
		return &keyError{key: key, err: fmt.Errorf("must be %s, not %s", kindWords(ute.Type), valueWords(ute.Value))}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &keyError{key: strings.Trim(f, `"`), err: errors.New("unknown key")}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return errors.New(strings.TrimPrefix(msg, "json: "))
}

// kindWords says what a JSON value of Go type t looks like.
func kindWords(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number (0 or more)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindWords(t.Elem())
	}
	return "a value of another kind"
}

// valueWords names the JSON value encoding/json reported ("number 1.5").
func valueWords(v string) string {
	switch v {
	case "string":
		return "a string"
	case "bool":
		return "true/false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "number":
		return "a number"
	}
	return v
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
	if err := CheckRuleName(spec.Name); err != nil {
		return nil, err
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
