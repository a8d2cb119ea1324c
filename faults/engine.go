package faults

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// Engine holds the fault rules of every proxy and decides for their
// connections. Rules are swapped atomically: a connection keeps the rule set
// it was accepted under, so changing rules never disturbs live connections.
type Engine struct {
	clock Clock
	mu    sync.Mutex // serialises writers; readers use the atomic pointers
	sets  map[string]*atomic.Pointer[ruleSet]
	// changed holds, per proxy, a channel closed at its next rule change
	// (proxy.AcceptGateNotifier).
	changed map[string]chan struct{}

	// OnInject, if set, is called for every verdict that injects (metrics).
	OnInject func(proxyName string, rule, scenario string, phase proxy.Phase, action string)
}

type ruleSet struct {
	rules []*rule
}

// NewEngine returns an engine with no rules. clk nil means the real clock.
func NewEngine(clk Clock) *Engine {
	if clk == nil {
		clk = RealClock{}
	}
	return &Engine{clock: clk, sets: map[string]*atomic.Pointer[ruleSet]{}, changed: map[string]chan struct{}{}}
}

func (e *Engine) slot(proxyName string) *atomic.Pointer[ruleSet] {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.sets[proxyName]
	if !ok {
		p = new(atomic.Pointer[ruleSet])
		e.sets[proxyName] = p
	}
	return p
}

