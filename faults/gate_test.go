package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// A delayed-accept rule with backlog pauses the listener before an accept;
// its match decides each pause as it would the next connection, and the
// pause ends when the rule goes (issue 18).
func TestBacklogGateHonoursMatch(t *testing.T) {
	zero := 0.0
	spec := func(m Match) RuleSpec {
		return RuleSpec{Name: "full", Scenario: ScenarioDelayedAccept, Options: map[string]string{"accept_delay": "2s", "backlog": "2"}, Match: m}
	}
	// accepts runs the accept loop n times: ask the gate, then accept.
	accepts := func(t *testing.T, m Match, n int) []time.Duration {
		t.Helper()
		e := engineWith(t, spec(m))
		d := e.Decider("p")
		g := d.(proxy.AcceptGate)
		var out []time.Duration
		for i := range n {
			pause, backlog := g.BeforeAccept()
			if pause > 0 && backlog != 2 {
				t.Errorf("accept %d: backlog %d with a pause, want 2", i+1, backlog)
			}
			out = append(out, pause)
			d.Connect(ci(uint64(i+1), "10.0.0.1:1"))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		m    Match
		want []time.Duration
	}{
		{"no match", Match{}, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}},
		{"probability 0", Match{Probability: &zero}, []time.Duration{0, 0, 0}},
		{"first 1", Match{First: 1}, []time.Duration{2 * time.Second, 0, 0}},
		{"every 2", Match{Every: 2}, []time.Duration{0, 2 * time.Second, 0, 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := accepts(t, tc.m, len(tc.want))
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("pauses %v, want %v", got, tc.want)
				}
			}
		})
	}
	t.Run("asked again before the accept", func(t *testing.T) {
		clk := NewFakeClock(time.Unix(1000, 0))
		e := NewEngine(clk)
		if err := e.SetRules("p", []RuleSpec{spec(Match{First: 1})}); err != nil {
			t.Fatal(err)
		}
		d := e.Decider("p")
		g := d.(proxy.AcceptGate)
		if p, _ := g.BeforeAccept(); p != 2*time.Second {
			t.Fatalf("pause %v, want 2s", p)
		}
		clk.Advance(500 * time.Millisecond)
		// An unrelated rule change: the same pause goes on, not a new one.
		other := RuleSpec{Name: "other", Action: "latency", Options: map[string]string{"delay": "1ms"}}
		if err := e.AddRule("p", other); err != nil {
			t.Fatal(err)
		}
		if p, _ := g.BeforeAccept(); p != 1500*time.Millisecond {
			t.Fatalf("pause after 500ms and an unrelated change = %v, want the 1.5s left", p)
		}
		d.Connect(ci(1, "10.0.0.1:1"))
		if p, b := g.BeforeAccept(); p != 0 || b != 0 {
			t.Fatalf("after the first accept: pause %v, backlog %d; want none (first: 1)", p, b)
		}
	})
	t.Run("removal ends the pause", func(t *testing.T) {
		e := engineWith(t, spec(Match{}))
		g := e.Decider("p")
		changed := g.(proxy.AcceptGateNotifier).GateChanged()
		if p, _ := g.(proxy.AcceptGate).BeforeAccept(); p != 2*time.Second {
			t.Fatalf("pause %v, want 2s", p)
		}
		if err := e.DeleteRule("p", "full"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		default:
			t.Fatal("deleting the rule did not signal the accept loop")
		}
		if p, b := g.(proxy.AcceptGate).BeforeAccept(); p != 0 || b != 0 {
			t.Fatalf("after removal: pause %v, backlog %d", p, b)
		}
	})
	t.Run("keys unknown before accept are refused", func(t *testing.T) {
		for key, m := range map[string]Match{
			"match.clients":  {Clients: []string{"10.0.0.0/8"}},
			"match.instance": {Instance: "MSSQLSERVER"},
			"match.sni":      {SNI: "db"},
			"match.protocol": {Protocol: "tds7"},
		} {
			// instance, sni and protocol were already refused for any rule
			// acting at accept (compile); clients is the gate's own.
			err := NewEngine(nil).SetRules("p", []RuleSpec{spec(m)})
			name := strings.TrimPrefix(key, "match.")
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "accept") {
				t.Errorf("%s: error %v, want one naming %s and saying why", key, err, key)
			}
		}
		// Without backlog the same rule holds each matching connection.
		s := spec(Match{Clients: []string{"10.0.0.0/8"}})
		delete(s.Options, "backlog")
		if err := NewEngine(nil).SetRules("p", []RuleSpec{s}); err != nil {
			t.Errorf("accept_delay with match.clients and no backlog: %v", err)
		}
	})
}
