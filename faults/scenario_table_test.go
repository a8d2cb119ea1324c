package faults

import (
	"encoding"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// Every option of every table binds by name into a field of its struct,
// and every tagged field is an option: reordering or renaming one cannot
// silently mis-assign a value.
func TestOptionFieldsBound(t *testing.T) {
	tagged := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v).Elem()
		for i := range rt.NumField() {
			if tag := rt.Field(i).Tag.Get("opt"); tag != "" {
				out = append(out, tag)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, s := range scenarios {
		var names []string
		for _, o := range s.Options {
			f, err := optField(s.rule(), o.Name)
			if err != nil {
				t.Errorf("%s: %v", s.Name, err)
				continue
			}
			// The field holds the option's type: it parses itself, or it
			// is the plain kind bindOption sets.
			_, parses := f.Addr().Interface().(encoding.TextUnmarshaler)
			kind := map[OptionType]reflect.Kind{OptString: reflect.String, OptDuration: reflect.Int64, OptInt: reflect.Int, OptBool: reflect.Bool}[o.Type]
			if !parses && f.Kind() != kind {
				t.Errorf("%s.%s: field of kind %s for a %s option", s.Name, o.Name, f.Kind(), o.Type)
			}
			names = append(names, o.Name)
		}
		slices.Sort(names)
		if got := tagged(s.rule()); !slices.Equal(got, names) {
			t.Errorf("%s: tagged fields %v, options %v", s.Name, got, names)
		}
	}
	for _, k := range stageKinds {
		var names []string
		for _, o := range k.opts {
			if _, err := optField(k.config(), o.name); err != nil {
				t.Errorf("%s: %v", k.name, err)
			}
			names = append(names, o.name)
		}
		slices.Sort(names)
		if got := tagged(k.config()); !slices.Equal(got, names) {
			t.Errorf("%s: tagged fields %v, options %v", k.name, got, names)
		}
	}
}

// A scenario's documented default is what an absent option means: binding
// the default explicitly gives the same rule as binding nothing.
func TestScenarioDefaults(t *testing.T) {
	for _, s := range scenarios {
		opts := map[string]string{}
		for _, o := range s.Options {
			if o.Default != "" {
				opts[o.Name] = o.Default
			}
		}
		if len(opts) == 0 {
			continue
		}
		absent, err1 := s.bind(nil)
		given, err2 := s.bind(opts)
		if err1 != nil || err2 != nil {
			t.Errorf("%s: bind: %v, %v", s.Name, err1, err2)
			continue
		}
		if !reflect.DeepEqual(absent, given) {
			t.Errorf("%s: defaults %v bind to %+v, absent options to %+v", s.Name, opts, given, absent)
		}
	}
}

// Options sharing a flag share its type; every option has a flag and help.
func TestScenarioFlags(t *testing.T) {
	types := map[string]OptionType{}
	for _, s := range scenarios {
		for _, o := range s.Options {
			if o.Flag == "" || o.Help == "" || o.Type == "" {
				t.Errorf("%s.%s: flag %q, type %q, help %q", s.Name, o.Name, o.Flag, o.Type, o.Help)
			}
			if prev, ok := types[o.Flag]; ok && prev != o.Type {
				t.Errorf("--%s: type %s and %s", o.Flag, prev, o.Type)
			}
			types[o.Flag] = o.Type
		}
	}
}

// Every scenario carries what the lab needs: a rule that compiles, a
// server, an expected close and each client's words for it.
func TestScenarioLabSetups(t *testing.T) {
	for _, s := range Scenarios() {
		l := s.Lab
		if err := Compile([]RuleSpec{{Name: s.Name, Scenario: s.Name, Options: l.Options, Close: l.Close}}); err != nil {
			t.Errorf("%s: the lab's rule: %v", s.Name, err)
		}
		if !s.Phase.Valid() || l.Server.Desc == "" || l.Note == "" || l.Expect.By == "" {
			t.Errorf("%s: incomplete: phase %q, server %q, note %q, by %q", s.Name, s.Phase, l.Server.Desc, l.Note, l.Expect.By)
		}
		if d := l.Server.DHE; d != nil && (d.Mode == "" || d.Group == "" || d.Z != "pad" || d.Fail == "" || l.Fixed == nil) {
			t.Errorf("%s: a DHE lab server pads Z (the failing Windows server) and has a fixed server: %+v", s.Name, d)
		}
		clients := []string{LabGo, LabJDBC, LabODBC, LabTedious, LabTSQL}
		for _, c := range clients {
			if len(l.Expect.Errors[c]) == 0 {
				t.Errorf("%s: no expected error for client %s", s.Name, c)
			}
		}
	}
}

// The weak-cert-hash summary names every hash its option takes (sha1
// included).
func TestWeakCertHashSummary(t *testing.T) {
	s, _ := ScenarioByName(ScenarioWeakCertHash)
	for _, h := range []string{"MD5", "SHA-1", "SHA-224", "SHA-512"} {
		if !strings.Contains(s.Summary, h) {
			t.Errorf("summary %q lacks %s", s.Summary, h)
		}
	}
}

// A rule error carries its key as data.
func TestRuleErrorKey(t *testing.T) {
	for _, tc := range []struct {
		spec      RuleSpec
		key, what string
	}{
		{RuleSpec{Name: "r", Scenario: "protocol-mismatch", Options: map[string]string{"server_tls": "2.0"}}, "options.server_tls", `"2.0" is not a TLS version`},
		{RuleSpec{Name: "r", Scenario: "cipher-mismatch"}, "options.server_ciphers", "required"},
		{RuleSpec{Name: "r", Scenario: "delayed-accept", Options: map[string]string{"backlog": "4"}}, "options.backlog", "needs accept_delay"},
		{RuleSpec{Name: "r", Scenario: "nope"}, "scenario", `"nope" is not one of`},
		{RuleSpec{Name: "r", Scenario: "protocol-mismatch", Close: "slam"}, "close", `"slam" is not rst`},
		{RuleSpec{Name: "r", Scenario: "protocol-mismatch", Match: Match{Clients: []string{"10.0.0.0/33"}}}, "match.clients[0]", "is not an address"},
		{RuleSpec{Name: "r", Action: "latency"}, "options.delay", "missing required option"},
		{RuleSpec{Name: "r"}, "", "scenario or action: one is required"},
	} {
		err := Compile([]RuleSpec{tc.spec})
		var re *RuleError
		if !errorsAs(err, &re) || re.Key != tc.key || !strings.Contains(re.Reason(), tc.what) {
			t.Errorf("%+v: %v; want key %q and %q", tc.spec, err, tc.key, tc.what)
			continue
		}
		if tc.key != "" && (strings.HasPrefix(re.Reason(), tc.key) || !strings.Contains(err.Error(), "faults[0]: "+tc.key+": ")) {
			t.Errorf("%+v: reason %q, error %q", tc.spec, re.Reason(), err)
		}
	}
}

// The armed action (a DHE rule waiting for the client's Finished) is not an
// injection, for the record, the lab and soak alike.
func TestArmedIsNotAnInjection(t *testing.T) {
	if (proxy.FaultEvent{Action: proxy.ActionArmed}).Acted() {
		t.Error("armed counts as an injection")
	}
	if !(proxy.FaultEvent{Action: ActionDelay}).Acted() || !(proxy.FaultEvent{Action: ActionClosePrefix + "rst"}).Acted() {
		t.Error("delay and close must count as injections")
	}
}

func errorsAs(err error, re **RuleError) bool { return errors.As(err, re) }

// A seventh scenario is one table entry: with it appended, rules name it,
// its options bind by name, Scenarios lists it (the CLI's flags, the lab
// and soak read that), and the engine asks its decision.
func TestSeventhScenarioIsOneEntry(t *testing.T) {
	seventh := &scenario{
		Name: "test-seventh", Summary: "a test", Where: "at accept", Phase: proxy.PhaseAccept, Fix: "none",
		Options:   []Option{{Name: "hold_for", Flag: "hold-for", Type: OptDuration, Help: "how long"}},
		rule:      func() scenarioRule { return &seventhRule{} },
		recognise: func(*proxy.Record) (string, bool) { return "", false },
		Lab:       LabSetup{Server: LabServer{Desc: "emulator"}, Expect: LabExpect{By: proxy.SideClient}},
	}
	saved := scenarios
	scenarios = append(slices.Clone(scenarios), seventh)
	t.Cleanup(func() { scenarios = saved })

	if info, ok := ScenarioByName("test-seventh"); !ok || info.Options[0].Flag != "hold-for" {
		t.Fatalf("ScenarioByName: %+v, %v", info, ok)
	}
	e := NewEngine(nil)
	if err := e.SetRules("p", []RuleSpec{{Name: "r", Scenario: "test-seventh", Options: map[string]string{"hold_for": "2s"}}}); err != nil {
		t.Fatal(err)
	}
	cd := e.Decider("p").Connect(proxy.ConnInfo{})
	v := cd.Decide(&proxy.Event{Phase: proxy.PhaseAccept}, &proxy.Record{})
	if v.Delay != 2*time.Second || v.Scenario != "test-seventh" || v.Action != ActionDelay {
		t.Errorf("verdict %+v, want the seventh scenario's 2s delay", v)
	}
}

type seventhRule struct {
	HoldFor time.Duration `opt:"hold_for"`
}

func (p *seventhRule) check(func(string) bool) error { return nil }
func (p *seventhRule) conn(float64) scenarioConn     { return p }
func (p *seventhRule) decide(st *connRule, ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	if ev.Phase == proxy.PhaseAccept {
		return st.delay(p.HoldFor, "held")
	}
	return proxy.Verdict{}
}

// Every scenario names the check the probe judges it by, and no two share
// one: the probe maps a failing client profile back to a scenario by its
// check (probe.scenarioFor).
func TestScenarioProbeChecks(t *testing.T) {
	seen := map[ProbeCheck]string{}
	for _, sc := range Scenarios() {
		if sc.Probe == "" {
			t.Errorf("%s: no Probe check", sc.Name)
			continue
		}
		if other, dup := seen[sc.Probe]; dup {
			t.Errorf("%s and %s share the probe check %q", sc.Name, other, sc.Probe)
		}
		seen[sc.Probe] = sc.Name
	}
}
