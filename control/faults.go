package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/faults"
)

// Fault rules. Every change applies to connections accepted from then on;
// open connections keep the rules they were accepted under (faults.Engine
// swaps rule sets atomically), so a change never disturbs live traffic.

// Faults returns the named proxy's rules as installed (random seeds filled
// in, so a run can be replayed).
func (in *Instance) Faults(proxyName string) ([]faults.RuleSpec, error) {
	if !in.hasProxy(proxyName) {
		return nil, fmt.Errorf("proxy %q: %w", proxyName, ErrNoProxy)
	}
	rules := in.engine.Rules(proxyName)
	if rules == nil {
		rules = []faults.RuleSpec{}
	}
	return rules, nil
}

// Fault returns one rule of the named proxy.
func (in *Instance) Fault(proxyName, rule string) (faults.RuleSpec, error) {
	rules, err := in.Faults(proxyName)
	if err != nil {
		return faults.RuleSpec{}, err
	}
	i := slices.IndexFunc(rules, func(r faults.RuleSpec) bool { return r.Name == rule })
	if i < 0 {
		return faults.RuleSpec{}, fmt.Errorf("proxy %q: rule %q: %w", proxyName, rule, faults.ErrNoRule)
	}
	return rules[i], nil
}

// SetFaults replaces all the named proxy's rules at once: either every rule
// is valid and the set is swapped in, or nothing changes and the error
// names the bad rule and key ("faults[2]: match.probability: ...").
func (in *Instance) SetFaults(proxyName string, rules []faults.RuleSpec) error {
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	if !in.hasProxy(proxyName) {
		return fmt.Errorf("proxy %q: %w", proxyName, ErrNoProxy)
	}
	if err := in.engine.SetRules(proxyName, rules); err != nil {
		return ruleSetError(err)
	}
	in.metrics.forgetRulesExcept(proxyName, in.engine.Rules(proxyName))
	in.logRules("fault rules set", proxyName)
	return nil
}

// AddFault appends a rule to the named proxy's set. A name already used
// is faults.ErrRuleExists.
func (in *Instance) AddFault(proxyName string, rule faults.RuleSpec) (faults.RuleSpec, error) {
	if err := compileOne(rule); err != nil {
		return faults.RuleSpec{}, err
	}
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	if !in.hasProxy(proxyName) {
		return faults.RuleSpec{}, fmt.Errorf("proxy %q: %w", proxyName, ErrNoProxy)
	}
	if err := in.engine.AddRule(proxyName, rule); err != nil {
		return faults.RuleSpec{}, ruleErr(proxyName, err)
	}
	return in.installed(proxyName, rule.Name, "fault rule added")
}

// ReplaceFault replaces the named rule with rule (whose name may differ,
// but not be another rule's).
func (in *Instance) ReplaceFault(proxyName, name string, rule faults.RuleSpec) (faults.RuleSpec, error) {
	if err := compileOne(rule); err != nil {
		return faults.RuleSpec{}, err
	}
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	return in.replaceLocked(proxyName, name, rule)
}

func (in *Instance) replaceLocked(proxyName, name string, rule faults.RuleSpec) (faults.RuleSpec, error) {
	if !in.hasProxy(proxyName) {
		return faults.RuleSpec{}, fmt.Errorf("proxy %q: %w", proxyName, ErrNoProxy)
	}
	if rule.Name != name && slices.ContainsFunc(in.engine.Rules(proxyName), func(r faults.RuleSpec) bool { return r.Name == rule.Name }) {
		return faults.RuleSpec{}, fmt.Errorf("proxy %q: rule %q: %w", proxyName, rule.Name, faults.ErrRuleExists)
	}
	if err := in.engine.ReplaceRule(proxyName, name, rule); err != nil {
		return faults.RuleSpec{}, ruleErr(proxyName, err)
	}
	in.metrics.forgetRulesExcept(proxyName, in.engine.Rules(proxyName))
	return in.installed(proxyName, rule.Name, "fault rule replaced")
}