// RuleError is a bad rule in a set. The key at fault is data, so callers
// (configs, the CLI, the admin API) name it in their own terms with
// errors.As instead of parsing the text "faults[j]: key: what".
type RuleError struct {
	// Index is the rule's position in the set, Name its name.
	Index int
	Name  string
	// Key is the rule key at fault as a path ("options.server_tls",
	// "match.clients[0]", "close"); "" when the error is about the rule
	// as a whole.
	Key string
	// Err reads "key: what" (or just what, when Key is ""); Reason is
	// what alone.
	Err error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("faults[%d]: %v", e.Index, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Reason is what is wrong, without the key.
func (e *RuleError) Reason() string {
	var ke *keyError
	if e.Key != "" && errors.As(e.Err, &ke) && ke.key == e.Key {
		return ke.err.Error()
	}
	return e.Err.Error()
}

// ruleError makes the RuleError for rule i, taking the key from err.
func ruleError(i int, name string, err error) *RuleError {
	re := &RuleError{Index: i, Name: name, Err: err}
	var ke *keyError
	if errors.As(err, &ke) {
		re.Key = ke.key
	}
	return re
}

// Compile validates rules without installing them.
func Compile(specs []RuleSpec) error {
	_, err := compileAll(specs, time.Now(), nil)
	return err
}

// compileAll compiles specs; a rule identical to one in prev keeps prev's
// state.
func compileAll(specs []RuleSpec, now time.Time, prev []*rule) ([]*rule, error) {
	out := make([]*rule, 0, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		r, err := compile(s, now)
		if err == nil {
			err = checkGateMatch(r)
		}
		if err != nil {
			return nil, ruleError(i, s.Name, err)
		}
		for _, p := range prev {
			if p.spec.Name == s.Name && sameRule(p, s) {
				r = p
				break
			}
		}
		if seen[s.Name] {
			return nil, ruleError(i, s.Name, keyed("name", "%q is used twice", s.Name))
		}
		seen[s.Name] = true
		out = append(out, r)
	}
	return out, nil
}

// SetRules replaces the proxy's rules. Either all are valid and installed at
// once, or none is and the error names the bad one.
func (e *Engine) SetRules(proxyName string, specs []RuleSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.storeLocked(proxyName, specs)
}

// Rules returns the proxy's rules as installed (seeds filled in).
func (e *Engine) Rules(proxyName string) []RuleSpec {
	set := e.slot(proxyName).Load()
	if set == nil {
		return nil
	}
	out := make([]RuleSpec, len(set.rules))
	for i, r := range set.rules {
		out[i] = r.spec
	}
	return out
}

// ErrNoRule is returned for a rule name that does not exist.
var ErrNoRule = errors.New("no such rule")

// ErrRuleExists is returned when adding a rule whose name is taken.
var ErrRuleExists = errors.New("rule already exists")

// AddRule appends one rule to the proxy's set.
func (e *Engine) AddRule(proxyName string, spec RuleSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	specs := e.rulesLocked(proxyName)
	if slices.ContainsFunc(specs, func(s RuleSpec) bool { return s.Name == spec.Name }) {
		return fmt.Errorf("%w: %q", ErrRuleExists, spec.Name)
	}
	return e.storeLocked(proxyName, append(specs, spec))
}

// ReplaceRule replaces the named rule (its name may change).
func (e *Engine) ReplaceRule(proxyName, name string, spec RuleSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	specs := e.rulesLocked(proxyName)
	i := slices.IndexFunc(specs, func(s RuleSpec) bool { return s.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrNoRule, name)
	}
	specs[i] = spec
	return e.storeLocked(proxyName, specs)
}

// DeleteRule removes the named rule.
func (e *Engine) DeleteRule(proxyName, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	specs := e.rulesLocked(proxyName)
	i := slices.IndexFunc(specs, func(s RuleSpec) bool { return s.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrNoRule, name)
	}
	return e.storeLocked(proxyName, slices.Delete(specs, i, i+1))
}

func (e *Engine) rulesLocked(proxyName string) []RuleSpec {
	p, ok := e.sets[proxyName]
	if !ok || p.Load() == nil {
		return nil
	}
	set := p.Load()
	out := make([]RuleSpec, len(set.rules))
	for i, r := range set.rules {
		out[i] = r.spec
	}
	return out
}

func (e *Engine) storeLocked(proxyName string, specs []RuleSpec) error {
	p, ok := e.sets[proxyName]
	if !ok {
		p = new(atomic.Pointer[ruleSet])
		e.sets[proxyName] = p
	}
	var prev []*rule
	if cur := p.Load(); cur != nil {
		prev = cur.rules
	}
	rs, err := compileAll(specs, e.clock.Now(), prev)
	if err != nil {
		return err
	}
	p.Store(&ruleSet{rules: rs})
	// A listener paused by a rule re-asks now (proxy.AcceptGateNotifier).
	if ch, ok := e.changed[proxyName]; ok {
		close(ch)
		delete(e.changed, proxyName)
	}
	return nil
}

// gateChanged returns a channel closed at the proxy's next rule change.
func (e *Engine) gateChanged(proxyName string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.changed[proxyName]
	if !ok {
		ch = make(chan struct{})
		e.changed[proxyName] = ch
	}
	return ch
}

// gate returns how r pauses the listener before any connection is
// accepted (a scenario's accept-gate hook), or ok false when it does not.
func (r *rule) gate() (pause time.Duration, backlog int, ok bool) {
	g, is := r.sr.(acceptGater)
	if !is {
		return 0, 0, false
	}
	pause, backlog = g.acceptGate()
	return pause, backlog, backlog > 0
}

func (r *rule) isGate() bool {
	_, _, ok := r.gate()
	return ok
}

// checkGateMatch refuses match keys a listener-level pause cannot honour:
// the pause comes before accept, when no client address, PRELOGIN or
// ClientHello is known. probability, first, every and window do apply:
// each pause is decided for the next connection to be accepted.
func checkGateMatch(r *rule) error {
	if !r.isGate() {
		return nil
	}
	m := r.spec.Match
	for _, k := range []struct {
		key string
		set bool
	}{{"clients", len(m.Clients) > 0}, {"instance", m.Instance != ""}, {"sni", m.SNI != ""}, {"protocol", m.Protocol != ""}} {
		if k.set {
			return keyed("match."+k.key, "cannot apply to a delayed-accept rule with backlog, which pauses the listener before accept, when nothing of the next client is known (without backlog, accept_delay holds each matching connection instead)")
		}
	}
	return nil
}

// Decider returns the proxy.Decider for the named proxy. It reads the
// proxy's current rules at every accept.
func (e *Engine) Decider(proxyName string) proxy.Decider {
	return &proxyDecider{e: e, name: proxyName, set: e.slot(proxyName)}
}

type proxyDecider struct {
	e    *Engine
	name string
	set  *atomic.Pointer[ruleSet]

	// gmu guards pending: each gate rule's decision for the next accept,
	// taken once (one draw, one count) however often the accept loop asks,
	// and forgotten when that connection is accepted (Connect).
	gmu     sync.Mutex
	pending map[*rule]gateDecision
}

// gateDecision is a gate rule's answer for the next accept.
type gateDecision struct {
	hit   bool
	until time.Time // end of the pause
}

var (
	_ proxy.Decider            = (*proxyDecider)(nil)
	_ proxy.AcceptGate         = (*proxyDecider)(nil)
	_ proxy.AcceptGateNotifier = (*proxyDecider)(nil)
	_ proxy.ConnDecider        = (*connDecider)(nil)
)

// Connect draws this connection's random values for every rule, in accept
// order, so the same seed and the same connection sequence give the same
// decisions, and keeps the rules whose static match holds.
func (d *proxyDecider) Connect(ci proxy.ConnInfo) proxy.ConnDecider {
	d.gmu.Lock()
	d.pending = nil // the accept the gate decided for has happened
	d.gmu.Unlock()
	set := d.set.Load()
	if set == nil || len(set.rules) == 0 {
		return nil
	}
	cd := &connDecider{d: d}
	for _, r := range set.rules {
		// The same draws per rule per connection, used or not, taken in
		// accept order.
		matchDraw, rateDraw, own := r.rand.Float64(), r.rand.Float64(), r.rand.Split()
		ok, _ := r.staticMatch(ci, r.seen.Add(1), matchDraw)
		if !ok {
			continue
		}
		cr := &connRule{r: r, rand: own}
		if r.sr != nil {
			cr.sc = r.sr.conn(rateDraw)
		}
		cd.rules = append(cd.rules, cr)
	}
	if len(cd.rules) == 0 {
		return nil
	}
	return cd
}

// BeforeAccept implements proxy.AcceptGate for the delayed-accept
// scenario's full-backlog form: accepts pause, so the kernel's small
// backlog fills and new SYNs go unanswered.
//
// The rule's match decides each pause as it would the next connection:
// match.first and match.every count accepts since the rule was set (the
// same count Connect keeps), match.probability draws once per accept, and
// match.window is read when the pause is decided. Asked again before that
// accept (the rules changed meanwhile), an unchanged rule gives the same
// answer, with the pause counted from when it began.
func (d *proxyDecider) BeforeAccept() (pause time.Duration, backlog int) {
	set := d.set.Load()
	d.gmu.Lock()
	defer d.gmu.Unlock()
	if set == nil {
		return 0, 0
	}
	now := d.e.clock.Now()
	for _, r := range set.rules {
		pause, backlog, isGate := r.gate()
		if !isGate {
			continue
		}
		g, ok := d.pending[r]
		if !ok {
			hit, _ := r.staticMatch(proxy.ConnInfo{At: now}, r.seen.Load()+1, r.rand.Float64())
			g = gateDecision{hit: hit, until: now.Add(pause)}
			if d.pending == nil {
				d.pending = map[*rule]gateDecision{}
			}
			d.pending[r] = g
		}
		if !g.hit {
			continue
		}
		return max(g.until.Sub(now), 0), backlog
	}
	return 0, 0
}

// GateChanged implements proxy.AcceptGateNotifier: a pause ends the moment
// its rule is removed or changed.
func (d *proxyDecider) GateChanged() <-chan struct{} { return d.e.gateChanged(d.name) }

type connDecider struct {
	d     *proxyDecider
	rules []*connRule
}

// connRule is one rule's state on one connection.
type connRule struct {
	r        *rule
	rand     *Rand        // this connection's own stream, for stages
	sc       scenarioConn // a scenario's own state on this connection
	out      bool         // a dynamic match failed: the rule no longer applies
	attached bool         // a generic action's stages are on the connection
}

func (c *connRule) close(detail string) proxy.Verdict {
	return proxy.Verdict{Close: true, Style: c.r.style, Alert: c.r.alert, Action: ActionClosePrefix + string(c.r.style), Detail: detail}
}

func (c *connRule) delay(d time.Duration, detail string) proxy.Verdict {
	return proxy.Verdict{Delay: d, Action: ActionDelay, Detail: detail}
}

// Decide asks every rule still in play, in order. Verdicts merge as the
// proxy merges events: the first close wins.
func (c *connDecider) Decide(ev *proxy.Event, rec *proxy.Record) proxy.Verdict {
	var out proxy.Verdict
	for _, cr := range c.rules {
		if cr.out {
			continue
		}
		ok, known := cr.r.dynamicMatch(rec)
		if !known {
			continue
		}
		if !ok {
			cr.out = true
			continue
		}
		var v proxy.Verdict
		if cr.sc != nil {
			v = cr.sc.decide(cr, ev, rec)
		} else if cr.r.tds != nil {
			v = c.decideTDS(cr, ev, rec)
		} else if cr.r.scen == nil && ev.Phase == cr.r.phase && !cr.attached {
			// Once per connection: a phase event can repeat (a second
			// ClientHello after a HelloRetryRequest, or a hostile flood of
			// them), and each attach would chain more stages.
			cr.attached = true
			v = c.attach(cr, ev)
		}
		if v.Action == "" {
			continue
		}
		v.Rule = cr.r.spec.Name
		if cr.r.scen != nil {
			v.Scenario = cr.r.scen.Name
		}
		// An armed TDS fault has only attached its stages: each answer it
		// gives later is counted then (tds_stage.go).
		if v.Injects() && v.Action != proxy.ActionArmed && c.d.e.OnInject != nil {
			c.d.e.OnInject(c.d.name, v.Rule, v.Scenario, ev.Phase, v.Action)
		}
		// The proxy records one verdict per event; keep the most decisive.
		if v.Close {
			v.Delay += out.Delay
			v.Stages = append(out.Stages, v.Stages...)
			return v
		}
		if out.Rule == "" || v.Injects() && !out.Injects() {
			keep := out
			out = v
			out.Delay += keep.Delay
			out.Stages = append(keep.Stages, out.Stages...)
		} else {
			out.Delay += v.Delay
			out.Stages = append(out.Stages, v.Stages...)
		}
	}
	return out
}

// attach builds a generic action's stages for this connection.
func (c *connDecider) attach(cr *connRule, ev *proxy.Event) proxy.Verdict {
	v := proxy.Verdict{Action: cr.r.stage.Kind(), Detail: cr.r.stage.String()}
	for _, dir := range cr.r.dirs {
		v.Stages = append(v.Stages, proxy.DirectedStage{Dir: dir, Stage: cr.r.stage.New(cr.rand.Split(), c.d.e.clock)})
	}
	return v
}