// PatchFault applies a JSON merge patch (RFC 7396) to the named rule: the
// keys given replace the rule's, null removes a key, objects (match,
// options) merge key by key. The result must be a valid rule; an unknown
// key is an InvalidError naming it.
func (in *Instance) PatchFault(proxyName, name string, patch []byte) (faults.RuleSpec, error) {
	var p any
	if err := unmarshalNumbers(patch, &p); err != nil {
		return faults.RuleSpec{}, invalidf("body: %v", jsonSyntax(err))
	}
	if _, ok := p.(map[string]any); !ok {
		return faults.RuleSpec{}, invalidf("body: a merge patch is a JSON object, e.g. {\"match\": {\"probability\": 0.5}}")
	}
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	cur, err := in.Fault(proxyName, name)
	if err != nil {
		return faults.RuleSpec{}, err
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return faults.RuleSpec{}, err
	}
	var doc any
	if err := unmarshalNumbers(b, &doc); err != nil {
		return faults.RuleSpec{}, err
	}
	merged, err := json.Marshal(mergePatch(doc, p))
	if err != nil {
		return faults.RuleSpec{}, err
	}
	rule, err := faults.ParseRuleSpec(merged)
	if err != nil {
		return faults.RuleSpec{}, invalid(err)
	}
	if err := compileOne(rule); err != nil {
		return faults.RuleSpec{}, err
	}
	return in.replaceLocked(proxyName, name, rule)
}

// unmarshalNumbers decodes JSON keeping numbers exact (json.Number): a
// 64-bit seed does not survive a round trip through float64.
func unmarshalNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// mergePatch applies patch to target as RFC 7396 §2 says.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergePatch(tm[k], v)
	}
	return tm
}

// DeleteFault removes the named rule.
func (in *Instance) DeleteFault(proxyName, name string) error {
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	if !in.hasProxy(proxyName) {
		return fmt.Errorf("proxy %q: %w", proxyName, ErrNoProxy)
	}
	if err := in.engine.DeleteRule(proxyName, name); err != nil {
		return ruleErr(proxyName, err)
	}
	in.metrics.forgetRulesExcept(proxyName, in.engine.Rules(proxyName))
	in.log.Info("fault rule deleted", zap.String("proxy", proxyName), zap.String("rule", name))
	return nil
}

// Reset removes every fault rule of every proxy, those from the
// configuration file included, as Toxiproxy's POST /reset removes all
// toxics. Connections open at the time keep what they were accepted under.
// A later reload re-installs a proxy's file rules only if they changed in
// the file.
func (in *Instance) Reset() {
	in.faultMu.Lock()
	defer in.faultMu.Unlock()
	in.mu.Lock()
	names := make([]string, 0, len(in.proxies))
	for n := range in.proxies {
		names = append(names, n)
	}
	in.mu.Unlock()
	for _, n := range names {
		_ = in.engine.SetRules(n, nil)
		in.metrics.forgetRulesExcept(n, nil)
	}
	in.log.Info("fault rules reset", zap.Int("proxies", len(names)))
}

// compileOne validates one rule, naming the key at fault without the
// "faults[0]" a set would add.
func compileOne(rule faults.RuleSpec) error {
	err := faults.Compile([]faults.RuleSpec{rule})
	var re *faults.RuleError
	if errors.As(err, &re) {
		return invalid(re.Err)
	}
	return invalid(err)
}

// ruleErr keeps the engine's sentinel errors and marks the rest invalid.
func ruleErr(proxyName string, err error) error {
	if errors.Is(err, faults.ErrNoRule) || errors.Is(err, faults.ErrRuleExists) {
		return fmt.Errorf("proxy %q: %w", proxyName, err)
	}
	return invalid(err)
}

// installed returns the rule as the engine holds it (seed filled in) and
// logs it.
func (in *Instance) installed(proxyName, name, msg string) (faults.RuleSpec, error) {
	for _, r := range in.engine.Rules(proxyName) {
		if r.Name == name {
			in.logRule(msg, proxyName, r)
			return r, nil
		}
	}
	return faults.RuleSpec{}, fmt.Errorf("proxy %q: rule %q: %w", proxyName, name, faults.ErrNoRule)
}

func (in *Instance) logRules(msg, proxyName string) {
	for _, r := range in.engine.Rules(proxyName) {
		in.logRule(msg, proxyName, r)
	}
}

func (in *Instance) logRule(msg, proxyName string, r faults.RuleSpec) {
	in.log.Info(msg, zap.String("proxy", proxyName), zap.String("rule", r.Name),
		zap.String("scenario", r.Scenario), zap.String("action", r.Action), zap.Uint64("seed", r.Seed))
}
